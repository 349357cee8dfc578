#!/usr/bin/env bash
# Serves a class from every core: SERVERS Streamlit processes of the app (default: one per
# core) behind Caddy (deploy/Caddyfile), which keeps each browser on one process and proxies
# its websocket; every process shares the runs folder, the job queue and the pinned model.
# One Streamlit process runs every visitor's page on one core (bench/CLASSROOM.md), so this is
# the way to serve a class of 30-60; scripts/run.sh (one process) stays the default.
#   bash scripts/classroom.sh                          http://127.0.0.1:8501, one process per core
#   PORT=8600 SERVERS=3 ADDRESS=0.0.0.0 bash scripts/classroom.sh   other machines may connect
# The processes listen on 127.0.0.1, ports PORT+1 .. PORT+SERVERS. Ctrl-C stops all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${PORT:-8501}"
servers="${SERVERS:-$(nproc)}"
address="${ADDRESS:-127.0.0.1}"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
for p in $(seq "$port" $((port + servers))); do
  if ! "$python" scripts/port_is_free.py "$p"; then
    echo "Port $p is busy: the proxy needs $port and the servers $((port + 1))-$((port + servers)). Pick others with PORT=8600." >&2
    exit 1
  fi
done
if ! command -v caddy >/dev/null; then
  echo "==> installing Caddy (Debian's caddy package) for the reverse proxy"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq caddy >/dev/null
fi
bash scripts/prepare.sh
log="${RECSYS_RUNS_DIR:-runs}/.classroom.log"  # what the servers and the proxy print
: >"$log"

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
upstreams=""
for i in $(seq 1 "$servers"); do
  .venv/bin/python -m streamlit run streamlit_app.py --server.port $((port + i)) \
    --server.address 127.0.0.1 "$@" >>"$log" 2>&1 &
  pids+=($!)
  upstreams="$upstreams 127.0.0.1:$((port + i))"
done
for i in $(seq 1 "$servers"); do
  until .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "http://127.0.0.1:$((port + i))/_stcore/health" 2>/dev/null; do
    if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
      echo "Streamlit on port $((port + i)) did not start: see $log" >&2
      exit 1
    fi
    sleep 0.5
  done
done
static="$(.venv/bin/python -c 'import os, streamlit; print(os.path.join(os.path.dirname(streamlit.__file__), "static"))')"
RECSYS_PROXY_PORT="$port" RECSYS_PROXY_BIND="$address" RECSYS_UPSTREAMS="${upstreams# }" \
  RECSYS_STREAMLIT_STATIC="$static" \
  caddy run --config deploy/Caddyfile --adapter caddyfile >>"$log" 2>&1 &
pids+=($!)
shown="$address"
[ "$address" = "0.0.0.0" ] && shown="$(hostname -I 2>/dev/null | cut -d' ' -f1)"
echo "==> serving the class on http://${shown:-$address}:$port ($servers Streamlit processes behind Caddy; Ctrl-C stops them)"
status=0
wait -n "${pids[@]}" || status=$?  # the first process to stop ends the deployment
echo "A server or the proxy stopped (exit $status): stopping the rest. Its output: $log" >&2
exit "$status"
