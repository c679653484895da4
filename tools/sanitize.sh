#!/usr/bin/env bash
# The test suite under sanitizers, each in its own build directory:
#
#   tools/sanitize.sh address [CTEST_ARGS...]   # ASan + UBSan, build-asan/, the whole suite
#   tools/sanitize.sh thread  [CTEST_ARGS...]   # TSan, build-tsan/: the transport's and the
#                                               # coordinator's unit tests (see below)
#
# What TSan can say here is limited by Debian's libraries, which are not built with TSan:
# absl::Mutex (our locks) lives in libabsl, so TSan does not see it taken and reports data
# written under it as racing (e.g. PipelineDriver::RunAll's `*last = s` under MutexLock in
# job_api_test); gRPC hands work between its threads inside libgrpc. The default set is the
# unit tests of the mailbox, registry, store, limiter, tokens and TLS; add -R job_api_test to
# see the process-level reports (tools/sanitizers/tsan.supp lists what is suppressed and why).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: tools/sanitize.sh address|thread [CTEST_ARGS...]}
shift
case "$mode" in
  address) dir=build-asan ;;
  thread) dir=build-tsan ;;
  *) echo "sanitize: '$mode'; expected address or thread" >&2; exit 2 ;;
esac
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRESBM_SANITIZE="$mode" >/dev/null
# LibTorch and gRPC allocate at exit in ways LeakSanitizer reports as leaks of theirs; the
# suppressions name them, nothing of ours.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tools/sanitizers/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$PWD/tools/sanitizers/tsan.supp}
export OMP_NUM_THREADS=1
if [ "$mode" = thread ]; then
  tests='frame_mailbox_test|worker_registry_test|job_store_test|submission_limiter_test|bearer_tokens_test|transport_security_test'
  cmake --build "$dir" -j"${RESBM_JOBS:-2}" --target frame_mailbox_test worker_registry_test \
    job_store_test submission_limiter_test bearer_tokens_test transport_security_test \
    job_api_test resbm_coordinator_bin resbm_worker_bin resbmctl_bin
  if [ $# -eq 0 ]; then set -- -R "$tests"; fi
  ctest --test-dir "$dir" --output-on-failure -j1 "$@"
else
  cmake --build "$dir" -j"${RESBM_JOBS:-2}"
  ctest --test-dir "$dir" --output-on-failure -j1 "$@"
fi
