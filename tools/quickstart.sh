#!/usr/bin/env bash
# The main job from a fresh Debian 12 machine: install packages, build, and run the default
# job (4 stages, ResBM 128x, bf16 wire) on a local cluster: a coordinator and 4 stage-worker
# processes talking gRPC over loopback, with live progress. Writes out/summary.json,
# out/loss.csv and the trained model in out/model/ (resbm-generate --model out/model samples
# from it); worker logs go to out/local-cluster/. Extra arguments go to `resbmctl local`
# (e.g. --steps 50).
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
./tools/build.sh resbmctl_bin resbm_generate_bin bench_matmul
./build/bin/bench_matmul --repeats 3
./build/bin/resbmctl local --summary-json out/summary.json --loss-csv out/loss.csv "$@"
