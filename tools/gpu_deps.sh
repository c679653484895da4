#!/usr/bin/env bash
# Downloads (here, on a Debian 12 machine with apt) the Debian packages the model core needs
# beyond LibTorch, Abseil and GoogleTest, into .gpu-deps/ (git-ignored), so tools/gpu_check.sh
# can unpack them on a GPU machine that has PyTorch but no Abseil, no GoogleTest and no
# network. 1.7 MB; name .gpu-deps in the device tool's carry list.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-deps
cd .gpu-deps
# apt's sandbox user cannot write here; the download itself is the same.
apt-get download -o APT::Sandbox::User=root libabsl-dev libabsl20220623 libgtest-dev libgmock-dev
ls -l ./*.deb
