#!/bin/bash
# Second call on a 4-GPU machine: decoding (GPU 0) and training benches (GPUs 1-3); $1 = each stream's budget.
# As run: device kind nvidia-h200-x4, carry [".gpu"] (docs/gpu.md), command `bash bench/calls/2026-11-28-x4-call2.sh 470`.
cd "$(dirname "$0")/../.."
mkdir -p /tmp/site && tar -C /tmp/site -xJf .gpu/gpusite.tar.xz
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1
nvidia-smi -L > $OUT/gpus.txt 2>&1
python3 -c "from bench.gpu_models import build; build('llama-3.2-1b'); build('llama-3.1-8b')" > $OUT/build.log 2>&1
G=llama-3.1-8b:app:4,llama-3.1-8b:unsloth:4,llama-3.1-8b:app:16,llama-3.1-8b:unsloth:16
A=llama-3.1-8b:4:unsloth:fixed,llama-3.1-8b:4:worker:fixed,llama-3.1-8b:4:transformers:variable
B=llama-3.2-1b:16:unsloth:variable,llama-3.2-1b:16:transformers:variable,llama-3.2-1b:16:worker-padded:variable,llama-3.2-1b:16:worker:variable,llama-3.2-1b:16:worker-packed:variable
C=llama-3.1-8b:4:tutorial:variable,llama-3.1-8b:4:worker-no-checkpointing:variable,llama-3.1-8b:4:worker-packed:variable
run() { UNSLOTH_COMPILE_LOCATION=/tmp/uc$1 CUDA_VISIBLE_DEVICES=$1 python3 bench/$2 --out $OUT/s$1 --budget-s $BUDGET --configs $3 > $OUT/s$1.log 2>&1; }
BUDGET=$1
run 0 gpu_generate.py $G & run 1 gpu_train.py $A & run 2 gpu_train.py $B & run 3 gpu_train.py $C &
wait
cp /tmp/bench-llama-3.2-1b-16-worker-padded-variable/ws/runs/bench/events.jsonl $OUT/s2/events-1b-worker-padded.jsonl
cp /tmp/bench-llama-3.2-1b-16-worker-packed-variable/ws/runs/bench/events.jsonl $OUT/s2/events-1b-worker-packed.jsonl
cp /tmp/bench-llama-3.2-1b-16-worker-variable/ws/runs/bench/events.jsonl $OUT/s2/events-1b-worker.jsonl
tar -C $OUT -czf /tmp/all.tgz . && rm -rf $OUT/* && mv /tmp/all.tgz $OUT/
