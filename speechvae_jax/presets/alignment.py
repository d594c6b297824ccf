"""Alignment presets: one ConfigDict per loss scheme (docs/alignment.md maps each to its equation).

Every weight is a plain float field, so any can be set to 0 from the command line, e.g.
`--config.alignment.hyper_weight=0` or `--config.alignment.term_weights.mdms=0`.
"""
from __future__ import annotations

from ml_collections import ConfigDict, config_dict

from speechvae_jax.losses.alignment import SCHEME_TERMS

SCHEMES = ("joint_marginal", "time_axis", "speechtokenizer_t", "d_axis", "marginal_cosine",
           "distance_matrix", "none")
TERMS = ("time_cos", "st_t", "d_axis", "mcos", "mdms")


def alignment_config(scheme: str = "joint_marginal") -> ConfigDict:
    """The `alignment` section of a train config for `scheme` (one of SCHEMES)."""
    if scheme not in SCHEMES:
        raise ValueError(f"alignment scheme must be one of {SCHEMES}, got {scheme!r}")
    c = ConfigDict()
    c.scheme = scheme
    c.hyper_weight = 2.5           # release: 2.5 (VA-VAE used 0.1 with a shared weight)
    c.term_weights = ConfigDict({k: 1.0 if k in SCHEME_TERMS[scheme] else 0.0 for k in TERMS})
    c.adaptive = scheme == "joint_marginal"
    c.shared_weight = False        # True: one adaptive weight for the sum (VA-VAE)
    c.eps = 1e-6
    c.clamp = config_dict.placeholder(tuple)  # (min, max) of the adaptive weight, or None
    c.margin_cos = 0.5
    c.margin_matrix = 0.25
    c.pooling = "batch"            # "batch" | "utterance" | "global"
    c.block_size = config_dict.placeholder(int)  # None: naive N x N; int: blockwise
    c.projection = "linear"        # "linear" | "mlp" | "reverse" (teacher -> latent)
    c.projection_hidden = config_dict.placeholder(int)  # MLP width (None: teacher width)
    c.teacher_layer_low = config_dict.placeholder(int)  # None: one teacher layer
    c.subspace_ratio = 1.0         # align the first ratio * latent_dim channels
    c.sim_weight = 1.0             # lambda of the SpeechTokenizer T-axis term
    c.schedule = ConfigDict()
    c.schedule.kind = "fixed"      # "fixed" | "warmup" | "staged"
    c.schedule.warmup_steps = 10_000
    c.schedule.boundaries = (20_000, 40_000)  # staged: stage ends (no margins before the second)
    c.schedule.stage_scales = (1.0, 0.5, 0.5)
    return c
