#!/usr/bin/env bash
# The GPU check, one command, for a machine with a CUDA LibTorch (PyTorch's) and no gRPC:
#   1. builds the model core alone (LibTorch + Abseil: RESBM_WITH_SERVICES=OFF) into build-core/
#      against $Torch_DIR, else python3's torch;
#   2. runs the core's tests; where a GPU is visible the CUDA rows of compute_device_test,
#      wire_transfer_test and device_parity_test run against the CPU results, with the
#      tolerances each states, while every other core test runs as in CI;
#   3. benchmarks one stage of the paper's model (d 2048, 5 blocks, 16 heads, SwiGLU 5632,
#      microbatches of 4 x 2048 tokens) forward and backward, in fp32 and in bf16, against a
#      square matmul of the same dtype measured in the same run (model FLOPs utilisation).
# Without a GPU (this machine, CI) it does the same on the CPU at the default job's size.
#
#   tools/gpu_check.sh [OUT_DIR]     # 7 files into OUT_DIR (default build-core/gpu-check):
#                                    # gpu_check.txt (the summary), configure/build/ctest logs,
#                                    # gpu_tests.log, bench-fp32.json, bench-bf16.json
#
# Abseil and GoogleTest: the system's if present, else the Debian .debs tools/gpu_deps.sh
# downloaded into .gpu-deps/, unpacked into build-core/deps (no root, nothing outside the tree).
# The bf16 stage times feed the simulator's GPU projection on a machine with the full build:
#   tools/study_network --project-only --project-stage-json OUT_DIR/bench-bf16.json
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-core/gpu-check}
mkdir -p "$out" build-core
log() { echo "gpu_check: $*" | tee -a "$out/gpu_check.txt"; }
: > "$out/gpu_check.txt"

torch_dir=${Torch_DIR:-}
if [ -z "$torch_dir" ] && python3 -c 'import torch' 2>/dev/null; then
  torch_dir=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "share/cmake/Torch"))')
fi
log "LibTorch: ${torch_dir:-found by CMake}"
torch_cuda=$(python3 -c 'import torch; print(torch.version.cuda or "")' 2>/dev/null || true)
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DRESBM_WITH_SERVICES=OFF ${torch_dir:+-DTorch_DIR=$torch_dir})
# A CUDA LibTorch's CMake config looks for the CUDA toolkit.
for cuda in "${CUDA_HOME:-}" /usr/local/cuda; do
  if [ -n "$cuda" ] && [ -x "$cuda/bin/nvcc" ]; then
    export PATH="$cuda/bin:$PATH" CUDA_HOME="$cuda"
    cmake_args+=(-DCUDAToolkit_ROOT="$cuda" -DCUDA_TOOLKIT_ROOT_DIR="$cuda")
    nvcc_version=$("$cuda/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\.[0-9]*\).*/\1/p')
    log "CUDA toolkit: $cuda (nvcc $nvcc_version; PyTorch built with CUDA ${torch_cuda:-?})"
    if [ -n "$torch_cuda" ] && [ "${nvcc_version%%.*}" != "${torch_cuda%%.*}" ]; then
      log "warning: the toolkit's CUDA major differs from PyTorch's; linking may mix runtimes"
    fi
    break
  fi
done

system_package() { compgen -G "/usr/lib/*/cmake/$1/$2" >/dev/null || compgen -G "/usr/lib/cmake/$1/$2" >/dev/null; }
deps=$PWD/build-core/deps
# Unpacks .gpu-deps/<prefix>*.deb into $deps; 1 if there is none. Without dpkg-deb a .deb is
# an ar archive holding data.tar.*.
unpack() {
  local found=1 deb member
  for deb in .gpu-deps/"$1"*.deb; do
    [ -e "$deb" ] || continue
    found=0
    mkdir -p "$deps"
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$deps"
    else
      member=$(ar t "$deb" | grep '^data\.tar')
      (cd "$deps" && ar x "$OLDPWD/$deb" "$member" && tar -xf "$member" && rm -f "$member")
    fi
  done
  return $found
}
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
# RESBM_USE_GPU_DEPS=1 takes the .debs even where the system has both (to check them).
if [ -n "${RESBM_USE_GPU_DEPS:-}" ] || ! system_package absl abslConfig.cmake; then
  if unpack libabsl; then
    cmake_args+=(-Dabsl_DIR="$deps/usr/lib/$multiarch/cmake/absl")
    log "Abseil: Debian's, unpacked from .gpu-deps/"
  else
    log "no Abseil here and no .gpu-deps/: run tools/gpu_deps.sh on a Debian machine first"
    exit 1
  fi
fi
tests=ON
if [ -n "${RESBM_USE_GPU_DEPS:-}" ] || ! system_package GTest GTestConfig.cmake; then
  if unpack libgtest && unpack libgmock; then
    cmake_args+=(-DGTest_DIR="$deps/usr/lib/$multiarch/cmake/GTest")
    log "GoogleTest: Debian's, unpacked from .gpu-deps/"
  else
    log "GoogleTest not found: building the benchmark only"
    tests=OFF
  fi
fi
cmake_args+=(-DRESBM_BUILD_TESTS=$tests)

if ! cmake -S . -B build-core "${cmake_args[@]}" >"$out/configure.log" 2>&1; then
  tail -40 "$out/configure.log" || true
  log "configure failed (whole log: $out/configure.log)"
  exit 1
fi
grep -E "LibTorch .*CUDA" "$out/configure.log" | tee -a "$out/gpu_check.txt"
if ! cmake --build build-core -j"${RESBM_JOBS:-$(nproc)}" >"$out/build.log" 2>&1; then
  grep -E "error|Error" -A3 "$out/build.log" | head -60 || true
  log "build failed (whole log: $out/build.log)"
  exit 1
fi
log "built"

gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  gpu=1
  nvidia-smi -L | tee -a "$out/gpu_check.txt"
fi
status=0
if [ "$tests" = ON ]; then
  if OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} ctest --test-dir build-core --output-on-failure -j1 \
      >"$out/ctest.log" 2>&1; then
    log "tests passed"
  else
    status=1
    log "tests FAILED"
  fi
  grep -E "tests passed|tests failed|Failed" "$out/ctest.log" | tee -a "$out/gpu_check.txt" || true
  # The tests with GPU rows, whole: which cases ran on the GPU, which skipped and why.
  : > "$out/gpu_tests.log"
  for t in compute_device_test wire_transfer_test device_parity_test; do
    echo "== $t" >>"$out/gpu_tests.log"
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} build-core/tests/$t >>"$out/gpu_tests.log" 2>&1 || true
  done
  grep -E "^== |^\[  (PASSED  |SKIPPED |FAILED  )\] [0-9]+ test|losses" "$out/gpu_tests.log" |
    tee -a "$out/gpu_check.txt" || true
fi

if [ "$gpu" = 1 ]; then
  shape=(--device cuda:0 --d-model 2048 --layers 5 --heads 16 --mlp-hidden 5632 --seq 2048
         --batch 4 --matmul-size 8192 --repeats 10)
else
  log "no CUDA device: the CPU fallback at the default job's size"
  shape=(--device cpu --threads "$(nproc)")
fi
for dtype in fp32 bf16; do
  if ! build-core/bin/bench_stage "${shape[@]}" --dtype $dtype --json "$out/bench-$dtype.json" \
      2>&1 | tee -a "$out/gpu_check.txt"; then
    status=1
    log "bench_stage --dtype $dtype FAILED"
  fi
done
log "done (status $status); results in $out"
exit $status
