#!/usr/bin/env bash
# Train on a Cloud TPU VM slice (one or many hosts) with gcloud: create or reuse the slice, install this
# project on every worker, run `speechvae` on all workers at once, stream worker 0's log, clean up.
#
#   TPU_NAME=svae ZONE=europe-west4-b ACCELERATOR_TYPE=v5litepod-16 \
#     bash launch/tpu_vm.sh all --config configs/paper.py:joint_marginal --workdir gs://BUCKET/runs/paper \
#       --config.data.source=folder:/data/LibriSpeech --config.teacher.path=gs://BUCKET/wavlm-large
#
# Steps (the first argument; `all` = create, setup, train, logs):
#   create        create the slice, or reuse it when it exists (a queued resource with QUEUED=1 or SPOT=1)
#   setup         copy this checkout's HEAD (git archive) to every worker, run launch/setup.sh, add jax[tpu]
#   train ARGS    start `speechvae train ARGS` on all workers (detached: it survives this shell), then logs
#   run CMD ARGS  the same for any `speechvae` command (teacher cache, export, evaluate ...)
#   logs          stream worker 0's log (Ctrl-C stops the streaming, not the run)
#   stop          SIGTERM to the run on every worker: it saves a checkpoint and exits with 75
#   delete        delete the slice (and its queued resource)
# Environment: TPU_NAME, ZONE (required); PROJECT (gcloud's default project); ACCELERATOR_TYPE (v5litepod-16;
#   v5p-16, v4-32 ...); RUNTIME_VERSION (by type: v2-alpha-tpuv5-lite for v5e, v2-alpha-tpuv5 for v5p,
#   tpu-ubuntu2204-base for v4); QUEUED=1 asks through a queued resource; SPOT=1 for Spot capacity (queued);
#   REMOTE_DIR (speechvae_jax, under the workers' home); DRY_RUN=1 prints every command instead of running it.
# Every worker runs the same command; `--distributed on` makes jax.distributed find the slice's hosts from
# the TPU runtime. Use gs:// for --workdir (and the data / teacher when they are not on every worker).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { sed -n '2,22p' "$0" >&2; exit 2; }
[ "$#" -ge 1 ] || usage
STEP="$1"; shift
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v5litepod-16}"
case "$ACCELERATOR_TYPE" in
  v5litepod-*|v5e-*) DEFAULT_RUNTIME=v2-alpha-tpuv5-lite ;;
  v5p-*) DEFAULT_RUNTIME=v2-alpha-tpuv5 ;;
  v6e-*) DEFAULT_RUNTIME=v2-alpha-tpuv6e ;;
  *) DEFAULT_RUNTIME=tpu-ubuntu2204-base ;;
esac
RUNTIME_VERSION="${RUNTIME_VERSION:-$DEFAULT_RUNTIME}"
REMOTE_DIR="${REMOTE_DIR:-speechvae_jax}"
QUEUED="${QUEUED:-${SPOT:-0}}"
GC=(gcloud)
[ -z "${PROJECT:-}" ] || GC+=(--project "$PROJECT")
LOG="speechvae_run.log"
PIDFILE="speechvae_run.pid"

run() {  # print a command, then run it (unless DRY_RUN=1)
  echo "+ $(printf '%q ' "$@")"
  [ "${DRY_RUN:-0}" = 1 ] || "$@"
}

on_workers() {  # on_workers WORKER COMMAND: a shell command on one worker or on all of them
  run "${GC[@]}" compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker "$1" --command "$2"
}

state() {  # the slice's state (READY, CREATING ...) or nothing
  [ "${DRY_RUN:-0}" = 1 ] && return 0
  "${GC[@]}" compute tpus tpu-vm describe "$TPU_NAME" --zone "$ZONE" --format 'value(state)' 2>/dev/null || true
}

create() {
  local now
  now="$(state)"
  if [ -n "$now" ]; then
    echo "[tpu_vm] reusing $TPU_NAME ($now)"
    return 0
  fi
  local spot=()
  [ "${SPOT:-0}" = 1 ] && spot=(--spot)
  if [ "$QUEUED" = 1 ]; then
    run "${GC[@]}" compute tpus queued-resources create "$TPU_NAME" --node-id "$TPU_NAME" --zone "$ZONE" \
      --accelerator-type "$ACCELERATOR_TYPE" --runtime-version "$RUNTIME_VERSION" "${spot[@]}"
    [ "${DRY_RUN:-0}" = 1 ] && return 0
    local qstate=""
    while [ "$qstate" != ACTIVE ]; do
      qstate="$("${GC[@]}" compute tpus queued-resources describe "$TPU_NAME" --zone "$ZONE" \
                --format 'value(state.state)')"
      case "$qstate" in
        FAILED|SUSPENDED) echo "[tpu_vm] queued resource $TPU_NAME is $qstate" >&2; exit 1 ;;
      esac
      echo "[tpu_vm] queued resource $TPU_NAME: $qstate"
      [ "$qstate" = ACTIVE ] || sleep 60
    done
  else
    run "${GC[@]}" compute tpus tpu-vm create "$TPU_NAME" --zone "$ZONE" \
      --accelerator-type "$ACCELERATOR_TYPE" --version "$RUNTIME_VERSION"
  fi
}

setup() {
  local tarball="${TMPDIR:-/tmp}/speechvae_jax-$$/speechvae_jax.tar.gz"
  mkdir -p "$(dirname "$tarball")"
  run git -C "$ROOT" archive --format=tar.gz -o "$tarball" HEAD
  run "${GC[@]}" compute tpus tpu-vm scp "$tarball" "$TPU_NAME:" --zone "$ZONE" --worker all
  on_workers all "mkdir -p $REMOTE_DIR && tar xzf speechvae_jax.tar.gz -C $REMOTE_DIR && cd $REMOTE_DIR \
&& bash launch/setup.sh && .venv/bin/pip install -q -c constraints.txt 'jax[tpu]'"
}

start() {  # start `speechvae ARGS` detached on every worker (its pid in ~/PIDFILE, output in ~/LOG)
  local args
  args="$(printf '%q ' "$@")"
  on_workers all "cd $REMOTE_DIR && nohup .venv/bin/speechvae --distributed on $args > ~/$LOG 2>&1 \
< /dev/null & echo \$! > ~/$PIDFILE"
}

logs() {
  on_workers 0 "tail -n +1 -F ~/$LOG"
}

case "$STEP" in
  create) create ;;
  setup) setup ;;
  train) start train "$@"; logs ;;
  run) [ "$#" -ge 1 ] || usage; start "$@"; logs ;;
  logs) logs ;;
  stop) on_workers all "kill -TERM \$(cat ~/$PIDFILE)" ;;
  all) create; setup; start train "$@"; logs ;;
  delete)
    if [ "$QUEUED" = 1 ]; then
      run "${GC[@]}" compute tpus queued-resources delete "$TPU_NAME" --zone "$ZONE" --force --quiet
    else
      run "${GC[@]}" compute tpus tpu-vm delete "$TPU_NAME" --zone "$ZONE" --quiet
    fi ;;
  *) usage ;;
esac
