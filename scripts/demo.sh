#!/usr/bin/env bash
# The product end to end, as far as it is built: Azurite, synthetic traffic through the ingestion code
# into the event log, a training run on that log, and its metrics against the baselines.
#   scripts/demo.sh            # about two minutes on 2 cores
#   DEMO_EPOCHS=40 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
scripts/azurite.sh start
dotnet build -c Release training-job/Recommender.TrainingJob -v:q -nologo
job="dotnet training-job/Recommender.TrainingJob/bin/Release/net10.0/linux-x64/training-job.dll"
world="users=1000,items=500,seed=7"
$job simulate --world "$world"
$job train --data eventlog:dev --out artifacts/runs/demo --epochs "${DEMO_EPOCHS:-30}" --evaluateEvery 10 \
  --dimension 32 --blocks 2 --maxLength 30 --dropout 0.2 --learningRate 0.003
echo
echo "metrics: artifacts/runs/demo/metrics.json   report: artifacts/runs/demo/report.html"
