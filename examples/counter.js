// A tool handler: the body of an async function. It sees only $state,
// $args, $scope, $emit, $view, $ext and $log.
const step = $args.step ?? 1;
$log.info('incrementing by', step);
$state.count = ($state.count ?? 0) + step;
$state.history.push($state.count);            // in-place change, reported too
if ($state.count % 2 === 0) $emit('count:even', { count: $state.count });
$view.scrollTo('history-list', $state.history.length - 1);
return { count: $state.count };
