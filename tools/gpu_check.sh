#!/usr/bin/env bash
# The GPU check: builds the model core alone (LibTorch + Abseil, no gRPC: RESBM_WITH_SERVICES=OFF)
# into build-core/, runs its tests, and benchmarks one stage's forward+backward against a matmul
# on the first CUDA device, or on the CPU where there is none (this machine, CI).
#
#   tools/gpu_check.sh                 # Torch_DIR from $Torch_DIR, else from python3's torch
#   Torch_DIR=/path/share/cmake/Torch tools/gpu_check.sh
#
# GoogleTest comes from Debian's libgtest-dev; where it is missing (a bare GPU machine) the
# tests are skipped with a message and only the benchmark runs.
set -euo pipefail
cd "$(dirname "$0")/.."
torch_dir=${Torch_DIR:-}
if [ -z "$torch_dir" ] && python3 -c 'import torch' 2>/dev/null; then
  torch_dir=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "share/cmake/Torch"))')
fi
tests=ON
if ! compgen -G '/usr/lib/*/cmake/GTest/GTestConfig.cmake' >/dev/null &&
   ! compgen -G '/usr/lib/cmake/GTest/GTestConfig.cmake' >/dev/null; then
  echo "gpu_check: GoogleTest not installed; building the benchmark only"
  tests=OFF
fi
cmake -S . -B build-core -DCMAKE_BUILD_TYPE=Release -DRESBM_WITH_SERVICES=OFF \
  -DRESBM_BUILD_TESTS=$tests ${torch_dir:+-DTorch_DIR=$torch_dir} >/dev/null
cmake --build build-core -j"${RESBM_JOBS:-$(nproc)}"
if [ "$tests" = ON ]; then
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --test-dir build-core --output-on-failure -j1
fi
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  # A size that fills a large GPU: 2048 wide, 4 blocks, 8 x 2048 tokens per microbatch.
  build-core/bin/bench_stage --device cuda --d-model 2048 --layers 4 --heads 16 \
    --mlp-hidden 5632 --seq 2048 --batch 8 --matmul-size 8192 --repeats 10
else
  echo "gpu_check: no CUDA device; the CPU fallback at the default job's size"
  build-core/bin/bench_stage --device cpu --threads "$(nproc)"
fi
