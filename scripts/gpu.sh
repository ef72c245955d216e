#!/usr/bin/env bash
# On a lent GPU machine (PyTorch with CUDA, CMake, ninja, nvcc; no Debian packages): builds gsdiff against the
# LibTorch inside that PyTorch through the same CMake path as everywhere (GSDIFF_PYTHON = its python3), runs the
# CUDA tests, and benchmarks gsdiff beside PyTorch eager and torch.compile on the same card: img/s and MFU of
# the 35.7M U-Net at batch 128, tok/s and MFU of the 12 x 768 transformer at L = 256 (bench/gpu_summary.py).
# Everything it measures goes under $OUT (the device tool brings it back). Prepare here first:
#   bash scripts/gpu_deps.sh
#   run(command="bash scripts/gpu.sh build", carry=[".deps"])   # then: test, bench (the build dir stays while warm)
# Phases: build | test | bench | all. UNTESTED until a session is lent a GPU: read its output.
set -euo pipefail
phase=${1:-all}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${OUT:-$root/out/gpu}
mkdir -p "$out"
[[ -f .deps/commit ]] && export GSDIFF_COMMIT=$(cat .deps/commit)
build=build-cuda
py=${PYTHON:-python3}

if [[ $phase == build || $phase == all ]]; then
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    $py -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
    echo "commit ${GSDIFF_COMMIT:-unknown}"; nproc; } | tee "$out/machine.txt"
  arch=$($py -c 'import torch; m, n = torch.cuda.get_device_capability(0); print(f"{m}.{n}")')
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$arch}
  cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGSDIFF_PYTHON="$(command -v $py)" -DGSDIFF_BUILD_TESTS=ON \
        2>&1 | tail -n 30 | tee "$out/configure.log"
  cmake --build $build -j "$(nproc)" 2>&1 | tail -n 60 | tee "$out/build.log"
fi

if [[ $phase == test || $phase == all ]]; then
  # The CUDA tests, then the CPU suites that run fast (the whole suite is for the CPU machine's CI).
  ctest --test-dir $build -R CUDA --output-on-failure --timeout 300 2>&1 | tail -n 80 | tee "$out/ctest-cuda.log"
  ctest --test-dir $build -L 'core|models' -j 8 --timeout 300 2>&1 | tail -n 40 | tee "$out/ctest-core-models.log"
fi

if [[ $phase == bench || $phase == all ]]; then
  g=$build/bin/gsdiff
  # The issue's figures: CIFAR U-Net at batch 128, the 12 x 768 transformer at L = 256; gsdiff fp32 and bf16,
  # PyTorch eager and torch.compile in bf16 (and eager fp32), all on this card.
  unet=configs/models/unet-ddpm-cifar10.json tr=configs/models/transformer-base.json
  for prec in fp32 bf16; do
    $g bench --device cuda --config $unet --batch 128 --warmup 5 --steps 20 --sample-calls 20 --precision $prec \
        --label "unet-cifar10 $prec" > "$out/bench-unet-$prec.json" || echo "gsdiff unet $prec failed" >&2
    $g bench --device cuda --config $tr --batch 64 --seq-len 256 --warmup 5 --steps 20 --sample-calls 20 \
        --precision $prec --label "transformer-base $prec" > "$out/bench-transformer-$prec.json" || echo "gsdiff transformer $prec failed" >&2
  done
  for prec in fp32 bf16; do
    for mode in eager compiled; do
      [[ $prec == fp32 && $mode == compiled ]] && continue
      flag=(); [[ $mode == compiled ]] && flag=(--compile)
      timeout 240 $py bench/compare_python.py --device cuda --precision $prec --config $unet --batch 128 --warmup 5 \
          --steps 20 --sample-calls 20 "${flag[@]}" > "$out/python-unet-$prec-$mode.json" || echo "python unet $prec $mode failed" >&2
      timeout 240 $py bench/compare_python.py --device cuda --precision $prec --config $tr --batch 64 --seq-len 256 \
          --warmup 5 --steps 20 --sample-calls 20 "${flag[@]}" > "$out/python-transformer-$prec-$mode.json" || echo "python transformer $prec $mode failed" >&2
    done
  done
  $py bench/gpu_summary.py "$out" | tee "$out/summary.json"
  ls -l "$out"
fi
