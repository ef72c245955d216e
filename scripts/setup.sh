#!/usr/bin/env bash
# Installs gsdiff's dependencies, idempotently, as root: Debian (bookworm) packages, and the venv .venv with the
# pinned PyTorch 2.13.0 CPU wheel (scripts/requirements.txt), whose LibTorch the main build compiles against.
#   GSDIFF_LIBTORCH113=1   also Debian's libtorch-dev (LibTorch 1.13, CPU): the second configuration
#   GSDIFF_VENV=DIR        the venv's place (default .venv in the checkout)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PKGS=(
  build-essential cmake ninja-build pkg-config
  python3 python3-venv    # the venv, if no other python3 is first on PATH
  libcxxopts-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgloo-dev             # needed by the c10d headers (ProcessGroupGloo.hpp)
  libpng-dev zlib1g-dev
  libdnnl-dev             # oneDNN 2 for the cached CPU convolutions (models/onednn_conv.h)
  dataset-fashion-mnist   # real images on a fresh machine
  dict-gcide              # real English text (the text configs' stand-in for text8 in the tests)
  clang libclang-rt-14-dev  # libFuzzer targets for the data parsers
)
if [ -n "${GSDIFF_LIBTORCH113:-}" ]; then
  PKGS+=(libtorch-dev        # LibTorch 1.13 (CPU), found by find_package(Torch) with -DGSDIFF_LIBTORCH=system
         libopenblas0-openmp)  # otherwise 1.13 runs matrix products on netlib reference BLAS (~10x slower)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} Debian packages present"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The venv: rebuilt only when scripts/requirements.txt changed since it was made (a stamp inside it).
venv=${GSDIFF_VENV:-$root/.venv}
req="$root/scripts/requirements.txt"
stamp="$venv/.gsdiff-requirements"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
  echo "setup: $venv has $(cat "$req" | grep -c '==') pinned packages"
else
  py=$(command -v python3)
  echo "setup: making $venv with $py ($("$py" --version 2>&1)) and scripts/requirements.txt"
  [ -d "$venv" ] || "$py" -m venv "$venv"
  # torch==2.13.0 is the CPU wheel that lies on this machine's disk; pinned exactly, so no CUDA download.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  "$venv/bin/python" -c 'import torch; assert torch.__version__.startswith("2.13.0"), torch.__version__; print("setup: torch", torch.__version__)'
  cp "$req" "$stamp"
fi
