'use strict';
// Extensions for examples/weather.js, as the host provides them: plain
// objects whose methods the handler calls through `$ext.NAME.METHOD(...)`.
// This one is simulated: local canned data after a 50 ms delay, no network.
const FORECASTS = {
  oslo: { sky: 'rain', lowC: 3, highC: 9 },
  lisbon: { sky: 'sunny', lowC: 15, highC: 24 },
  tokyo: { sky: 'cloudy', lowC: 11, highC: 17 },
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

module.exports = {
  weather: {
    async forecast(city) {
      await sleep(50); // stands for the HTTP round trip
      const forecast = FORECASTS[String(city).toLowerCase()];
      if (!forecast) throw new Error(`no forecast for ${city}`);
      return { ...forecast };
    },
  },
};
