#!/usr/bin/env bash
# The main job from a fresh Debian 12 machine: install packages, build, train the default
# model (4 stages, ResBM 128x, bf16 wire) with live progress. Writes out/summary.json and
# out/loss.csv. Extra arguments go to resbm-train (e.g. --steps 50).
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/setup.sh
./tools/build.sh resbm_train_bin bench_matmul
./build/bin/bench_matmul --repeats 3
./build/bin/resbm-train --summary-json out/summary.json --loss-csv out/loss.csv "$@"
