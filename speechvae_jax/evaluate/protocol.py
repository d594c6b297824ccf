"""The evaluation protocol as one ConfigDict: which data, how many utterances, which probes.

`default_eval_config()` is the protocol of the built-in corpus (the demo); `configs/eval.py` holds
the presets for real corpora (LibriSpeech + Speech Commands). The whole config is recorded in the
report, and each part's cache key holds the sections that decide it, so changing a setting
recomputes exactly the parts it touches.

Keys:
- `data`: the source spec (`corpus:DIR`, `folder:DIR`, ...); "" = the run's `config.data.source`.
- `reconstruction`: `split`, `utterances` (-1 = all), `selection` ("even" | "first" | "random" |
  "balanced", `data.sources.select_indices`), `seed`, `balance_by` (the label "balanced" shares
  out, e.g. "speaker"), `chunk_utterances` (utterances per cached part,
  the unit of work one process takes), `spectrogram_examples`.
- `understanding`: `feature_sets` (of FEATURE_SETS), `seeds`, `g2p_voice` (espeak-ng voice for
  transcripts without phonemes), and `tasks.<name>`: `kind` ("frame" | "ctc" | "utterance"),
  `source` ("" = `data`), `train` / `test` splits (`test` "" = split `train` per speaker, holding out
  `test_fraction` of each speaker's utterances, seeded), `train_utterances` / `test_utterances`
  (-1 = all), `selection`, `seed`, `label` (record key), `metric`, `heads`, `steps`, `batch_size`, `lr`,
  `context` (CTC frames each side), `max_train_frames` (CTC: longer training utterances are skipped
  and counted, since training pads to the longest kept one; test utterances are all scored),
  `feature_sets` (() = all of `understanding.feature_sets`; a
  subset keeps memory in bounds: frame and CTC tasks hold every frame of every utterance, K times
  over for "teacher_layers", CTC training padded to its longest kept utterance; utterance tasks
  hold one mean-pooled vector per utterance).
"""
from __future__ import annotations

from ml_collections import ConfigDict

from speechvae_jax.data.sources import SELECTIONS

PROTOCOL = 3  # bump when the meaning of a setting changes: cached parts are then recomputed
FEATURE_SETS = ("latent", "teacher", "teacher_layers", "log_mel")
KINDS = ("frame", "ctc", "utterance")
METRICS = {"frame": "accuracy", "utterance": "accuracy", "ctc": "per"}


def task(kind: str, label: str, train: str, test: str, train_utterances: int, test_utterances: int, *,
         heads=("linear", "mlp"), steps: int = 1000, batch_size: int = 64, lr: float = 1e-3, context: int = 0,
         max_train_frames: int = 1000, source: str = "", selection: str = "even", seed: int = 0,
         test_fraction: float = 0.0, feature_sets=()) -> dict:
    """One probe task's settings (see the module docstring)."""
    return {"kind": kind, "label": label, "metric": METRICS[kind], "source": source, "train": train,
            "test": test, "train_utterances": train_utterances, "test_utterances": test_utterances,
            "selection": selection, "seed": seed, "test_fraction": test_fraction, "heads": tuple(heads),
            "steps": steps, "batch_size": batch_size, "lr": lr, "context": context,
            "max_train_frames": max_train_frames, "feature_sets": tuple(feature_sets)}


def default_eval_config() -> ConfigDict:
    """The protocol on the built-in corpus (what `speechvae evaluate` runs without --eval_config)."""
    c = ConfigDict()
    c.protocol = PROTOCOL
    c.data = ""
    c.reconstruction = ConfigDict({"split": "test", "utterances": 16, "selection": "even", "seed": 0,
                                   "balance_by": "speaker", "chunk_utterances": 16, "spectrogram_examples": 3})
    c.understanding = ConfigDict({
        "feature_sets": FEATURE_SETS, "seeds": (0, 1, 2), "g2p_voice": "en-us",
        "tasks": {
            "phoneme_frame": task("frame", "phonemes", "train", "test", 300, 100, steps=1500, batch_size=256),
            "phoneme_ctc": task("ctc", "phonemes", "train", "test", 300, 100, heads=("mlp",), steps=600,
                                batch_size=8, lr=3e-3, context=2),
            "speaker_id": task("utterance", "speaker", "train", "valid", 300, 100),
            "keyword": task("utterance", "keyword", "keywords_train", "keywords_test", 400, 200),
        }})
    return c


def check_eval_config(cfg: ConfigDict) -> None:
    """Raise ValueError naming the first bad setting."""
    rec = cfg.reconstruction
    if rec.selection not in SELECTIONS or rec.utterances == 0 or rec.utterances < -1 or rec.chunk_utterances < 1:
        raise ValueError(f"eval config reconstruction: selection in {SELECTIONS}, utterances -1 or >= 1, "
                         f"chunk_utterances >= 1; got {rec.to_dict()}")
    und = cfg.understanding
    bad = [fs for fs in und.feature_sets if fs not in FEATURE_SETS]
    if bad or not und.seeds:
        raise ValueError(f"eval config understanding: feature sets {bad} not in {FEATURE_SETS}, or no seeds")
    for name, t in und.tasks.items():
        problems = [f"feature set {fs!r} not in understanding.feature_sets" for fs in t.feature_sets
                    if fs not in und.feature_sets]
        if t.kind not in KINDS:
            problems.append(f"kind {t.kind!r} not in {KINDS}")
        if t.metric != METRICS.get(t.kind):
            problems.append(f"metric {t.metric!r} is not {METRICS.get(t.kind)!r} for kind {t.kind!r}")
        if t.selection not in SELECTIONS:
            problems.append(f"selection {t.selection!r} not in {SELECTIONS}")
        if not t.test and not 0.0 < t.test_fraction < 1.0:
            problems.append("test '' (per-speaker split) needs 0 < test_fraction < 1")
        if any(n == 0 or n < -1 for n in (t.train_utterances, t.test_utterances)):
            problems.append("utterance counts must be -1 (all) or >= 1")
        if not t.heads or t.steps < 1 or t.batch_size < 1 or t.max_train_frames < 1:
            problems.append("needs heads, steps >= 1, batch_size >= 1 and max_train_frames >= 1")
        if problems:
            raise ValueError(f"eval config understanding.tasks.{name}: " + "; ".join(problems))


def limit(count: int) -> int | None:
    """An utterance count of the config as a `read_records` limit (-1 -> None = all)."""
    return None if count == -1 else int(count)
