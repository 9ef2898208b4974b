#!/bin/sh
# shellcheck disable=SC2086,SC3013 # flag lists split on purpose; dash has -nt
# Builds the libFuzzer harnesses (test/fuzz/fuzz_*.c) into build/fuzz/ and
# runs each for FUZZ_SECONDS seconds (default 20), from the committed seed
# corpus (test/fuzz/corpus/<name>) plus a writable one (build/fuzz/corpus/<name>).
#   FUZZ_ONLY=fuzz_mpack   run one harness
#   FUZZ_ARGS="-max_len=8192"   extra libFuzzer flags
#   FUZZ_CFLAGS="..."           extra compiler flags for the sanitized code
#   FUZZ_ENGINE_COVERAGE=1      also give libFuzzer coverage of the generated
#                               engine (slower; helps fuzz_bytecode most)
# Inputs that crashed a harness before (test/fuzz/crashes/<harness>-*) are
# replayed first. New crash inputs go to build/fuzz/artifacts/; the exit
# status is non-zero when any harness crashed. Installs nothing:
# scripts/setup-fuzz.sh does that.
set -e
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
only=${FUZZ_ONLY:-}
gen=build/Release/obj/gen/nexus
out=build/fuzz
jobs=$(nproc 2>/dev/null || echo 2)
inc="-Isrc/wasm_rt -Isrc -I$gen -Itest/fuzz"
cflags="-std=c11 -D_GNU_SOURCE -ftls-model=initial-exec -Wall -Wextra $inc"
san="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined ${FUZZ_CFLAGS:-}"

# The generated engine and bootstrap header come from the addon build.
if [ ! -f "$gen/qjs_wasm.c" ] || [ ! -f "$gen/qjs_wasm.h" ] || [ ! -f "$gen/bootstrap_js.h" ] ||
   [ ! -f "$gen/qjs_api.h" ] || [ ! -f "$gen/qjs_guard_names.h" ] ||
   [ ! -f "$gen/contract.h" ] || [ src/bootstrap.js -nt "$gen/bootstrap_js.h" ] ||
   [ src/contract.js -nt "$gen/contract.h" ]; then
  echo "fuzz: generated sources missing or stale: running scripts/build.sh"
  sh scripts/build.sh
fi

mkdir -p "$out/obj" "$out/corpus" "$out/artifacts" "$out/logs"

probe="$out/obj/probe"
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe.c" -o "$probe" >/dev/null 2>&1; then
  echo "fuzz: clang cannot link with -fsanitize=fuzzer; run: sh scripts/setup-fuzz.sh" >&2
  exit 2
fi

# The generated engine, compiled once without sanitizers (its memory is the
# guest's, bounds-checked by the code itself) and kept until wasm2c writes it
# again. Both variants (src/wasm_rt/qjs_variant.c), as the addon links both;
# the harnesses run the bounds one (config.memoryCheck 'bounds'): libFuzzer
# and ASan handle SIGSEGV themselves, and a sanitizer report is what a
# harness must end with, not a fault our handler turned into a trap.
engine=""
engine_flags=""
suffix=""
if [ -n "${FUZZ_ENGINE_COVERAGE:-}" ]; then
  suffix="_cov"
  engine_flags="-fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp"
fi
pids=""
for variant in bounds guard; do
  o="$out/obj/qjs_wasm_$variant$suffix.o"
  engine="$engine $o"
  if [ ! -f "$o" ] || [ "$gen/qjs_wasm.c" -nt "$o" ] || [ src/wasm_rt/qjs_variant.c -nt "$o" ]; then
    echo "fuzz: compiling the generated engine, $variant variant (about a minute, once)"
    guard=0
    [ "$variant" = guard ] && guard=1
    clang -O1 -w -ftls-model=initial-exec -D_GNU_SOURCE -DNX_WASM_GUARD=$guard $engine_flags $inc \
      -c src/wasm_rt/qjs_variant.c -o "$o.tmp" && mv "$o.tmp" "$o" &
    pids="$pids $!"
  fi
done
for p in $pids; do wait "$p" || { echo "fuzz: compiling the engine failed" >&2; exit 1; }; done

# Sanitized objects built with other flags are all stale.
if [ "$(cat "$out/obj/flags" 2>/dev/null)" != "$san $cflags" ]; then
  find "$out/obj" -name '*.o' ! -name 'qjs_wasm*.o' -exec rm -f {} +
  echo "$san $cflags" >"$out/obj/flags"
fi

# An object is stale when its source or any header is newer.
stale() {
  [ ! -f "$2" ] || [ "$1" -nt "$2" ] ||
    [ -n "$(find src test/fuzz "$gen" -name '*.h' -newer "$2" 2>/dev/null | head -n 1)" ]
}

# Sanitized objects: every src/*.c but the Node-API surface (addon.c and its
# argument helpers, args.c), the wasm runtime (src/wasm_rt), the harnesses'
# shared code and the harnesses.
objects=""
pids=""
for src in src/*.c src/wasm_rt/*.c test/fuzz/*.c; do
  case "$src" in src/addon.c | src/args.c | src/wasm_rt/qjs_variant.c) continue ;; esac
  obj="$out/obj/$(echo "$src" | tr '/' '_' | sed 's/\.c$/.o/')"
  case "$src" in test/fuzz/fuzz_*) ;; *) objects="$objects $obj" ;; esac
  if stale "$src" "$obj"; then
    clang $san $cflags -c "$src" -o "$obj" &
    pids="$pids $!"
    if [ "$(echo "$pids" | wc -w)" -ge "$jobs" ]; then
      for p in $pids; do wait "$p" || { echo "fuzz: compiling failed" >&2; exit 1; }; done
      pids=""
    fi
  fi
done
for p in $pids; do wait "$p" || { echo "fuzz: compiling failed" >&2; exit 1; }; done

harnesses=""
for src in test/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  if [ -n "$only" ] && [ "$only" != "$name" ]; then continue; fi
  harnesses="$harnesses $name"
  obj="$out/obj/test_fuzz_$name.o"
  clang $san $objects "$obj" $engine -lm -lpthread -o "$out/$name"
done
if [ -z "$harnesses" ]; then
  echo "fuzz: no harness named '$only' (test/fuzz/fuzz_*.c)" >&2
  exit 2
fi

# The last value libFuzzer printed for a final statistic.
stat() {
  grep -a "^stat::$1:" "$2" | tail -n 1 | awk '{print $2}'
}

failed=0
for name in $harnesses; do
  log="$out/logs/$name.log"
  # Inputs that once crashed a harness (test/fuzz/crashes/<harness>-*) must
  # run clean before any fuzzing.
  crashes=$(ls test/fuzz/crashes/"$name"-* 2>/dev/null || true)
  if [ -n "$crashes" ]; then
    if ! "$out/$name" $crashes >"$out/logs/$name.replay.log" 2>&1; then
      failed=1
      echo "fuzz: $name: an input in test/fuzz/crashes/ crashes again (log: $out/logs/$name.replay.log)"
      grep -a -E 'fuzz: FAIL|ERROR: |SUMMARY: |^Running: ' "$out/logs/$name.replay.log" | tail -n 4 | sed 's/^/  /'
      continue
    fi
  fi
  seeds=""
  [ -d "test/fuzz/corpus/$name" ] && seeds="test/fuzz/corpus/$name"
  mkdir -p "$out/corpus/$name"
  echo "fuzz: $name for ${seconds}s (log: $log)"
  set +e
  "$out/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/$name-" ${FUZZ_ARGS:-} \
    "$out/corpus/$name" $seeds >"$log" 2>&1
  rc=$?
  set -e
  execs=$(stat number_of_executed_units "$log")
  rate=$(stat average_exec_per_sec "$log")
  if [ -z "$execs" ]; then # no final stats after a crash: the last status line
    execs=$(grep -a -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
  fi
  if [ "$rc" -eq 0 ]; then
    verdict="no crash"
  else
    failed=1
    verdict="CRASHED (exit $rc)"
  fi
  echo "fuzz: $name: ${execs:-?} executions, ${rate:-?} exec/s, $verdict"
  if [ "$rc" -ne 0 ]; then
    grep -a -E 'fuzz: FAIL|ERROR: |SUMMARY: |Test unit written|artifact_prefix' "$log" | head -n 8 | sed 's/^/  /'
  fi
done
exit "$failed"
