#!/bin/bash
# One call on one H200: the per-batch checkpointing switch on unsloth (a GPU test, tiny shape), then the
# 2026-12-02 training rows that matter for issue 22 and checkpointing every layer, with and without the
# 24 GiB cap, as the "faster than all" reference. Not run yet (bench/RESULTS.md, 2026-12-03).
# To run: device kind nvidia-h200, from the repository the device receives, with `.gpu` built there
# (docs/gpu.md, pytest included) and carried: carry [".gpu"], command `bash bench/calls/2026-12-03-h200-plan-per-batch.sh`.
cd "$(dirname "$0")/../.."
mkdir -p /tmp/site && tar -C /tmp/site -xJf .gpu/gpusite.tar.xz || exit
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $OUT/gpu.txt 2>&1
timeout -s INT 130 python3 -m pytest -v -rA -s -p no:cacheprovider tests/test_gpu.py -k switch_between_batches \
  > $OUT/tests.log 2>&1
echo "tests rc $? at $SECONDS s" >> $OUT/tests.log
C=llama-3.1-8b:4:worker:variable,llama-3.1-8b:4:worker-cap24:variable,llama-3.1-8b:4:worker-cap24-all-checkpointed:variable
C=$C,llama-3.1-8b:4:tutorial:variable,llama-3.1-8b:4:worker-all-checkpointed:variable
python3 bench/gpu_train.py --out $OUT --budget-s $((580 - SECONDS)) --steps 24 --warmup 8 --configs $C > $OUT/train.log 2>&1
echo "bench rc $? at $SECONDS s" >> $OUT/train.log
