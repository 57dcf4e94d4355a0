#!/bin/bash
# Third call on a 4-GPU machine: variable-length rows measured settled (30 steps, 10 warm-up), a tutorial row on each GPU.
# As run: device kind nvidia-h200-x4, carry [".gpu"] (docs/gpu.md), command `bash bench/calls/2026-11-28-x4-call3.sh 420` ($1: each bench's --budget-s).
cd "$(dirname "$0")/../.."
mkdir -p /tmp/site && tar -C /tmp/site -xJf .gpu/gpusite.tar.xz
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1
nvidia-smi -L > $OUT/gpus.txt 2>&1
python3 -c "from bench.gpu_models import build; build('llama-3.2-1b'); build('llama-3.1-8b')" > $OUT/build.log 2>&1
E=llama-3.1-8b:4
O=llama-3.2-1b:16
S0=$E:tutorial:variable,$E:worker:variable
S1=$E:tutorial:variable,$E:worker-padded:variable,$E:worker-packed:variable
S2=$O:tutorial:variable,$O:worker:variable,$O:worker-padded:variable,$O:worker-packed:variable,$O:worker-no-checkpointing:variable,$O:unsloth:variable
S3=$E:tutorial:variable,$E:worker-no-checkpointing:variable,$E:unsloth:variable
run() { UNSLOTH_COMPILE_LOCATION=/tmp/uc$1 CUDA_VISIBLE_DEVICES=$1 python3 bench/gpu_train.py --out $OUT/s$1 --budget-s $BUDGET --steps 30 --warmup 10 --configs $2 > $OUT/s$1.log 2>&1; }
BUDGET=$1
run 0 $S0 & run 1 $S1 & run 2 $S2 & run 3 $S3 &
wait
mkdir -p $OUT/ev; for d in /tmp/bench-*/ws/runs/bench; do n=${d#/tmp/bench-}; cp $d/events.jsonl $OUT/ev/${n%%/*}.jsonl; done
tar -C $OUT -czf /tmp/all.tgz . && rm -rf $OUT/* && mv /tmp/all.tgz $OUT/
