"""Our parameters written in the release's PyTorch key layout (the inverse of models.torch_import)."""
from speechvae_jax.presets.model import model_config


def torch_layout(ours: dict, pairs) -> dict:
    """The inverse mapping, written out: our flat params -> a state dict in the release's layout."""
    state = {}
    for t, o, kind in pairs:
        if kind == "snake":
            state[f"{t}.alpha"] = ours[f"{o}/alpha"][None, :, None]
            continue
        if kind == "snakebeta":
            state[f"{t}.alpha"], state[f"{t}.beta"] = ours[f"{o}/log_alpha"], ours[f"{o}/log_beta"]
            continue
        k = ours[f"{o}/kernel"]
        if kind == "dense":
            w = k.T[..., None]
        elif kind == "conv_transpose":
            w = k.transpose(1, 2, 0)
        else:
            w = k.transpose(k.ndim - 1, k.ndim - 2, *range(k.ndim - 2))
        state[f"{t}.bias"] = ours[f"{o}/bias"]
        if f"{o}/gain" in ours:
            state[f"{t}.weight_v"] = w
            state[f"{t}.weight_g"] = ours[f"{o}/gain"].reshape(-1, *([1] * (w.ndim - 1)))
        else:
            state[f"{t}.weight"] = w
    return state


def release_config(size: str = "tiny"):
    """The model config of `size` with every release switch on (weight norm, final conv, anti-aliasing,
    BigVGAN lengths, nnAudio CQT front end)."""
    cfg = model_config(size)
    cfg.encoder.final_conv = cfg.encoder.weight_norm = True
    cfg.decoder.weight_norm = cfg.decoder.anti_alias = cfg.decoder.full_lengths = True
    cfg.discriminators.weight_norm = True
    cfg.discriminators.cqt.front_end = "release"
    return cfg
