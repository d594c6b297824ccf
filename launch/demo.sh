#!/usr/bin/env bash
# The main job on the embedded default, fully offline (about 30 minutes on a 2-core CPU):
#   1. build the built-in multi-voice corpus        -> $OUT/corpus
#   2. pretrain the in-house SSL teacher             -> $OUT/teacher/teacher
#   3. train the tiny VAE with the proposed loss     -> $OUT/run   (joint-marginal + adaptive weights)
#   4. export latents of the test split              -> $OUT/run/export/test
#   5. evaluate reconstruction and understanding     -> $OUT/run/eval/report.md
# Every step is resumable / skipped when already done: re-running continues where it stopped.
# Usage: bash launch/demo.sh [extra --config.k=v flags for the VAE training]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=launch/setup.sh
source "$ROOT/launch/setup.sh"
cd "$ROOT"
OUT="${DEMO_OUT:-$ROOT/demo_out}"
MINUTES="${DEMO_MINUTES:-60}"
CORPUS="corpus:$OUT/corpus"
export TF_CPP_MIN_LOG_LEVEL=3
t0=$(date +%s)
stamp() { echo; echo "=== [$(( $(date +%s) - t0 ))s] $*"; }

stamp "1/5 corpus ($MINUTES minutes of speech)"
speechvae corpus --out "$OUT/corpus" --minutes "$MINUTES" --seed 0

stamp "2/5 teacher pretraining (HuBERT-style, on the corpus)"
speechvae teacher pretrain --config configs/teacher_tiny.py --workdir "$OUT/teacher" \
  --config.data.source="$CORPUS"

stamp "3/5 VAE training (configs/tiny.py:joint_marginal)"
speechvae train --config configs/tiny.py:joint_marginal --workdir "$OUT/run" \
  --config.data.source="$CORPUS" --config.teacher.path="$OUT/teacher/teacher" "$@"

stamp "4/5 export latents (test split)"
speechvae export --workdir "$OUT/run" --data "$CORPUS" --split test --out "$OUT/run/export/test"

stamp "5/5 evaluation (reconstruction, understanding)"
speechvae evaluate --workdir "$OUT/run" --data "$CORPUS"

stamp "done"
cat <<MSG
Outputs:
  corpus (TFDS, array_record)      $OUT/corpus
  teacher (params + config)        $OUT/teacher/teacher
  training run                     $OUT/run   (config.json, checkpoints/, metrics.jsonl, tb/, samples/)
  exported latents                 $OUT/run/export/test   (manifest.json + shards)
  evaluation report                $OUT/run/eval/report.md  (report.json, plots *.png)
MSG
