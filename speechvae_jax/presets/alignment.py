"""Alignment presets: one ConfigDict per loss scheme (docs/alignment.md maps each to its equation), the
weighting as an independent axis, and the neighbours' recipes (docs/study.md cites their sources).

Every weight is a plain float field, so any can be set to 0 from the command line, e.g.
`--config.alignment.hyper_weight=0` or `--config.alignment.term_weights.mdms=0`.

A variant names a scheme, optionally with a weighting (`time_axis+adaptive`, `joint_marginal+fixed`,
`d_axis+shared`), or a recipe (`semantic_vae`, `va_vae`, `release`).
"""
from __future__ import annotations

from ml_collections import ConfigDict, config_dict

from speechvae_jax.losses.alignment import SCHEME_TERMS

SCHEMES = ("joint_marginal", "time_axis", "speechtokenizer_t", "d_axis", "marginal_cosine",
           "distance_matrix", "none")
TERMS = ("time_cos", "st_t", "d_axis", "mcos", "mdms")
# fixed: w_k = 1; adaptive: one adaptive weight per term (the release); shared: one adaptive weight
# for the sum of the terms (VA-VAE).
WEIGHTINGS = ("fixed", "adaptive", "shared")
RECIPES = ("semantic_vae", "va_vae", "release")


def default_weighting(scheme: str) -> str:
    """The weighting a bare scheme name gets: adaptive for joint_marginal (the paper), else fixed."""
    return "adaptive" if scheme == "joint_marginal" else "fixed"


def set_weighting(c: ConfigDict, weighting: str) -> None:
    """Set the alignment section `c` to `weighting` (one of WEIGHTINGS), leaving the hyper-weight."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"alignment weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    c.adaptive = weighting != "fixed"
    c.shared_weight = weighting == "shared"


def weighting_of(c: ConfigDict) -> str:
    """The weighting name of an alignment section (inverse of set_weighting)."""
    if not c.get("adaptive", False):
        return "fixed"
    return "shared" if c.get("shared_weight", False) else "adaptive"


def alignment_config(scheme: str = "joint_marginal", weighting: str | None = None) -> ConfigDict:
    """The `alignment` section of a train config for `scheme` (one of SCHEMES) with `weighting`
    (one of WEIGHTINGS; None = default_weighting(scheme))."""
    if scheme not in SCHEMES:
        raise ValueError(f"alignment scheme must be one of {SCHEMES}, got {scheme!r}")
    c = ConfigDict()
    c.scheme = scheme
    c.hyper_weight = 2.5           # release: 2.5 (VA-VAE used 0.1 with a shared weight)
    c.term_weights = ConfigDict({k: 1.0 if k in SCHEME_TERMS[scheme] else 0.0 for k in TERMS})
    c.adaptive = False
    c.shared_weight = False        # True: one adaptive weight for the sum (VA-VAE)
    set_weighting(c, weighting or default_weighting(scheme))
    c.eps = 1e-6
    c.clamp = config_dict.placeholder(tuple)  # (min, max) of the adaptive weight, or None
    c.margin_cos = 0.5
    c.margin_matrix = 0.25
    c.pooling = "batch"            # "batch" | "device" | "utterance" | "global"
    c.pool_items = config_dict.placeholder(int)  # "device": items per pool (None: per-device batch)
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
    c.schedule.boundaries_unit = "steps"      # "steps" | "fraction" (of train.num_steps)
    c.schedule.stage_scales = (1.0, 0.5, 0.5)
    return c


def recipe_config(recipe: str) -> ConfigDict:
    """The alignment section of a neighbour's recipe, reproduced inside this framework.

    semantic_vae: time-axis cosine, fixed weight 1, teacher projected down to the latent
      (Semantic-VAE maps WavLM features to the 64-d latent and compares there).
    va_vae: marginal cosine + marginal distance matrix with one shared adaptive weight, hyper-weight
      0.1, ratio clamped to [0, 1e8], eps 1e-4, one distance matrix per item, latent projected up to
      the teacher; three stages over 100 / 15 / 15 parts of training: weight 0.5 without margins,
      0.1 without margins, 0.1 with margins (VA-VAE's f16d32_vfdinov2_long recipe).
    release: the paper's JMAS-VAE, per-term adaptive weights, hyper-weight 2.5, the distance matrix
      pooled over each device's own batch (8 GPUs x 2 items: pools of 2 items).
    """
    if recipe == "semantic_vae":
        c = alignment_config("time_axis", "fixed")
        c.hyper_weight = 1.0
        c.projection = "reverse"
    elif recipe == "va_vae":
        c = alignment_config("joint_marginal", "shared")
        c.hyper_weight = 0.1
        c.clamp = (0.0, 1e8)
        c.eps = 1e-4
        c.pooling = "utterance"
        c.schedule.kind = "staged"
        c.schedule.boundaries = (100 / 130, 115 / 130)
        c.schedule.boundaries_unit = "fraction"
        c.schedule.stage_scales = (5.0, 1.0, 1.0)
    elif recipe == "release":
        c = alignment_config("joint_marginal", "adaptive")
        c.pooling = "device"
        c.pool_items = 2
    else:
        raise ValueError(f"unknown alignment recipe {recipe!r}; one of {RECIPES}")
    return c


def variant_config(variant: str) -> ConfigDict:
    """The alignment section of a variant: `SCHEME`, `SCHEME+WEIGHTING` or a RECIPE name."""
    if variant in RECIPES:
        return recipe_config(variant)
    scheme, _, weighting = variant.partition("+")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown variant {variant!r}: a scheme ({', '.join(SCHEMES)}), optionally "
                         f"+weighting ({', '.join(WEIGHTINGS)}), or a recipe ({', '.join(RECIPES)})")
    return alignment_config(scheme, weighting or None)
