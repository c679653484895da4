#!/usr/bin/env bash
# Configures and builds (Release) into build/; extra arguments are build targets.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache: PCH users are cacheable only with these sloppiness settings.
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${RESBM_CMAKE_ARGS:-} >/dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build build -j"${RESBM_JOBS:-2}" "${targets[@]}"
