#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan, into build-fuzz/) and runs each for
# SECONDS (default 10), starting from the saved inputs in tests/fuzz/corpus/<target>/.
#
#   tools/fuzz.sh            # the CI-sized run: 10 s per target
#   tools/fuzz.sh 3600       # a longer run (an hour per target)
#
# A crash stops the run: the input is in build-fuzz/artifacts/<target>/; reproduce it with
# build-fuzz/bin/<target>_fuzzer FILE, fix it, and copy the file into tests/fuzz/corpus/<target>/
# so fuzz_regression_test keeps it fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
CXX=${RESBM_FUZZ_CXX:-clang++} cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRESBM_FUZZ=ON -DRESBM_USE_PCH=OFF >/dev/null
targets=(frame_decode job_config token_shard safetensors)
cmake --build build-fuzz -j"${RESBM_JOBS:-2}" $(printf -- '--target %s_fuzzer ' "${targets[@]}")
for target in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$target
  artifacts=build-fuzz/artifacts/$target/
  mkdir -p "$corpus" "$artifacts"
  cp -n tests/fuzz/corpus/"$target"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: $target for ${seconds}s"
  if ! build-fuzz/bin/"$target"_fuzzer -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -artifact_prefix="$artifacts" -print_final_stats=1 "$corpus" \
      > "build-fuzz/$target.log" 2>&1; then
    tail -40 "build-fuzz/$target.log"
    echo "fuzz: $target FAILED; the input is in $artifacts" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^#[0-9]+ *DONE" "build-fuzz/$target.log" | tail -2
done
echo "fuzz: ${targets[*]}: no crash in ${seconds}s each"
