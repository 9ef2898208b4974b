// A tool handler that awaits an extension call (the body of an async
// function). Everything it does before the `await` reaches the host at once,
// while the host performs the I/O: the panel shows its spinner during the
// "blind interval" instead of after it.
const city = $args.city ?? $state.city;
$state.loading = true;
$emit('forecast:requested', { city });
$log.info('fetching forecast for', city);
try {
  const forecast = await $ext.weather.forecast(city);   // suspends here
  $state.forecast = forecast;
  $state.error = null;
  $view.focus('forecast-card');
  return { city, summary: `${forecast.sky}, ${forecast.lowC}–${forecast.highC} °C` };
} catch (err) {
  $state.error = err.message;
  $log.error('forecast failed:', err.message);
  return null;
} finally {
  $state.loading = false;
}
