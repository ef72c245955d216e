#!/usr/bin/env bash
# Builds gsdiff against the CUDA build of PyTorch 2.14.1 (venv .venv-cuda, about 5.5 GB) with this machine's CUDA
# toolkit, no GPU needed: every CUDA path compiles and links (NCCL process group and GradSync, CUDA generators and
# caching-allocator stats, bf16 autocast, fused SDPA); then runs the CPU suite against that build, where the
# *_CUDA tests skip. Usage: bash scripts/cuda_build.sh [build|test|all] (default all). BUILD=build-cuda-cpu.
set -euo pipefail
cd "$(dirname "$0")/.."
phase=${1:-all}
venv=${GSDIFF_CUDA_VENV:-$PWD/.venv-cuda}
BUILD=${BUILD:-build-cuda-cpu}
command -v nvcc >/dev/null || { echo "cuda_build.sh: nvcc not found: the CUDA toolkit is needed to configure a CUDA LibTorch" >&2; exit 1; }
if ! "$venv/bin/python" -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.14.1") and torch.version.cuda else 1)' 2>/dev/null; then
  echo "cuda_build.sh: installing torch==2.14.1 torchvision==0.29.1 (CUDA) into $venv"
  [ -d "$venv" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
fi
"$venv/bin/python" -c 'import torch; print("cuda_build.sh: torch", torch.__version__, "CUDA", torch.version.cuda)'
t0=$(date +%s)
if [[ $phase == build || $phase == all ]]; then
  # No GPU to query: name the architectures (Hopper, as on the lent H200, and Ampere).
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-"8.0;9.0"}
  mkdir -p "$BUILD"
  # The toolkit's root: CUDA_HOME, else /usr/local/cuda, else where nvcc lives (/usr/local/bin/nvcc may be a
  # wrapper script, so nvcc itself is asked: its include dir sits beside its bin dir).
  cuda_root=${CUDA_HOME:-/usr/local/cuda}
  [ -x "$cuda_root/bin/nvcc" ] || cuda_root=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  [ -f "$cuda_root/include/cuda.h" ] || { echo "cuda_build.sh: no CUDA toolkit at $cuda_root (set CUDA_HOME)" >&2; exit 1; }
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGSDIFF_BUILD_TESTS=ON -DGSDIFF_PYTHON="$venv/bin/python" \
        -DCUDA_TOOLKIT_ROOT_DIR="$cuda_root" -DCMAKE_CUDA_COMPILER="$cuda_root/bin/nvcc" -DCMAKE_CUDA_ARCHITECTURES="80;90" \
        ${GSDIFF_CMAKE_ARGS:-} > "$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
  grep '^-- gsdiff' "$BUILD/configure.log"
  grep -q '^-- gsdiff: LibTorch .* CUDA ON' "$BUILD/configure.log" \
    || { echo "cuda_build.sh: the configure did not find CUDA in $venv's LibTorch ($BUILD/configure.log)" >&2; exit 1; }
  cmake --build "$BUILD" -j2
fi
t1=$(date +%s)
if [[ $phase == test || $phase == all ]]; then
  ctest --test-dir "$BUILD" -j2 --output-on-failure --timeout 900 -E '^install_consumer$'
fi
t2=$(date +%s)
echo "cuda_build.sh: build $((t1 - t0)) s, CPU suite $((t2 - t1)) s"
