#!/usr/bin/env bash
# Sets everything up (Debian packages), builds gsdiff with its tests (Release, -j2) and runs the suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD=${BUILD:-build-test}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGSDIFF_BUILD_TESTS=ON ${GSDIFF_CMAKE_ARGS:-}
cmake --build "$BUILD" -j2
# The data parsers' libFuzzer targets are torch-free and build with clang in their own tree; a short
# smoke run of each joins the suite (GSDIFF_SKIP_FUZZ=1 skips them).
if [ -z "${GSDIFF_SKIP_FUZZ:-}" ]; then
  CXX=clang++ cmake -S tests/fuzz -B "$BUILD-fuzz" -G Ninja >/dev/null
  cmake --build "$BUILD-fuzz" -j2
fi
ctest --test-dir "$BUILD" -j2 --output-on-failure --timeout 900
[ -n "${GSDIFF_SKIP_FUZZ:-}" ] || ctest --test-dir "$BUILD-fuzz" --output-on-failure --timeout 300
