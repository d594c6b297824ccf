#!/usr/bin/env bash
# Train on TPU slices of a GKE cluster with xpk (it submits a JobSet; `pip install xpk`, a cluster made
# with `xpk cluster create`). Every pod of every slice runs the same `speechvae --distributed on train`.
#
#   CLUSTER=tpu-v5p WORKLOAD=svae-paper TPU_TYPE=v5p-32 NUM_SLICES=1 \
#     bash launch/xpk.sh create --config configs/paper.py:joint_marginal --workdir gs://BUCKET/runs/paper \
#       --config.data.source=tfds:librispeech@gs://BUCKET/tfds --config.teacher.path=gs://BUCKET/wavlm-large
#
# Steps (the first argument):
#   create ARGS   submit the workload running `speechvae train ARGS`
#   logs          stream the log of the workload's first pod (process 0)
#   list          the cluster's workloads and their states
#   delete        delete the workload (the run folder stays; `create` with the same ARGS resumes it)
# Environment: CLUSTER, WORKLOAD (required); TPU_TYPE (v5p-32; v5litepod-16, v4-32 ...); NUM_SLICES (1: the
#   mesh's data axis spans the slices over DCN); PROJECT, ZONE (gcloud's defaults); DOCKER_IMAGE (an image
#   with this project installed at /app) or else BASE_IMAGE (python:3.11-slim-bookworm), to which xpk adds
#   this checkout and the pod installs it (launch/setup.sh + jax[tpu]) at start; MAX_RESTARTS (10): a pod
#   stopped by preemption (SIGTERM -> checkpoint, exit 75) or a host failure restarts the whole JobSet,
#   which resumes from the last checkpoint; GRACE_SECONDS (300) between SIGTERM and SIGKILL for that save;
#   DRY_RUN=1 prints the commands instead of running them.
# The run folder, data and teacher must be on gs:// (pods keep nothing).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { sed -n '2,21p' "$0" >&2; exit 2; }
[ "$#" -ge 1 ] || usage
STEP="$1"; shift
: "${CLUSTER:?set CLUSTER}" "${WORKLOAD:?set WORKLOAD}"
TPU_TYPE="${TPU_TYPE:-v5p-32}"
XPK=(xpk)
SHARED=(--cluster "$CLUSTER")
[ -z "${PROJECT:-}" ] || SHARED+=(--project "$PROJECT")
[ -z "${ZONE:-}" ] || SHARED+=(--zone "$ZONE")

run() {  # print a command, then run it (unless DRY_RUN=1)
  echo "+ $(printf '%q ' "$@")"
  [ "${DRY_RUN:-0}" = 1 ] || "$@"
}

create() {
  local image train
  train="$(printf '%q ' "$@")"
  if [ -n "${DOCKER_IMAGE:-}" ]; then
    image=(--docker-image "$DOCKER_IMAGE")
    train="cd /app && speechvae --distributed on train $train"
  else
    image=(--base-docker-image "${BASE_IMAGE:-python:3.11-slim-bookworm}" --script-dir "$ROOT")
    # xpk copies --script-dir into the image and runs the command there
    train="SPEECHVAE_VENV=/opt/venv bash launch/setup.sh && /opt/venv/bin/pip install -q -c constraints.txt \
'jax[tpu]' && /opt/venv/bin/speechvae --distributed on train $train"
  fi
  run "${XPK[@]}" workload create "${SHARED[@]}" --workload "$WORKLOAD" --tpu-type "$TPU_TYPE" \
    --num-slices "${NUM_SLICES:-1}" "${image[@]}" --max-restarts "${MAX_RESTARTS:-10}" \
    --restart-on-exit-codes 75 --termination-grace-period-seconds "${GRACE_SECONDS:-300}" --command "$train"
}

logs() {
  local pod
  if [ "${DRY_RUN:-0}" = 1 ]; then
    pod="pod/FIRST_POD"
  else
    pod="$(kubectl get pods -l "jobset.sigs.k8s.io/jobset-name=$WORKLOAD" -o name | sort | head -n 1)"
  fi
  [ -n "$pod" ] || { echo "[xpk] no pod of $WORKLOAD yet (queued?): bash launch/xpk.sh list" >&2; exit 1; }
  run kubectl logs -f "$pod"
}

case "$STEP" in
  create) [ "$#" -ge 1 ] || usage; create "$@" ;;
  logs) logs ;;
  list) run "${XPK[@]}" workload list "${SHARED[@]}" ;;
  delete) run "${XPK[@]}" workload delete "${SHARED[@]}" --workload "$WORKLOAD" --force ;;
  *) usage ;;
esac
