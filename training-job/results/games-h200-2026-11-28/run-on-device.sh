#!/bin/bash
# Games (SASRec's Video.txt) with the product's training job on the GPU, against the libtorch of the machine's PyTorch.
set -u
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1
T=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH=$T
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
mkdir -p /tmp/job /tmp/runs && tar -xJf .gpu/job.tar.xz -C /tmp/job && xz -dc .gpu/Video.txt.xz > /tmp/Video.txt
echo "undefined symbols of LibTorchSharp against this libtorch:"
ldd -r /tmp/job/libLibTorchSharp.so 2>&1 | grep -c "undefined symbol"
ldd -r /tmp/job/libLibTorchSharp.so 2>&1 | grep "undefined symbol" | head -8 | c++filt
J=/tmp/job/training-job
timeout 120 $J train --data synthetic:users=300,items=100,seed=1 --out /tmp/runs/smoke --epochs 2 --evaluateEvery 1 2>&1 | tail -6
grep -q '"device": "CUDA"' /tmp/runs/smoke/metrics.json || { echo "SMOKE FAILED: not on CUDA"; exit 3; }
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv -l 10 > /tmp/runs/gpu.csv 2>&1 &
G="--data sasrec:/tmp/Video.txt --epochs 400 --evaluateEvery 5 --timeBudgetSeconds ${BUDGET:-330} --dropout 0.5 --maxLength 50 --dimension 64 --blocks 2 --heads 1 --batchSize 128 --learningRate 0.001"
for seed in 42 7 1; do (timeout 340 $J train $G --out /tmp/runs/ce-refit-s$seed --loss ce --refit true --patience 2 --seed $seed > /tmp/runs/ce-refit-s$seed.log 2>&1) & done
for i in $(seq 1 60); do sleep 15; jobs -r | grep -q timeout || break; echo "--- $((i*15)) s"; tail -n1 /tmp/runs/ce-refit-s42.log; done
wait %2 %3 %4 2>/dev/null; kill %1 2>/dev/null
for r in ce-refit-s42 ce-refit-s7 ce-refit-s1; do echo "== $r"; grep -E "training on|early stop|budget|SASRec|wrote" /tmp/runs/$r.log; done
cd /tmp/runs && rm -f */model.bin */policy.onnx && tar -czf $OUT/runs.tar.gz . && ls -la $OUT
