"""Evaluation protocols (`speechvae evaluate --config configs/eval.py:PRESET`); docs/protocol.md.

  # the built-in corpus (what `speechvae evaluate` runs without --config)
  speechvae evaluate --workdir RUN --config configs/eval.py:corpus

  # real corpora: a LibriSpeech folder (test-clean and train-clean-100 inside) and Speech Commands
  speechvae evaluate --workdir RUN --config configs/eval.py:librispeech \
      --data folder:/data/LibriSpeech \
      --config.understanding.tasks.keyword.source=commands:/data/speech_commands_v0.01

  # a small smoke run of the same protocol (minutes on a CPU)
  speechvae evaluate --workdir RUN --config configs/eval.py:librispeech_smoke --data folder:DIR

  # natural human speech from Debian packages (speechvae_jax.corpus.natural.build_natural_folder(DIR))
  speechvae evaluate --workdir RUN --config configs/eval.py:natural --data folder:DIR

Any key can be overridden, e.g. `--config.reconstruction.utterances=200` or
`--config.understanding.tasks.phoneme_ctc.train_utterances=500`.
"""
from speechvae_jax.evaluate.protocol import default_eval_config, task

LIBRISPEECH_COUNTS = {"recon": -1, "ctc_train": 1000, "ctc_test": 500, "sid": -1, "ks_train": 10000,
                      "ks_test": -1}
SMOKE_COUNTS = {"recon": 8, "ctc_train": 40, "ctc_test": 20, "sid": 80, "ks_train": 120, "ks_test": 60}


def _real(counts: dict, steps_scale: float = 1.0):
    """LibriSpeech test-clean reconstruction, phoneme CTC (G2P targets) train-clean-100 -> test-clean,
    speaker ID over test-clean's speakers (per-speaker seeded split), SUPERB keyword spotting on a
    Speech Commands folder (balanced selection), and the frame phoneme probe kept to name its skip."""
    c = default_eval_config()
    c.reconstruction.split = "test-clean"
    c.reconstruction.utterances = counts["recon"]
    c.reconstruction.chunk_utterances = 64
    steps = lambda n: max(20, int(n * steps_scale))  # noqa: E731
    c.understanding.tasks = {
        "phoneme_frame": task("frame", "phonemes", "train-clean-100", "test-clean", 20, 20),
        "phoneme_ctc": task("ctc", "phonemes", "train-clean-100", "test-clean", counts["ctc_train"],
                            counts["ctc_test"], heads=("mlp",), steps=steps(3000), batch_size=16, lr=2e-3,
                            context=2, feature_sets=("latent", "teacher", "log_mel")),
        "speaker_id": task("utterance", "speaker", "test-clean", "", counts["sid"], counts["sid"],
                           steps=steps(2000), batch_size=64, test_fraction=0.2),
        "keyword": task("utterance", "keyword", "train", "test", counts["ks_train"], counts["ks_test"],
                        steps=steps(3000), batch_size=128, selection="balanced"),
    }
    return c


def _natural():
    """The natural-speech folder (`corpus.natural`): reconstruction of 24 test utterances shared out
    by speaker (the 8 ALSA phrases, a speaker never in train, and 16 telephone prompts), phoneme CTC
    on G2P targets train -> test, speaker ID over the test split's 2 speakers; no keyword labels (a
    named skip)."""
    c = default_eval_config()
    c.reconstruction.update({"utterances": 24, "selection": "balanced", "balance_by": "speaker"})
    tasks = c.understanding.tasks
    tasks.phoneme_frame.update({"train_utterances": 20, "test_utterances": 20})
    tasks.phoneme_ctc.update({"train_utterances": -1, "test_utterances": -1})
    tasks.speaker_id.update({"train": "test", "test": "", "test_fraction": 0.25, "train_utterances": -1})
    return c


def get_config(preset: str | None = None):
    if preset in (None, "corpus"):
        return default_eval_config()
    if preset == "librispeech":
        return _real(LIBRISPEECH_COUNTS)
    if preset == "librispeech_smoke":
        return _real(SMOKE_COUNTS, steps_scale=0.05)
    if preset == "natural":
        return _natural()
    raise ValueError(f"unknown eval preset {preset!r}: corpus, librispeech, librispeech_smoke or natural")
