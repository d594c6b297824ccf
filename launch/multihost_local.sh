#!/usr/bin/env bash
# Run any `speechvae` command as N local JAX processes (multi-host rehearsal on one machine, CPU).
#   bash launch/multihost_local.sh 2 train --config configs/tiny.py:none --workdir runs/mh \
#       --config.data.source=corpus:demo_out/corpus
# Each process gets DEVICES_PER_PROCESS CPU devices (default 1); logs go to $LOGDIR/process_<i>.log.
# On a TPU VM slice or under SLURM, run `speechvae <command> ...` on every host instead (jax.distributed
# starts from the environment there).
set -euo pipefail
N="$1"; shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${SPEECHVAE_VENV:-$ROOT/.venv}/bin/python"
PORT="${PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
LOGDIR="${LOGDIR:-$ROOT/runs/multihost_logs}"
mkdir -p "$LOGDIR"
export JAX_PLATFORMS=cpu
export XLA_FLAGS="--xla_force_host_platform_device_count=${DEVICES_PER_PROCESS:-1}"
pids=()
for ((i = 0; i < N; i++)); do
  "$PY" -m speechvae_jax --coordinator-address="127.0.0.1:$PORT" \
    --num-processes="$N" --process-id="$i" "$@" >"$LOGDIR/process_$i.log" 2>&1 &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
echo "processes finished (exit $rc); logs in $LOGDIR"
exit $rc
