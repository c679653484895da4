#!/usr/bin/env bash
# Brings the compose cluster up for real (all but Grafana, which only Docker Hub has), runs
# the default model for a few steps through the one-shot submit service, and checks that the
# job SUCCEEDED and that Prometheus scrapes every service with the numbers the job implies;
# then tears it all down. Needs root, dockerd, docker-compose and debootstrap (Debian's).
#   deploy/compose/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
compose=(docker-compose -f deploy/compose/docker-compose.yml -p resbm-check)
steps="${STEPS:-20}"

deploy/docker/make-base-image.sh
docker image inspect resbm-cpu:latest >/dev/null 2>&1 ||
  docker build -f deploy/docker/Dockerfile -t resbm-cpu:latest .

trap '"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true' EXIT
"${compose[@]}" up -d coordinator worker-0 worker-1 worker-2 worker-3 prometheus
echo "check: submitting the default job for $steps steps"
RESBM_SUBMIT_FLAGS="--steps $steps" "${compose[@]}" run --rm submit

# One instant query against Prometheus: prints the sorted values.
query() {
  python3 - "$1" <<'PY'
import json, sys, urllib.parse, urllib.request
url = "http://127.0.0.1:9095/api/v1/query?query=" + urllib.parse.quote(sys.argv[1])
result = json.load(urllib.request.urlopen(url, timeout=10))["data"]["result"]
print(" ".join(sorted(r["value"][1] for r in result)))
PY
}
expect() {  # expect PROMQL VALUES [TRIES]
  local got=""
  for _ in $(seq 1 "${3:-30}"); do
    got="$(query "$1")"
    [ "$got" = "$2" ] && { echo "check: $1 = $got"; return 0; }
    sleep 2
  done
  echo "check: FAILED: $1 = '$got', expected '$2'" >&2
  "${compose[@]}" logs --tail 30 >&2
  exit 1
}
expect 'sum(up)' 5
expect 'resbm_steps_total' "$steps"
expect 'resbm_jobs{state="succeeded"}' 1
expect 'resbm_workers{health="healthy"}' 4
# 4 stages: 3 boundaries, each seen from both sides; bf16 wire at r = 128.
expect 'resbm_transport_compression_ratio' "128 128 128 128 128 128"
expect 'count(ALERTS{alertstate="firing"}) or vector(0)' 0
echo "check: the compose cluster ran the job and Prometheus scraped every service"
