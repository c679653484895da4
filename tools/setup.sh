#!/usr/bin/env bash
# Installs every Debian 12 package that the build, the tests and the main job need.
# Idempotent: packages already present are skipped by apt; safe to run again.
set -euo pipefail

packages=(
  # Toolchain.
  build-essential cmake ninja-build ccache pkg-config git
  # RPC and serialization.
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev nlohmann-json3-dev
  # Model runtime. libopenblas0-openmp makes LibTorch's fp32 matmul ~50x faster than the
  # reference BLAS; only the OpenMP flavour honours torch::set_num_threads.
  libtorch-dev libopenblas0-openmp
  # Metrics, persistence, tests.
  prometheus-cpp-dev libsqlite3-dev libgtest-dev libgmock-dev
  # The default training corpus: public-domain fortune cookie texts (plain UTF-8 files).
  fortunes
  # Plots for the studies.
  gnuplot-nox
  # Tools the test suite uses: a real Prometheus server scrapes a running cluster
  # (prometheus; its postinst starts no service), the deploy files' checker (python3-yaml),
  # the network study's namespaces and rate limits (iproute2: ip, tc), certificates for the
  # TLS tests and tools/make_certs.sh (openssl).
  python3 python3-yaml procps prometheus iproute2 openssl
  # The independent reference of the model math (tests/reference/) and examples/python/:
  # Debian's PyTorch and NumPy, importable from /usr/bin/python3 only.
  python3-torch python3-numpy
  # The fuzz targets: clang with libFuzzer and the sanitizer runtimes.
  clang libclang-rt-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Make OpenBLAS (OpenMP flavour) the BLAS that LibTorch loads through libblas.so.3.
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
for lib in libblas.so.3 liblapack.so.3; do
  target=/usr/lib/$arch/openblas-openmp/$lib
  if [ -e "$target" ]; then
    current=$(update-alternatives --query "$lib-$arch" 2>/dev/null | awk '/^Value:/ {print $2}')
    if [ "$current" != "$target" ]; then
      $SUDO update-alternatives --set "$lib-$arch" "$target" >/dev/null
    fi
  fi
done
echo "setup: ok (BLAS: $(readlink -f /usr/lib/$arch/libblas.so.3))"
