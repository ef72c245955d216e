#!/usr/bin/env bash
# Installs gsdiff's build and run dependencies from Debian (bookworm); idempotent, run as root.
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev            # LibTorch 1.13 (CPU), found by find_package(Torch)
  libopenblas0-openmp     # otherwise matrix products run on netlib reference BLAS (~10x slower)
  libcxxopts-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libgloo-dev             # needed by the c10d headers
  libpng-dev zlib1g-dev
  dataset-fashion-mnist   # real images on a fresh machine
  python3-torch           # /usr/bin/python3 side checks (loading exports, reference models)
  clang libclang-rt-14-dev  # libFuzzer targets for the data parsers
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
