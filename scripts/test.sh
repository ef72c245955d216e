#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), builds gsdiff with its tests against the LibTorch inside the pinned
# PyTorch 2.13 (Release, -j2) and runs the whole suite with CTest; then the second configuration, Debian's
# LibTorch 1.13 (C++17), with its core, models, data, train and sample suites, the sample suite less its sampler
# recovery statistics (Samplers/*Recovery: sampler arithmetic on tensor ops the 2.13 run covers, about 200 s of CPU).
# GSDIFF_SKIP_LIBTORCH113=1 skips the second configuration, GSDIFF_SKIP_FUZZ=1 the fuzz smokes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${GSDIFF_SKIP_LIBTORCH113:-}" ] || export GSDIFF_LIBTORCH113=1
bash scripts/setup.sh
BUILD=${BUILD:-build-test}
t0=$(date +%s)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGSDIFF_BUILD_TESTS=ON ${GSDIFF_CMAKE_ARGS:-}
cmake --build "$BUILD" -j2
# The data parsers' libFuzzer targets are torch-free and build with clang in their own tree; a short
# smoke run of each joins the suite.
if [ -z "${GSDIFF_SKIP_FUZZ:-}" ]; then
  CXX=clang++ cmake -S tests/fuzz -B "$BUILD-fuzz" -G Ninja >/dev/null
  cmake --build "$BUILD-fuzz" -j2
fi
t1=$(date +%s)
ctest --test-dir "$BUILD" -j2 --output-on-failure --timeout 900
[ -n "${GSDIFF_SKIP_FUZZ:-}" ] || ctest --test-dir "$BUILD-fuzz" --output-on-failure --timeout 300
t2=$(date +%s)
echo "test.sh: LibTorch 2.13: build $((t1 - t0)) s, tests $((t2 - t1)) s"
if [ -z "${GSDIFF_SKIP_LIBTORCH113:-}" ]; then
  cmake -S . -B "$BUILD-113" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGSDIFF_BUILD_TESTS=ON -DGSDIFF_LIBTORCH=system
  cmake --build "$BUILD-113" -j2 --target gsdiff_core_tests gsdiff_models_tests gsdiff_data_tests gsdiff_train_tests \
        gsdiff_sample_tests
  t3=$(date +%s)
  ctest --test-dir "$BUILD-113" -j2 -L '^(core|models|data|train|sample)$' -E 'Recovery\.' --output-on-failure \
        --timeout 900
  t4=$(date +%s)
  echo "test.sh: LibTorch 1.13: build $((t3 - t2)) s, tests $((t4 - t3)) s"
fi
