"""The paper's study at release scale, for accelerators: every alignment scheme with fixed, per-term
adaptive and shared adaptive weights, a 5-point hyper-weight sweep of joint-marginal, the three
neighbours' recipes and the VAE without alignment (1 + 6 x 3 + 4 + 3 = 26 runs of 600k steps).

  # one job per run (a SLURM array, one TPU slice per run ...), then the comparison (docs/study.md)
  speechvae study --config configs/study_paper.py --workdir /mnt/study --print-commands \
      --config.run.data.source=folder:/data/LibriSpeech --config.run.teacher.path=/ckpt/wavlm-large-jax
  speechvae study --config configs/study_paper.py --workdir /mnt/study --collect

The evaluation uses the full protocol of `speechvae evaluate` (docs/evaluation.md) on all three axes:
every run exports its train / valid / test latents and trains its own configs/tts_paper.py TTS on them
(the `tts` stage) before the generation axis scores the speech that TTS makes.
"""
from ml_collections import ConfigDict


def get_config():
    c = ConfigDict()
    c.base = "paper"                   # configs/paper.py: get_config(variant) of every run
    c.baseline = True
    c.schemes = ("joint_marginal", "time_axis", "speechtokenizer_t", "d_axis", "marginal_cosine",
                 "distance_matrix")
    c.weightings = ("fixed", "adaptive", "shared")
    c.hyper_weights = ConfigDict({"fixed": 1.0, "adaptive": 2.5, "shared": 0.1})
    c.sweep = ConfigDict({"scheme": "joint_marginal", "weighting": "adaptive",
                          "hyper_weights": (0.5, 1.0, 2.5, 5.0, 10.0)})
    c.recipes = ("semantic_vae", "va_vae", "release")
    # "device" with no pool_items: each device pools its own batch (8 devices x 2 items = the release);
    # set pooling "batch" (or "global" with a block size) to pool the whole global batch instead.
    c.pooling = ConfigDict({"pooling": "device", "pool_items": None})
    c.run = ConfigDict({"data": {"source": "folder:/data/LibriSpeech"},
                        "teacher": {"path": "/ckpt/wavlm-large-jax"}})
    c.export = ConfigDict({"splits": ("train", "valid", "test"), "mode": "mean", "dtype": "float16"})
    c.tts = ConfigDict({"base": "tts_paper", "run": {}})
    c.eval = ConfigDict({"axes": ("reconstruction", "understanding", "generation"), "data": "", "reference_run": "",
                         "sizes": {}})
    c.score = ConfigDict({"axis_weights": {"reconstruction": 1.0, "understanding": 1.0, "generation": 1.0}})
    return c
