#!/usr/bin/env bash
# Quickstart: build (Release), train on Fashion-MNIST for a few minutes on CPU, score the bound, sample a grid.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD=${BUILD:-build-release}
OUT=${OUT:-out/quickstart}
THREADS=${THREADS:-0}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target gsdiff_cli -j2
GSDIFF="$BUILD/bin/gsdiff"
start=$(date +%s)
"$GSDIFF" train --config configs/quickstart.json --out "$OUT" --threads "$THREADS" "$@"
CKPT=$(ls "$OUT"/ckpt-*.gsdiff | sort | tail -n 1)
"$GSDIFF" eval --checkpoint "$CKPT" --threads "$THREADS" | tee "$OUT/eval.json"
"$GSDIFF" sample --checkpoint "$CKPT" --num 64 --out "$OUT/samples.png" --threads "$THREADS"
end=$(date +%s)
python3 -c "import json,sys; j=json.load(open('$OUT/eval.json')); print('test bound: %.3f +- %.3f %s (%d images, %s, %d t/example)' % (j['bound'], j['stderr'], j['unit'], j['examples'], j['estimate'], j.get('time_samples', j.get('quadrature_nodes', 0))))" 2>/dev/null || cat "$OUT/eval.json"
echo "samples: $OUT/samples.png   total time (train + eval + sample): $((end - start)) s"
