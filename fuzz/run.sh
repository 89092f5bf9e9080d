#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan + UBSan) and fuzzes each parser for a while, one target at a time.
#   fuzz/run.sh [SECONDS_PER_TARGET (default 30)] [TARGET...]   e.g. fuzz/run.sh 30, fuzz/run.sh 120 mat5 image
# Each target starts from a temporary copy of fuzz/corpus/<target>/, so the repository is never modified.
# Crash, leak, timeout and out-of-memory inputs are kept in build-fuzz/artifacts/<target>/ and logs in
# build-fuzz/logs/<target>.log. Exits non-zero if any target failed.
# Environment: LETHE_FUZZ_BUILD (build directory, default build-fuzz), LETHE_FUZZ_JOBS (build parallelism,
# default 2), LETHE_FUZZ_REQUIRE=1 (fail instead of skipping when clang-14 or libFuzzer is missing).
set -euo pipefail

per_target=${1:-30}
shift || true
if ! [[ $per_target =~ ^[0-9]+$ ]] || ((per_target < 1)); then
  echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]   (targets: idx cifar mat5 stl10 safetensors image)" >&2
  exit 2
fi
all_targets=(idx cifar mat5 stl10 safetensors image)
targets=("${@:-${all_targets[@]}}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "$0: unknown target '$t' (have: ${all_targets[*]})" >&2; exit 2; }
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${LETHE_FUZZ_BUILD:-$root/build-fuzz}
jobs=${LETHE_FUZZ_JOBS:-2}

skip() {
  echo "################################################################################" >&2
  echo "### SKIP: fuzzing not run: $1" >&2
  echo "### Install clang-14 and libclang-rt-14-dev (libFuzzer, sanitizers) and libomp-14-dev." >&2
  echo "################################################################################" >&2
  if [[ ${LETHE_FUZZ_REQUIRE:-0} == 1 ]]; then exit 1; fi
  exit 0
}

command -v clang-14 >/dev/null && command -v clang++-14 >/dev/null || skip "clang-14/clang++-14 not found"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/lethe-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
# libFuzzer's runtime ships separately from the compiler on Debian/Ubuntu: check a trivial target links.
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$scratch/probe.cpp"
clang++-14 -fsanitize=fuzzer,address,undefined "$scratch/probe.cpp" -o "$scratch/probe" 2>"$scratch/probe.log" ||
  skip "clang++-14 cannot link a libFuzzer target ($(head -n 1 "$scratch/probe.log"))"

echo "== configuring and building the fuzz targets in $build"
cmake -S "$root" -B "$build" -DLETHE_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLETHE_CUDA=OFF -DLETHE_TESTS=OFF >"$scratch/configure.log" 2>&1 ||
  { cat "$scratch/configure.log" >&2; echo "$0: cmake configure failed" >&2; exit 1; }
cmake --build "$build" -j"$jobs" --target "${targets[@]/#/fuzz_}"

# Parsers run OpenMP loops; one thread keeps runs reproducible and leak checking free of pool threads.
export OMP_NUM_THREADS=1
# Stack traces for UBSan reports too (ASan prints them by default).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
mkdir -p "$build/logs"
summary=()
failed=0
for t in "${targets[@]}"; do
  corpus="$scratch/corpus-$t"
  cp -r "$root/fuzz/corpus/$t" "$corpus"
  artifacts="$build/artifacts/$t"
  rm -rf "$artifacts"
  mkdir -p "$artifacts"
  log="$build/logs/$t.log"
  echo "== fuzz_$t for ${per_target}s (log: $log)"
  rc=0
  # The outer timeout only guards against libFuzzer itself wedging; -timeout=10 catches slow inputs.
  timeout $((per_target * 2 + 300)) "$build/fuzz/fuzz_$t" "$corpus" -max_total_time="$per_target" \
    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?
  execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log" | tail -n 1)
  new_units=$(awk '/^stat::new_units_added:/ {print $2}' "$log" | tail -n 1)
  line="fuzz_$t: ${execs:-?} execs, ${new_units:-?} new units"
  if ((rc == 0)); then
    summary+=("PASS $line")
  else
    failed=1
    summary+=("FAIL $line, exit $rc")
    echo "---- fuzz_$t failed (exit $rc); end of its log:" >&2
    tail -n 60 "$log" >&2
    for a in "$artifacts"/*; do
      [[ -e $a ]] && summary+=("     reproducer: $a   (rerun: $build/fuzz/fuzz_$t $a)")
    done
  fi
done

echo "== summary (${per_target}s per target)"
printf '%s\n' "${summary[@]}"
exit $failed
