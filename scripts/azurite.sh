#!/usr/bin/env bash
# Starts or stops Azurite (the local Azure Storage emulator) on 127.0.0.1:10000-10002, in memory.
#   scripts/azurite.sh start   # installs it from package-lock.json if needed, waits until it answers
#   scripts/azurite.sh stop
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pidfile="$root/artifacts/azurite.pid"
logfile="$root/artifacts/azurite.log"

listening() { (exec 3<>/dev/tcp/127.0.0.1/10000) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/10002) 2>/dev/null; }

case "${1:-start}" in
  start)
    if listening; then echo "azurite: already listening on 127.0.0.1:10000-10002"; exit 0; fi
    [ -x "$root/node_modules/.bin/azurite" ] || (cd "$root" && npm ci --no-audit --no-fund --loglevel=error)
    mkdir -p "$root/artifacts"
    nohup "$root/node_modules/.bin/azurite" --silent --inMemoryPersistence --skipApiVersionCheck --disableTelemetry --loose \
      --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 >"$logfile" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 100); do
      if listening; then echo "azurite: started (pid $(cat "$pidfile"))"; exit 0; fi
      sleep 0.2
    done
    echo "azurite: did not start; log:" >&2; cat "$logfile" >&2; exit 1
    ;;
  stop)
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"
      # Until the ports are free: a start right after a stop would otherwise find the old one still listening.
      for _ in $(seq 1 50); do listening || break; sleep 0.1; done
      echo "azurite: stopped"
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
