#!/usr/bin/env bash
# The quality bar of the speed options (issue 11), for a machine with CUDA and PyTorch installed:
# every candidate is paired with the faithful default over N photos at 28 x 28 and 224 x 224
# (T = S = 20), resumable, so a second call continues where a time limit stopped the first.
# Usage: benchmarks/gpu_quality.sh IMAGES_DIR OUT_DIR [N_IMAGES] [SECONDS]
set -uo pipefail
images=${1:?images folder}; out=${2:?output folder}; n=${3:-20}; seconds=${4:-540}
export PYTHONPATH="$PWD/igospp_src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
timeout "$seconds" python3 benchmarks/bench_quality.py --device cuda --images "$images" --n "$n" \
  --resolutions 28,224 --out "$out/bench_quality.json" \
  --candidate warm='{"ls_warm_start": 5.0}' \
  --candidate crn='{"ls_common_noise": true}' \
  --candidate trial10='{"ls_ig_steps": 10}' \
  --candidate warm_crn='{"ls_warm_start": 5.0, "ls_common_noise": true}' \
  --candidate cand4='{"ls_candidates": 4}' \
  --candidate bf16='{"autocast": "bfloat16"}' 2>&1 | grep -v Warning | tee -a "$out/quality.txt"
