#!/usr/bin/env bash
# The main job on the embedded default, fully offline (about 40 minutes on a 2-core CPU):
#   1. build the built-in multi-voice corpus        -> $OUT/corpus
#   2. pretrain the in-house SSL teacher             -> $OUT/teacher/teacher
#   3. train the tiny VAE with the proposed loss     -> $OUT/run   (joint-marginal + adaptive weights)
#   4. export latents of every split                 -> $OUT/run/export/{train,valid,test}
#   5. train a tiny flow-matching TTS on the latents -> $OUT/run/tts
#   6. evaluate reconstruction, understanding and generation -> $OUT/run/eval/report.md
# Every step is resumable / skipped when already done: re-running continues where it stopped.
# Usage: bash launch/demo.sh [extra --config.k=v flags for the VAE training]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=launch/setup.sh
source "$ROOT/launch/setup.sh"
cd "$ROOT"
OUT="${DEMO_OUT:-$ROOT/demo_out}"
MINUTES="${DEMO_MINUTES:-60}"
TTS_STEPS="${DEMO_TTS_STEPS:-600}"
CORPUS="corpus:$OUT/corpus"
export TF_CPP_MIN_LOG_LEVEL=3
t0=$(date +%s)
stamp() { echo; echo "=== [$(( $(date +%s) - t0 ))s] $*"; }

stamp "1/6 corpus ($MINUTES minutes of speech)"
speechvae corpus --out "$OUT/corpus" --minutes "$MINUTES" --seed 0

stamp "2/6 teacher pretraining (HuBERT-style, on the corpus)"
speechvae teacher pretrain --config configs/teacher_tiny.py --workdir "$OUT/teacher" \
  --config.data.source="$CORPUS"

stamp "3/6 VAE training (configs/tiny.py:joint_marginal)"
speechvae train --config configs/tiny.py:joint_marginal --workdir "$OUT/run" \
  --config.data.source="$CORPUS" --config.teacher.path="$OUT/teacher/teacher" "$@"

stamp "4/6 export latents (train, valid, test splits)"
for split in train valid test; do
  speechvae export --workdir "$OUT/run" --data "$CORPUS" --split "$split" --out "$OUT/run/export/$split"
done

stamp "5/6 TTS training on the latents (configs/tts_tiny.py, $TTS_STEPS steps)"
speechvae generate train --config configs/tts_tiny.py --latents "$OUT/run/export" --workdir "$OUT/run/tts" \
  --config.train.num_steps="$TTS_STEPS" --config.optim.decay_steps="$TTS_STEPS" --config.train.sample_every="$TTS_STEPS"

stamp "6/6 evaluation (reconstruction, understanding, generation)"
speechvae evaluate --workdir "$OUT/run" --data "$CORPUS" --axes reconstruction,understanding,generation

stamp "done"
cat <<MSG
Outputs:
  corpus (TFDS, array_record)      $OUT/corpus
  teacher (params + config)        $OUT/teacher/teacher
  training run                     $OUT/run   (config.json, checkpoints/, metrics.jsonl, tb/, samples/)
  exported latents                 $OUT/run/export/{train,valid,test}   (manifest.json + shards)
  TTS run                          $OUT/run/tts   (checkpoints/, metrics.jsonl, samples/)
  evaluation report                $OUT/run/eval/report.md  (report.json, plots *.png, generation/*.wav)
MSG
