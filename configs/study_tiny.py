"""The study grid at CPU size: every alignment scheme with fixed and adaptive weights, a hyper-weight
sweep of joint-marginal and the VAE without alignment, on the built-in corpus (docs/study.md).

  speechvae study --config configs/study_tiny.py --workdir STUDY \
      --config.run.data.source=corpus:demo_out/corpus --config.run.teacher.path=demo_out/teacher/teacher

  # all three axes: joint-marginal and time-axis (adaptive) and the baseline, each with a TTS on its latents
  speechvae study --config configs/study_tiny.py:three_axes --workdir STUDY3 \
      --config.run.data.source=corpus:demo_out/corpus --config.run.teacher.path=demo_out/teacher/teacher

Re-running the same command resumes (finished runs, exports and evaluation parts are kept). Sized
so the 11 runs (4 schemes x 2 weightings, 2 more sweep points, the baseline) train, export and
evaluate in about 45 minutes on 2 CPU cores (2700 s measured, docs/study.md): short GAN-free
training, a reduced evaluation protocol (fewer utterances, no CTC probe) and the probes' reference
rows computed once. `three_axes` adds the generation axis: every run also exports its train / valid
splits and trains `configs/tts_tiny.py` for 600 steps on them (the demo's TTS), so 3 runs only.
"""
from ml_collections import ConfigDict

VARIANTS = ("", "three_axes")


def get_config(variant: str = ""):
    if variant not in VARIANTS:
        raise ValueError(f"configs/study_tiny.py: unknown variant {variant!r}; one of {VARIANTS[1:]} or none")
    c = ConfigDict()
    c.base = "tiny"                    # configs/tiny.py: get_config(variant) of every run
    c.baseline = True                  # the VAE without alignment ("none"): the reconstruction anchor
    c.schemes = ("joint_marginal", "time_axis", "d_axis", "distance_matrix")
    c.weightings = ("fixed", "adaptive")
    # Each weighting's hyper-weight, that of the recipe it comes from: fixed 1 (Semantic-VAE),
    # adaptive 2.5 (the release), shared 0.1 (VA-VAE).
    c.hyper_weights = ConfigDict({"fixed": 1.0, "adaptive": 2.5, "shared": 0.1})
    c.sweep = ConfigDict({"scheme": "joint_marginal", "weighting": "adaptive", "hyper_weights": (0.5, 2.5, 10.0)})
    c.recipes = ()                     # e.g. ("semantic_vae", "va_vae", "release")
    # Distance-matrix pool of the grid and sweep runs: "device" with 2 items per pool is the release's
    # (8 GPUs x 2 items, each device pooling its own batch); "batch" pools the whole global batch.
    c.pooling = ConfigDict({"pooling": "device", "pool_items": 2})
    # Overrides of every run's config (keys of configs/tiny.py; alignment keys are the study's own).
    c.run = ConfigDict({
        "data": {"source": "corpus:demo_out/corpus"},
        "teacher": {"path": "demo_out/teacher/teacher"},
        "train": {"num_steps": 400, "checkpoint_every": 100, "sample_every": 0, "disc_start": 400},
        "evals": {"val": {"every": 400, "batches": 2}},
    })
    c.export = ConfigDict({"splits": ("test",), "mode": "mean", "dtype": "float16"})
    c.eval = ConfigDict({
        "axes": ("reconstruction", "understanding"),
        "data": "",                    # "" = each run's data.source
        "reference_run": "",           # computes the teacher / log-mel rows; "" = the first run
        "sizes": {"recon_utterances": 8, "tasks": ("phoneme_frame", "speaker_id", "keyword"),
                  "probe_utterances": {"train": 150, "valid": 60, "test": 60, "keywords_train": 200,
                                       "keywords_test": 100}},
    })
    # Understanding from the unaligned VAE (0) to the teacher (100): the tiny teacher is barely above
    # log-mel on frame phonemes (0.338 vs 0.330), so the default log-mel anchor would blow each point
    # of accuracy up to ~12 score points (docs/study.md, "Results").
    c.score = ConfigDict({
        "axis_weights": {"reconstruction": 1.0, "understanding": 1.0, "generation": 1.0},
        "metrics": {"understanding": {m: ("higher", "run:none", "teacher")
                                      for m in ("phoneme_frame/linear", "speaker_id/linear", "keyword/linear")}},
    })
    if variant == "three_axes":
        c.schemes, c.weightings = ("joint_marginal", "time_axis"), ("adaptive",)
        c.sweep.hyper_weights = ()
        c.export.splits = ("train", "valid", "test")
        c.eval.axes = ("reconstruction", "understanding", "generation")
        c.tts = ConfigDict({"base": "tts_tiny", "run": {"train": {"num_steps": 600, "sample_every": 0},
                                                         "optim": {"decay_steps": 600}}})
    return c
