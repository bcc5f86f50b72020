#!/usr/bin/env bash
# GPU checks, for a machine with CUDA and PyTorch already installed:
#   1. the whole test suite (the CUDA tests run instead of being skipped);
#   2. the explain() benchmark on the GPU.
# Usage: benchmarks/gpu_checks.sh IMAGES_DIR OUT_DIR [N_IMAGES]
set -uo pipefail
images=${1:?images folder}; out=${2:?output folder}; n=${3:-3}
export PYTHONPATH="$PWD/igospp_src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__)' | tee -a "$out/gpu.txt"
timeout 150 python3 -m pytest -q -p no:cacheprovider -x tests igospp_src/igospp 2>&1 | tail -n 25 | tee "$out/pytest.txt"
i=0
for spec in "igospp,igos,naive,insertion 7,28,224 $n" "mask 7,28,224 1"; do
  set -- $spec
  i=$((i + 1))
  timeout 180 python3 benchmarks/bench_explain.py --device cuda --images "$images" --n "$3" \
    --methods "$1" --resolutions "$2" --out "$out/bench_$i.json" 2>&1 | grep -v Warning | tee -a "$out/bench.txt"
done
