#!/usr/bin/env bash
# The RL runs behind the README's tables, two at a time (one per core). From the repository root:
#   training-job/results/rl-2026-12-02/run.sh            # both worlds
#   training-job/results/rl-2026-12-02/run.sh default    # one of them (default | clickbait)
# A run that dies of TorchSharp's finalized-Scalar race (exit 134, "Expected false to be true"; README, design
# notes) is started again: runs are deterministic, so a rerun gives the files the first attempt would have.
set -euo pipefail
job=${JOB:-training-job/Recommender.TrainingJob/bin/Release/net10.0/linux-x64/training-job.dll}
P="--epochs 30 --evaluateEvery 10 --dimension 32 --blocks 2 --maxLength 30 --dropout 0.2 --learningRate 0.003"
F="--rl-kl-frontier 0.01,0.03,0.1,0.3,1"
run() { for attempt in 1 2 3; do dotnet $job "$@" && return 0; echo "attempt $attempt failed; again" >&2; done; return 1; }
default() {
  run rl --world users=1000,items=500,seed=7 --out artifacts/runs/rl $P $F
  for s in 1 2; do run rl --world users=1000,items=500,seed=7 --pretrained artifacts/runs/rl --out artifacts/runs/rl-seed$s --rl-seed $s; done
}
clickbait() {
  run rl --world users=1000,items=500,seed=7,clickbait=0.1 --out artifacts/runs/rl-clickbait $P $F --rl-ablation "tag:sensational=-20"
  for s in 1 2; do run rl --world users=1000,items=500,seed=7,clickbait=0.1 --pretrained artifacts/runs/rl-clickbait --out artifacts/runs/rl-clickbait-seed$s --rl-seed $s --rl-ablation "tag:sensational=-20"; done
  # The same world with watch time as the reward instead of clicks.
  run rl --world users=1000,items=500,seed=7,clickbait=0.1 --pretrained artifacts/runs/rl-clickbait --out artifacts/runs/rl-clickbait-watch --rl-reward "click=0,watch=1" --rl-ablation "tag:sensational=-20"
}
mkdir -p artifacts/runs
for world in ${1:-default clickbait}; do $world > artifacts/runs/rl-$world.log 2>&1 & done
wait
