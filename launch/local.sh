#!/usr/bin/env bash
# Run a `speechvae` command as N JAX processes on this machine (127.0.0.1): the multi-host rehearsal
# the tests use (tests/test_multihost.py). Each process gets its own CPU devices; they form one mesh.
#
#   bash launch/local.sh N COMMAND [ARGS...]
#   bash launch/local.sh 2 train --config configs/tiny.py:none --workdir runs/mh \
#       --config.data.source=corpus:demo_out/corpus
#
# Arguments:  N        number of processes (process ids 0 .. N-1)
#             COMMAND  any `speechvae` command with its arguments (train, teacher cache, export, ...)
# Environment (all optional):
#   DEVICES_PER_PROCESS  CPU devices per process (1)
#   PORT                 coordinator port on 127.0.0.1 (a free one)
#   LOGDIR               one log per process, process_<i>.log (runs/local_logs)
#   PYTHON               the interpreter ($SPEECHVAE_VENV/bin/python, else .venv/bin/python, else python3)
#   HEARTBEAT_TIMEOUT    seconds a process may go silent before the job is stopped (600: a busy machine's
#                        compilations can starve the heartbeat threads)
# Process 0's output is also shown here. SIGTERM / SIGINT to this script are passed to every process
# (a training run then saves a checkpoint and all exit with 75 / 130). When a process fails, the
# others are killed after GRACE_SECONDS (30). Exit code: 0 if all succeed, else the first failure's.
set -euo pipefail
if [ "$#" -lt 2 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  sed -n '2,20p' "$0" >&2
  exit 2
fi
N="$1"; shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
  PYTHON="${SPEECHVAE_VENV:-$ROOT/.venv}/bin/python"
  [ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
fi
PORT="${PORT:-$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
LOGDIR="${LOGDIR:-$ROOT/runs/local_logs}"
GRACE_SECONDS="${GRACE_SECONDS:-30}"
mkdir -p "$LOGDIR"
cd "$ROOT"
export JAX_PLATFORMS=cpu
export XLA_FLAGS="--xla_force_host_platform_device_count=${DEVICES_PER_PROCESS:-1}"

pids=()
# shellcheck disable=SC2317  # called from the traps below
forward() {  # pass a signal on to every process
  kill -s "$1" "${pids[@]}" 2>/dev/null || true
}
trap 'forward TERM' TERM
trap 'forward INT' INT

for ((i = 0; i < N; i++)); do
  cmd=("$PYTHON" -m speechvae_jax --coordinator-address "127.0.0.1:$PORT" --num-processes "$N"
       --process-id "$i" --heartbeat-timeout "${HEARTBEAT_TIMEOUT:-600}" "$@")
  echo "[local.sh] process $i: $(printf "%q " "${cmd[@]}")> $LOGDIR/process_$i.log"
  if [ "$i" -eq 0 ]; then
    "${cmd[@]}" > >(tee "$LOGDIR/process_$i.log") 2>&1 &
  else
    "${cmd[@]}" >"$LOGDIR/process_$i.log" 2>&1 &
  fi
  pids+=($!)
  echo "[local.sh] process $i: pid ${pids[-1]}"
done

# Wait for all; after the first failure the others get GRACE_SECONDS, then they are killed.
rc=0
running=("${pids[@]}")
killer=""
while [ "${#running[@]}" -gt 0 ]; do
  finished=""
  code=0
  wait -n -p finished "${running[@]}" || code=$?
  [ -n "$finished" ] || continue  # a forwarded signal interrupted the wait
  remaining=()
  for p in "${running[@]}"; do [ "$p" = "$finished" ] || remaining+=("$p"); done
  running=("${remaining[@]+"${remaining[@]}"}")
  echo "[local.sh] pid $finished exited with $code"
  if [ "$code" -ne 0 ] && [ "$rc" -eq 0 ]; then
    rc=$code
    if [ "${#running[@]}" -gt 0 ]; then
      (sleep "$GRACE_SECONDS"; kill -s KILL "${running[@]}" 2>/dev/null || true) &
      killer=$!
    fi
  fi
done
[ -z "$killer" ] || kill "$killer" 2>/dev/null || true
echo "[local.sh] $N processes finished (exit $rc); logs in $LOGDIR"
exit "$rc"
