// Evaluated once per sandbox, before any handler. Receives the host
// functions and returns { run, error, settle, copy, describe, dateTime };
// nothing it touches is reachable from handler code except the globals
// run() passes in, `console` and `Math.random`. Every check that grants or
// records anything happens in the host (src/hostcalls.c).
//
// Everything this file uses after handler code has run is captured here,
// at snapshot time, so a handler that patches a prototype cannot change
// what the bootstrap does.
(function (host) {
  'use strict';
  const { stateGet, stateSet, stateDelete, stateHas, stateKeys, emit, view, log, extCall, kind } = host;
  const { lazyGet, lazyHas, lazyFill } = host;
  const freeze = Object.freeze;
  const ProxyCtor = Proxy;
  const PromiseCtor = Promise;
  const objectKeys = Object.keys;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const StringCtor = String;
  const stringify = JSON.stringify;
  const defineProperty = Object.defineProperty;
  const isArray = Array.isArray;
  const MapCtor = Map;
  // f(thisArg, ...args) that no later patch of Function.prototype reaches.
  const uncurry = (f) => Function.prototype.call.bind(f);
  const mapGet = uncurry(Map.prototype.get);
  const mapSet = uncurry(Map.prototype.set);
  const mapDelete = uncurry(Map.prototype.delete);
  const stringSlice = uncurry(String.prototype.slice);
  const toFixed = uncurry(Number.prototype.toFixed);
  const now = uncurry(performance.now);
  const perf = performance;
  const dateTime = Date.prototype.getTime;
  const hasOwn = Object.hasOwn;
  const {
    get: reflectGet,
    set: reflectSet,
    has: reflectHas,
    ownKeys: reflectOwnKeys,
    getOwnPropertyDescriptor: reflectDescriptor,
    defineProperty: reflectDefine,
    deleteProperty: reflectDelete,
    preventExtensions: reflectPreventExtensions,
    setPrototypeOf: reflectSetPrototypeOf,
  } = Reflect;

  // The host encodes guest values without running guest code (src/mpack.c).
  // A value it cannot read that way (a Proxy, a getter, an Error) comes
  // back here first: copy() turns it into plain data, running the getters
  // and traps as guest code, where the handler's own deadline and memory
  // limit pay for them, and then the host encodes the copy. Shared
  // references stay shared (a memo), so the copy is as big as the
  // original; cycles stay cycles, which the host refuses. What the host
  // reads natively (Dates, typed arrays) or refuses (Maps, functions, ...)
  // is left as it is: kind() asks the host which is which.
  const KIND_OPAQUE = 1;
  const KIND_ERROR = 2;
  const MAX_DEPTH = 256; // the host refuses deeper values anyway
  const dataProp = (value) => ({ __proto__: null, value, writable: true, enumerable: true, configurable: true });
  function copy(root) {
    const memo = new MapCtor();
    const walk = (v, depth) => {
      if (typeof v !== 'object' || v === null || depth > MAX_DEPTH) return v;
      let out = mapGet(memo, v);
      if (out !== undefined) return out;
      const k = kind(v);
      if (k === KIND_OPAQUE) return v;
      if (k === KIND_ERROR) {
        out = { __proto__: null, name: StringCtor(v.name), message: StringCtor(v.message) };
        mapSet(memo, v, out);
        return out;
      }
      if (isArray(v)) {
        out = [];
        mapSet(memo, v, out);
        const n = v.length;
        // defineProperty, not assignment: a setter a handler put on
        // Array.prototype never sees the copy.
        for (let i = 0; i < n; i++) defineProperty(out, i, dataProp(walk(v[i], depth + 1)));
        return out;
      }
      out = { __proto__: null };
      mapSet(memo, v, out);
      const keys = objectKeys(v);
      for (let i = 0; i < keys.length; i++) out[keys[i]] = walk(v[keys[i]], depth + 1);
      return out;
    };
    return walk(root, 0);
  }

  // A thrown value as strings, read in the guest (getters may run; by now
  // the host functions refuse every call): [name, message, stack] for an
  // Error, [,,, String(value)] for anything else. Undefined where reading
  // or converting threw.
  const safeString = (v) => {
    try {
      return StringCtor(v);
    } catch (e) {
      return undefined;
    }
  };
  const safeField = (o, key) => {
    try {
      const v = o[key];
      return v === undefined ? undefined : safeString(v);
    } catch (e) {
      return undefined;
    }
  };
  function describe(thrown, isError) {
    if (isError) return [safeField(thrown, 'name'), safeField(thrown, 'message'), safeField(thrown, 'stack'), undefined];
    return [undefined, undefined, undefined, safeString(thrown)];
  }

  // Blocking primitives and shared memory have no place in a handler.
  delete globalThis.SharedArrayBuffer;
  delete globalThis.Atomics;

  const isKey = (k) => typeof k === 'string';

  const stateHandler = freeze({
    __proto__: null,
    get(target, key) {
      return isKey(key) ? stateGet(key) : undefined;
    },
    set(target, key, value) {
      if (!isKey(key)) throw new TypeErrorCtor('$state keys must be strings');
      stateSet(key, value);
      return true;
    },
    deleteProperty(target, key) {
      if (isKey(key)) stateDelete(key);
      return true;
    },
    has(target, key) {
      return isKey(key) && stateHas(key);
    },
    ownKeys() {
      return stateKeys();
    },
    getOwnPropertyDescriptor(target, key) {
      if (!isKey(key) || !stateHas(key)) return undefined;
      return { value: stateGet(key), writable: true, enumerable: true, configurable: true };
    },
    defineProperty(target, key, desc) {
      if (!isKey(key) || !('value' in desc)) return false;
      stateSet(key, desc.value);
      return true;
    },
    setPrototypeOf() {
      return false;
    },
    preventExtensions() {
      return false;
    },
  });

  // A large array or object read from $state: a Proxy over `target`, which
  // the host fills item by item as the handler touches them (src/lazy.c).
  // Any change to the container itself, or listing its keys, fills it
  // whole first, and so does reading many items (one host call per item
  // costs more than decoding them all at once); from then on every trap
  // just forwards to the target.
  const LAZY_FETCHES = 32;
  function lazy(id, target, n) {
    if (isArray(target)) target.length = n;
    let filled = false;
    let fetched = 0;
    const fill = () => {
      if (!filled) {
        filled = true;
        lazyFill(id);
      }
    };
    const missing = (key) => !filled && typeof key === 'string' && !hasOwn(target, key);
    const fetch = (key) => {
      if (lazyGet(id, key) && ++fetched >= LAZY_FETCHES) fill();
    };
    let proxy;
    const handler = freeze({
      __proto__: null,
      get(t, key, receiver) {
        if (missing(key)) fetch(key);
        return reflectGet(t, key, receiver);
      },
      getOwnPropertyDescriptor(t, key) {
        if (missing(key)) fetch(key);
        return reflectDescriptor(t, key);
      },
      has(t, key) {
        if (missing(key) && lazyHas(id, key)) return true;
        return reflectHas(t, key);
      },
      ownKeys(t) {
        fill();
        return reflectOwnKeys(t);
      },
      set(t, key, value, receiver) {
        fill();
        return reflectSet(t, key, value, receiver === proxy ? t : receiver);
      },
      defineProperty(t, key, desc) {
        fill();
        return reflectDefine(t, key, desc);
      },
      deleteProperty(t, key) {
        fill();
        return reflectDelete(t, key);
      },
      preventExtensions(t) {
        fill();
        return reflectPreventExtensions(t);
      },
      setPrototypeOf(t, proto) {
        fill();
        return reflectSetPrototypeOf(t, proto);
      },
    });
    proxy = new ProxyCtor(target, handler);
    return proxy;
  }

  // emit, view and extCall answer false (-1) when the value needs copy()
  // first; the second call says it is a copy.
  const $emit = freeze(function $emit(name, payload) {
    if (!emit(name, payload, false)) emit(name, copy(payload), true);
  });

  const sendView = (type, componentId, args) => {
    if (!view(type, componentId, args, false)) view(type, componentId, copy(args), true);
  };
  const $view = freeze({
    setFilter(componentId, value) { sendView('setFilter', componentId, { value }); },
    scrollTo(componentId, position) { sendView('scrollTo', componentId, { position }); },
    focus(componentId) { sendView('focus', componentId, {}); },
    custom(componentId, args) { sendView('custom', componentId, args); },
  });

  const format = (v) => {
    if (typeof v === 'string') return v;
    if (typeof v === 'object' && v !== null) {
      try {
        const s = stringify(v);
        if (s !== undefined) return s;
      } catch (e) {
        // circular or throwing toJSON: fall back to String()
      }
    }
    try {
      return StringCtor(v);
    } catch (e) {
      return '[unprintable]';
    }
  };
  const join = (values) => {
    let message = '';
    for (let i = 0; i < values.length; i++) message += (i ? ' ' : '') + format(values[i]);
    return message;
  };
  const logger = (level) => function (...values) {
    log(level, join(values));
  };
  const $log = logger('info');
  $log.info = logger('info');
  $log.warn = logger('warn');
  $log.error = logger('error');
  $log.debug = logger('debug');
  freeze($log);

  // console, for handlers written the usual way: the lines $log writes
  // (format() joined by spaces; one host call each, so the same limits).
  // log, info, dir, dirxml and table write at info, debug and trace at
  // debug, warn at warn, error and assert at error. count, time and group
  // keep their state here, in the guest: the reset to the snapshot clears
  // it after every execution, like anything else a handler changed.
  // Labels as console.count() shows them.
  const label = (v) => (v === undefined ? 'default' : safeString(v) ?? '[unprintable]');
  let indent = '';
  // Every line of a message, indented by the open groups.
  const write = (level, message) => {
    if (indent !== '') {
      let out = indent;
      for (let i = 0; i < message.length; i++) out += message[i] === '\n' ? '\n' + indent : message[i];
      message = out;
    }
    log(level, message);
  };
  const writer = (level) => function (...values) {
    write(level, join(values));
  };
  const counts = new MapCtor();
  const timers = new MapCtor();
  const elapsed = (name, start) => `${name}: ${toFixed(now(perf) - start, 3)}ms`;
  const noop = function () {};
  const console = freeze({
    log: writer('info'),
    info: writer('info'),
    debug: writer('debug'),
    warn: writer('warn'),
    error: writer('error'),
    // Not a table, and no inspection options: the value as $log writes it.
    dir(value) { write('info', format(value)); },
    dirxml: writer('info'),
    table(data) { write('info', format(data)); },
    // Without a stack: a guest stack names the wrapper's lines.
    trace(...values) { write('debug', values.length ? `Trace: ${join(values)}` : 'Trace'); },
    assert(condition, ...values) {
      if (condition) return;
      if (values.length === 0) write('error', 'Assertion failed');
      else write('error', `Assertion failed${typeof values[0] === 'string' ? ':' : ''} ${join(values)}`);
    },
    count(name) {
      name = label(name);
      const n = (mapGet(counts, name) ?? 0) + 1;
      mapSet(counts, name, n);
      write('info', `${name}: ${n}`);
    },
    countReset(name) {
      name = label(name);
      if (mapGet(counts, name) === undefined) write('warn', `Count for '${name}' does not exist`);
      else mapSet(counts, name, 0);
    },
    time(name) {
      name = label(name);
      if (mapGet(timers, name) !== undefined) write('warn', `Timer '${name}' already exists`);
      else mapSet(timers, name, now(perf));
    },
    timeLog(name, ...values) {
      name = label(name);
      const start = mapGet(timers, name);
      if (start === undefined) write('warn', `Timer '${name}' does not exist`);
      else write('info', values.length ? `${elapsed(name, start)} ${join(values)}` : elapsed(name, start));
    },
    timeEnd(name) {
      name = label(name);
      const start = mapGet(timers, name);
      if (start === undefined) {
        write('warn', `Timer '${name}' does not exist`);
      } else {
        mapDelete(timers, name);
        write('info', elapsed(name, start));
      }
    },
    group(...values) {
      if (values.length) write('info', join(values));
      indent += '  ';
    },
    groupCollapsed(...values) {
      if (values.length) write('info', join(values));
      indent += '  ';
    },
    groupEnd() {
      if (indent !== '') indent = stringSlice(indent, 2);
    },
    // Nothing to clear, profile or mark in a sandbox.
    clear: noop,
    profile: noop,
    profileEnd: noop,
    timeStamp: noop,
  });
  // As on the web and in Node: writable and configurable, not enumerable. A
  // handler that replaces it fools only itself, until the reset.
  defineProperty(globalThis, 'console', { value: console, writable: true, enumerable: false, configurable: true });

  // $ext calls: the host records the call (checking the capability and
  // copying the arguments) and returns its index; the promise settles when
  // the host answers through settle(). Null-prototype holders, so nothing a
  // handler patches on Object.prototype is consulted.
  let resolvers = { __proto__: null };
  const callExt = (name, method, args) => {
    let call = extCall(name, method, args, false);
    if (call < 0) call = extCall(name, method, copy(args), true);
    return new PromiseCtor((resolve, reject) => {
      resolvers[call] = { __proto__: null, resolve, reject };
    });
  };
  const noExt = freeze({ __proto__: null });
  const makeExt = (registry) => {
    const ext = { __proto__: null };
    const names = objectKeys(registry);
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      const methods = registry[name];
      const api = { __proto__: null };
      for (let j = 0; j < methods.length; j++) {
        const method = methods[j];
        api[method] = function (...args) { return callExt(name, method, args); };
      }
      ext[name] = freeze(api);
    }
    return freeze(ext);
  };

  // Math.random: the engine's generator state lives in the snapshot, so
  // every execution would replay one sequence. The host seeds this
  // xoshiro128** per execution instead.
  let r0 = 1, r1 = 2, r2 = 3, r3 = 4;
  const imul = Math.imul;
  const next32 = () => {
    const result = imul(((imul(r1, 5) << 7) | (imul(r1, 5) >>> 25)), 9) >>> 0;
    const t = r1 << 9;
    r2 ^= r0;
    r3 ^= r1;
    r1 ^= r2;
    r0 ^= r3;
    r2 ^= t;
    r3 = (r3 << 11) | (r3 >>> 21);
    return result;
  };
  defineProperty(Math, 'random', {
    value: function random() {
      return ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992;
    },
    writable: true,
    configurable: true,
  });

  function run(fn, args, scope, registry, s0, s1, s2, s3) {
    r0 = s0 | 0;
    r1 = s1 | 0;
    r2 = s2 | 0;
    r3 = s3 | 1; // never the all-zero state
    const $state = new ProxyCtor({}, stateHandler);
    const $ext = registry === undefined ? noExt : makeExt(registry);
    resolvers = { __proto__: null };
    return fn($state, args, scope, $emit, $view, $ext, $log);
  }

  function settle(call, ok, value) {
    const r = resolvers[call];
    if (r === undefined) return;
    resolvers[call] = undefined;
    if (ok) r.resolve(value);
    else r.reject(new ErrorCtor(StringCtor(value)));
  }

  function error(isType, message, code) {
    const e = isType ? new TypeErrorCtor(message) : new ErrorCtor(message);
    if (code !== undefined) defineProperty(e, 'code', { value: code, writable: true, configurable: true, enumerable: true });
    return e;
  }

  return { run, error, settle, copy, describe, dateTime, lazy };
})
