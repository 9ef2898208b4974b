{
  # The QuickJS-NG engine arrives as quickjs.wasm (npm: quickjs-wasi); wasm2c
  # turns it into C in the build directory and it is compiled into the addon
  # twice, once per config.memoryCheck variant. The published package ships
  # that C in gen/ (npm pack makes it), so a build from it needs no wasm2c:
  # scripts/engine-c.js checks and copies it. Nothing generated is committed.
  'variables': {
    'qjs_wasm%': '<!(node -p "require.resolve(\'quickjs-wasi/quickjs.wasm\')")',
    'qjs_pkg%': '<!(node -p "require.resolve(\'quickjs-wasi/package.json\')")',
    'gen_dir': '<(SHARED_INTERMEDIATE_DIR)/nexus',
  },
  'target_defaults': {
    'cflags': ['-O2', '-fPIC'],
    'cflags!': ['-O3'],
    # <(gen_dir)/wabt last: the wasm-rt.h there is reached only through
    # src/wasm_rt/wasm-rt.h's #include_next.
    'include_dirs': ['src/wasm_rt', 'src', '<(gen_dir)', '<(gen_dir)/wabt'],
  },
  'targets': [
    {
      # wasm2c's output, and the two headers that let it be compiled twice
      # into one addon (scripts/wasm-api.js).
      'target_name': 'qjs_gen',
      'type': 'none',
      # Its headers are included by the targets below: build it first.
      'hard_dependency': 1,
      'actions': [
        {
          'action_name': 'engine_c',
          'inputs': ['<(qjs_wasm)', 'scripts/engine-c.js'],
          # engine-c.js also writes qjs_wasm.h and wabt/wasm-rt.h. Declaring
          # one output keeps gyp's make generator from wrapping the action
          # in an intermediate target that reruns it (and recompiles the
          # 8 MB of C) on every build.
          'outputs': ['<(gen_dir)/qjs_wasm.c'],
          'action': ['node', 'scripts/engine-c.js', '<(qjs_wasm)', '<(gen_dir)'],
        },
        {
          'action_name': 'qjs_api',
          'inputs': ['<(gen_dir)/qjs_wasm.c', 'scripts/wasm-api.js'],
          'outputs': ['<(gen_dir)/qjs_api.h'],
          'action': ['node', 'scripts/wasm-api.js', 'api', '<(gen_dir)/qjs_wasm.h', '<(gen_dir)/qjs_api.h'],
        },
        {
          'action_name': 'qjs_guard_names',
          'inputs': ['<(gen_dir)/qjs_wasm.c', 'scripts/wasm-api.js'],
          'outputs': ['<(gen_dir)/qjs_guard_names.h'],
          'action': ['node', 'scripts/wasm-api.js', 'names', '<(gen_dir)/qjs_wasm.h', '<(gen_dir)/qjs_guard_names.h'],
        },
      ],
    },
    {
      # The engine with explicit bounds checks (config.memoryCheck 'bounds').
      'target_name': 'qjs_bounds',
      'type': 'static_library',
      'dependencies': ['qjs_gen'],
      'sources': ['src/wasm_rt/qjs_variant.c'],
      'defines': ['NX_WASM_GUARD=0'],
      # Generated code: its warnings are wasm2c's, not ours.
      'cflags': ['-w', '-ftls-model=initial-exec'],
    },
    {
      # The same engine without them, for guard-page memories ('guard'):
      # its symbols renamed, so both link into one addon. make -j2 compiles
      # the two side by side.
      'target_name': 'qjs_guard',
      'type': 'static_library',
      'dependencies': ['qjs_gen'],
      'sources': ['src/wasm_rt/qjs_variant.c'],
      'defines': ['NX_WASM_GUARD=1'],
      'cflags': ['-w', '-ftls-model=initial-exec'],
    },
    {
      'target_name': 'nexus_wasm_bridge',
      'dependencies': ['qjs_gen', 'qjs_bounds', 'qjs_guard'],
      'actions': [
        {
          'action_name': 'embed_bootstrap',
          'inputs': ['src/bootstrap.js', 'scripts/embed.js', '<(qjs_pkg)'],
          'outputs': ['<(gen_dir)/bootstrap_js.h'],
          'action': ['node', 'scripts/embed.js', 'src/bootstrap.js', 'nx_bootstrap_js', '<(gen_dir)/bootstrap_js.h'],
        },
        {
          # The C view of the one table lib/ reads too.
          'action_name': 'contract',
          'inputs': ['src/contract.js', 'scripts/contract.js'],
          'outputs': ['<(gen_dir)/contract.h'],
          'action': ['node', 'scripts/contract.js', '<(gen_dir)/contract.h'],
        },
      ],
      'sources': [
        'src/addon.c',
        'src/args.c',
        'src/blob.c',
        'src/buf.c',
        'src/cache.c',
        'src/cache_disk.c',
        'src/caps.c',
        'src/compiler.c',
        'src/config.c',
        'src/engine.c',
        'src/errors.c',
        'src/failure.c',
        'src/hostcalls.c',
        'src/imports.c',
        'src/loader.c',
        'src/mem.c',
        'src/metrics.c',
        'src/mpack.c',
        'src/mpack_decode.c',
        'src/mpack_encode.c',
        'src/mpack_pack.c',
        'src/pool.c',
        'src/portable.c',
        'src/result.c',
        'src/runtime.c',
        'src/sandbox.c',
        'src/sha256.c',
        'src/snapshot.c',
        'src/state.c',
        'src/lazy.c',
        'src/suspend.c',
        'src/sync.c',
        'src/task.c',
        'src/transfer.c',
        'src/util.c',
        'src/watchdog.c',
        'src/worker.c',
        'src/wasm_rt/nx_fault.c',
        'src/wasm_rt/nx_wasm.c',
      ],
      'cflags': ['-std=c11', '-Wall', '-Wextra', '-ftls-model=initial-exec'],
      'defines': ['_GNU_SOURCE'],
      'libraries': ['-lm', '-lpthread'],
    },
  ],
}
