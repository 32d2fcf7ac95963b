#!/usr/bin/env bash
# The product end to end on this machine: Azurite; traffic sent through the ingestion code into the event
# log; the retraining orchestration (snapshot -> the real training job as a local process -> gate ->
# promotion), run in memory by the local host; the promoted model served over HTTP; recommendations for a
# warm and a cold user and the model's metrics. Then it keeps serving until Ctrl-C.
#   scripts/demo.sh                                         # synthetic world, a few minutes on 2 cores after the first build
#   scripts/demo.sh --data movielens:../shared/data/ml-100k # a real data set instead
#   scripts/demo.sh --once                                  # stop after the demo (CI runs this)
#   scripts/demo.sh --rounds 3                              # then close the loop: world users answer over HTTP, retrain, serve, 3 times
# A second run reuses what is there: the same data gives the same snapshot, which the champion was
# trained on, so the orchestration answers UpToDate without training.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
once=false; data=""; rounds=0
while [ $# -gt 0 ]; do
  case "$1" in
    --once) once=true ;;
    --data) data="$2"; shift ;;
    --rounds) rounds="$2"; shift ;;
    *) echo "usage: scripts/demo.sh [--data <source>] [--once] [--rounds N]" >&2; exit 2 ;;
  esac
  shift
done
if [ "$rounds" != 0 ] && [ -n "$data" ]; then echo "demo: --rounds needs the synthetic world's users (no --data)" >&2; exit 2; fi
port=${DEMO_PORT:-7071}
url="http://127.0.0.1:$port"
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }

[ -x node_modules/.bin/azurite ] || npm ci --no-audit --no-fund --loglevel=error
mkdir -p artifacts # the host's log goes here, whoever started Azurite
scripts/azurite.sh start
dotnet build -c Release training-job/Recommender.TrainingJob -v:q -nologo
dotnet build -c Release functions/Recommender.LocalHost -v:q -nologo
job="$PWD/training-job/Recommender.TrainingJob/bin/Release/net10.0/linux-x64/training-job.dll"

echo; echo "== 1. events in, through the ingestion code"
if [ -n "$data" ]; then dotnet "$job" simulate --data "$data"; else dotnet "$job" simulate --world "users=1000,items=500,seed=7"; fi

echo; echo "== 2. the local host: the HTTP API and the retraining orchestration (in memory)"
dotnet functions/Recommender.LocalHost/bin/Release/net10.0/linux-x64/Recommender.LocalHost.dll --urls "$url" \
  --Logging:LogLevel:Default=Warning \
  --TrainingJob:Launcher local --TrainingJob:Command "dotnet $job" \
  --TrainingJob:Settings "${DEMO_TRAINING:---epochs 30 --evaluateEvery 10 --dimension 32 --blocks 2 --maxLength 30 --dropout 0.2 --learningRate 0.003 --itemGenerator true --userAdaptation true}" \
  --Retraining:PollInterval 00:00:02 --Retraining:RetryBackoff 00:00:05 --Retraining:JobTimeout 00:30:00 \
  --Retraining:Snapshot:Decisions:SessionIdle "$( [ "$rounds" != 0 ] && echo 00:00:05 || echo 00:30:00 )" \
  > artifacts/localhost.log 2>&1 &
host=$!
trap 'kill $host 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "$url/" >/dev/null && break; sleep 0.2; done

echo; echo "== 3. POST /api/training, then GET its status until the run ends"
status_url=$(curl -sf -X POST "$url/api/training" | json 'print(d["statusUri"])')
echo "$status_url"
started=$(date +%s)
while :; do
  state=$(curl -sf "$status_url")
  runtime=$(echo "$state" | json 'print(d["status"])')
  [ "$runtime" = "Running" ] || [ "$runtime" = "Pending" ] || break
  printf '\r  %s for %ss' "$runtime" $(( $(date +%s) - started )); sleep 2
done
echo; echo "$state" | json 'o=d.get("outcome") or {}; print("  run", d["status"] + ":", o.get("result"), "-", o.get("reason") or d.get("failure")); [print("  attempt:", a) for a in (o.get("jobAttempts") or [])]'

echo; echo "== 4. the model being served: GET /api/models/current"
curl -sf "$url/api/models/current" | json '
m=d["metrics"]; print("  version", d["version"], "trained on", d["dataSnapshot"], "-", d["items"], "items")
rows=[("model", m)] + list((m.get("baselines") or {}).items())
print("  %-16s %8s %8s %8s %8s" % ("", "HR@10", "NDCG@10", "HR@10 full", "NDCG full"))
[print("  %-16s %8.4f %8.4f %8.4f %8.4f" % (n, r["hr@10"], r["ndcg@10"], r["hr@10_full"], r["ndcg@10_full"])) for n, r in rows]'

user=$(echo "${data:-synthetic}" | grep -q movielens && echo 1 || echo user5)
echo; echo "== 5. GET /api/users/$user/recommendations?k=5   (a user with history)"
curl -sf "$url/api/users/$user/recommendations?k=5"; echo
newcomer="newcomer-$(date +%s)" # a user no run has seen (the event log outlives the demo)
echo; echo "== 6. GET /api/users/$newcomer/recommendations?k=5   (no history: popular items)"
popular=$(curl -sf "$url/api/users/$newcomer/recommendations?k=5"); echo "$popular"

echo; echo "== 7. $newcomer clicks two of them, then GET recommendations again   (a short history: the model adapted to it)"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
curl -sf -X POST "$url/api/events" -H 'content-type: application/json' -d "$(echo "$popular" | NOW="$now" json '
import os; print(json.dumps([{"userId": d["userId"], "itemId": i["itemId"], "type": "click", "timestamp": os.environ["NOW"]} for i in d["items"][:2]]))')"; echo
curl -sf "$url/api/users/$newcomer/recommendations?k=5"; echo

if [ "$rounds" != 0 ]; then
  echo; echo "== 8. the loop closed over HTTP: world users answer what is served, then the orchestration retrains, $rounds times"
  dotnet build -c Release tests/Recommender.Benchmarks -v:q -nologo
  dotnet tests/Recommender.Benchmarks/bin/Release/net10.0/linux-x64/Recommender.Benchmarks.dll closed-loop --url "$url" \
    --world "users=1000,items=500,seed=7" --rounds "$rounds" --name closed-loop-demo
fi
if $once; then exit 0; fi
echo; echo "serving on $url (Ctrl-C stops); POST /api/training retrains"
wait $host
