#!/bin/bash
# One call on a 4-GPU machine: the GPU tests on GPUs 0-1 (tiny shape, 1B shape), training benches on 2-3.
# As run: device kind nvidia-h200-x4, carry [".gpu"] (docs/gpu.md), command `bash bench/calls/2026-11-28-x4-call1.sh 540 500`
# ($1: the tests' time limit, $2: each bench's --budget-s).
cd "$(dirname "$0")/../.."
mkdir -p /tmp/site && tar -C /tmp/site -xJf .gpu/gpusite.tar.xz
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1
nvidia-smi -L > $OUT/gpus.txt 2>&1; nproc >> $OUT/gpus.txt
python3 -c "from bench.gpu_models import build; build('tiny-llama'); build('llama-3.2-1b')" > $OUT/build.log 2>&1
B1=llama-3.2-1b:16:worker:fixed,llama-3.2-1b:16:unsloth:fixed,llama-3.2-1b:16:transformers:fixed,llama-3.2-1b:16:tutorial:variable,llama-3.2-1b:16:worker:variable,llama-3.2-1b:16:worker-padded:variable,llama-3.2-1b:16:worker-no-checkpointing:variable,llama-3.2-1b:16:unsloth:variable,llama-3.2-1b:16:transformers:variable
B8=llama-3.1-8b:4:worker:variable,llama-3.1-8b:4:tutorial:variable,llama-3.1-8b:4:worker-padded:variable,llama-3.1-8b:4:transformers:fixed,llama-3.1-8b:4:worker:fixed,llama-3.1-8b:4:unsloth:fixed,llama-3.1-8b:4:transformers:variable
T="timeout -s INT $1 python3 -m pytest -v -rA -p no:cacheprovider --durations=0 tests/test_gpu.py"
UNSLOTH_COMPILE_LOCATION=/tmp/uc0 CUDA_VISIBLE_DEVICES=0 $T --basetemp=/tmp/pt0 -k "tiny or backend" > $OUT/tests-tiny.log 2>&1 &
UNSLOTH_COMPILE_LOCATION=/tmp/uc1 CUDA_VISIBLE_DEVICES=1 $T --basetemp=/tmp/pt1 -k "1b" > $OUT/tests-1b.log 2>&1 &
UNSLOTH_COMPILE_LOCATION=/tmp/uc2 CUDA_VISIBLE_DEVICES=2 python3 bench/gpu_train.py --out $OUT/b1 --budget-s $2 --configs $B1 > $OUT/train-1b.log 2>&1 &
UNSLOTH_COMPILE_LOCATION=/tmp/uc3 CUDA_VISIBLE_DEVICES=3 python3 bench/gpu_train.py --out $OUT/b8 --budget-s $2 --configs $B8 > $OUT/train-8b.log 2>&1 &
wait
