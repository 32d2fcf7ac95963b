#!/usr/bin/env bash
# The product end to end, as far as it is built: Azurite; synthetic traffic through the ingestion code
# into the event log; a training run on that log (metrics against baselines); the model exported to
# ONNX, published and promoted; the HTTP API served locally; recommendations for a warm and a cold user.
#   scripts/demo.sh                 # about a minute on 2 cores after the first build
#   scripts/demo.sh --serve         # keep serving on http://127.0.0.1:7071 until Ctrl-C
#   DEMO_EPOCHS=40 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
serve=false; [ "${1:-}" = "--serve" ] && serve=true
port=${DEMO_PORT:-7071}

scripts/azurite.sh start
dotnet build -c Release training-job/Recommender.TrainingJob -v:q -nologo
dotnet build -c Release functions/Recommender.LocalHost -v:q -nologo
job="dotnet training-job/Recommender.TrainingJob/bin/Release/net10.0/linux-x64/training-job.dll"

$job simulate --world "users=1000,items=500,seed=7"
$job train --data eventlog:dev --out artifacts/runs/demo --epochs "${DEMO_EPOCHS:-30}" --evaluateEvery 10 \
  --dimension 32 --blocks 2 --maxLength 30 --dropout 0.2 --learningRate 0.003
$job publish --run artifacts/runs/demo --version "demo-$(date -u +%Y%m%dT%H%M%SZ)" --snapshot eventlog:dev --promote

dotnet functions/Recommender.LocalHost/bin/Release/net10.0/linux-x64/Recommender.LocalHost.dll \
  --urls "http://127.0.0.1:$port" --Logging:LogLevel:Default=Warning > artifacts/localhost.log 2>&1 &
host=$!
trap 'kill $host 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done

echo; echo "GET /api/users/user5/recommendations?k=5   (a user with history)"
curl -sf "http://127.0.0.1:$port/api/users/user5/recommendations?k=5"; echo
echo; echo "GET /api/users/someone-new/recommendations?k=5   (no history: popular items)"
curl -sf "http://127.0.0.1:$port/api/users/someone-new/recommendations?k=5"; echo
echo; echo "metrics: artifacts/runs/demo/metrics.json   report: artifacts/runs/demo/report.html"
if $serve; then echo "serving on http://127.0.0.1:$port (Ctrl-C stops)"; wait $host; fi
