#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: install packages, build, run ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
./tools/build.sh
ctest --test-dir build --output-on-failure -j1 "$@"
# The fuzz targets (clang, ASan + UBSan) for 10 s each from their saved inputs.
./tools/fuzz.sh 10
