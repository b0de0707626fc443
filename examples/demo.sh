#!/usr/bin/env bash
# End-to-end demo on bundled data: compile → train → search → export on examples/digits.space
# (scikit-learn's 8×8 digits, upscaled to 32×32).  Writes runs/demo/:
#   checkpoint/          the trained supernet (safetensors + JSON)      log.csv   per-epoch log
#   results.jsonl        every subnet the evolution evaluated           best.json the best (test accuracy)
#   pareto.png           accuracy vs params, Pareto front, best         subnet/   the best subnet, standalone
# About 3 minutes on 2 CPU cores.  Override with EPOCHS=…, THREADS=…, OUT=…, WHERE=….
# One torch thread by default: barely slower on an idle machine (these models are tiny) and many
# times faster when other processes compete for the cores (OpenMP threads wait on each other).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/demo}
EPOCHS=${EPOCHS:-60}
WHERE=${WHERE:-params<=250K}
THREADS="--threads ${THREADS:-1}"
SPACE=examples/digits.space

start=$(date +%s)
rm -rf "$OUT"
echo "== compile $SPACE"
$PY -m spacelang compile "$SPACE" -o "$OUT" $THREADS
echo "== train: $EPOCHS epochs, uniform sampling (AutoFormer), digits"
$PY -m spacelang train "$SPACE" --data digits -o "$OUT" --resume --epochs "$EPOCHS" $THREADS
echo "== search: evolution (population 20, 10 generations) under $WHERE, on the search-validation split"
$PY -m spacelang search "$OUT" -o "$OUT" --where "$WHERE" --population 20 --generations 10 $THREADS
echo "== export the best subnet"
$PY -m spacelang export "$OUT" --arch "$OUT/best.json" -o "$OUT/subnet"
echo "== done in $(( $(date +%s) - start )) s: $OUT/best.json, $OUT/pareto.png"
cat "$OUT/best.json"
