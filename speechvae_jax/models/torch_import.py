"""PyTorch state dicts of the release's components -> this project's parameter trees (pure numpy).

Key layouts (read from the public packages):
- encoder: DAC `Encoder` inside Stable Audio Tools' `DACEncoderWrapper`: `encoder.block.0` (conv in),
  `encoder.block.{1+i}.block.{j}.block.{0..3}` (residual units: Snake, conv7, Snake, conv1),
  `encoder.block.{1+i}.block.{3, 4}` (Snake, strided conv), `encoder.block.{n+1}` (Snake),
  `encoder.block.{n+2}` (conv k=3), `proj_out` (plain 1x1 conv, our `last`).
- decoder: `bigvgan.BigVGAN`: `conv_pre`, `ups.{i}.0` (ConvTranspose1d), `resblocks.{i*K+j}.convs1.{d}`,
  `.convs2.{d}`, `.activations.{2d, 2d+1}.act` (SnakeBeta, log-scale alpha/beta), `activation_post.act`,
  `conv_post`.
- discriminators: `bigvgan` `MultiPeriodDiscriminator` / `MultiScaleSubbandCQTDiscriminator`:
  `discriminators.{k}.convs.{i}`, `.conv_post`, and for the CQT `.conv_pres.{octave}`.
A weight-normed layer has `weight_g` / `weight_v` (our `gain` / `kernel`), a plain one `weight`;
a plain `weight` loaded into a weight-normed layer becomes v = weight, g = ||weight||.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np
from ml_collections import ConfigDict

from speechvae_jax.dsp.filters import kaiser_sinc_lowpass, sinc_resample_kernel

Pair = tuple[str, str, str]  # (torch module path, our param path, kind): conv, conv_transpose, snake,
                             # snakebeta or dense

# Buffers the reference modules register (filters, CQT kernels, EMA counters): known, never imported.
BUFFER_SUFFIXES = (".upsample.filter", ".downsample.lowpass.filter", ".resample.kernel", ".cqt_transform.lenghts",
                   ".cqt_transform.lowpass_filter", ".cqt_transform.cqt_kernels_real",
                   ".cqt_transform.cqt_kernels_imag", ".cqt_transform.early_downsample_filter")


def encoder_pairs(enc: ConfigDict) -> Iterator[Pair]:
    """(DAC wrapper module, our path under params["encoder"], kind) for every encoder layer."""
    yield "encoder.block.0", "conv_in", "conv"
    nd = len(enc.dilations)
    for i in range(len(enc.strides)):
        b = f"encoder.block.{i + 1}.block"
        for j in range(nd):
            ours = f"blocks_{i}/ResidualUnit_{j}"
            yield f"{b}.{j}.block.0", f"{ours}/Snake_0", "snake"
            yield f"{b}.{j}.block.1", f"{ours}/Conv_0", "conv"
            yield f"{b}.{j}.block.2", f"{ours}/Snake_1", "snake"
            yield f"{b}.{j}.block.3", f"{ours}/Conv_1", "conv"
        yield f"{b}.{nd}", f"blocks_{i}/Snake_0", "snake"
        yield f"{b}.{nd + 1}", f"blocks_{i}/Conv_0", "conv"
    n = len(enc.strides) + 1
    yield f"encoder.block.{n}", "act_out", "snake"
    if enc.get("final_conv", False):
        yield f"encoder.block.{n + 1}", "conv_out", "conv"
    yield "proj_out", "last", "dense"


def decoder_pairs(dec: ConfigDict) -> Iterator[Pair]:
    """(BigVGAN module, our path under params["decoder"], kind) for every decoder layer."""
    if dec.upsample != "subpixel":
        raise ValueError("importing a BigVGAN decoder needs model.decoder.upsample='subpixel'")
    yield "conv_pre", "Conv_0", "conv"
    nk = len(dec.resblock_kernel_sizes)
    for i in range(len(dec.upsample_rates)):
        yield f"ups.{i}.0", f"SubPixelUpsample_{i}", "conv_transpose"
        for j in range(nk):
            r, ours = f"resblocks.{i * nk + j}", f"AMPBlock_{i * nk + j}"
            for d in range(len(dec.resblock_dilations)):
                yield f"{r}.activations.{2 * d}.act", f"{ours}/SnakeBeta_{2 * d}", "snakebeta"
                yield f"{r}.convs1.{d}", f"{ours}/Conv_{2 * d}", "conv"
                yield f"{r}.activations.{2 * d + 1}.act", f"{ours}/SnakeBeta_{2 * d + 1}", "snakebeta"
                yield f"{r}.convs2.{d}", f"{ours}/Conv_{2 * d + 1}", "conv"
    yield "activation_post.act", "SnakeBeta_0", "snakebeta"
    yield "conv_post", "Conv_1", "conv"


def mpd_pairs(disc: ConfigDict) -> Iterator[Pair]:
    """(bigvgan MultiPeriodDiscriminator module, our path under the discriminator params, kind)."""
    n = len(disc.mpd.channels)
    for k, p in enumerate(disc.mpd.periods):
        for i in range(n):
            yield f"discriminators.{k}.convs.{i}", f"mpd_{p}/Conv_{i}", "conv"
        yield f"discriminators.{k}.conv_post", f"mpd_{p}/Conv_{n}", "conv"


def cqt_pairs(disc: ConfigDict) -> Iterator[Pair]:
    """(bigvgan MultiScaleSubbandCQTDiscriminator module, our path, kind)."""
    c = disc.cqt
    n_convs = len(c.dilations) + 2
    for s in range(len(c.hop_lengths)):
        base = f"discriminators.{s}"
        for o in range(c.n_octaves):
            yield f"{base}.conv_pres.{o}", f"cqt_{s}/Conv_{o}", "conv"
        for i in range(n_convs):
            yield f"{base}.convs.{i}", f"cqt_{s}/Conv_{c.n_octaves + i}", "conv"
        yield f"{base}.conv_post", f"cqt_{s}/Conv_{c.n_octaves + n_convs}", "conv"


def _kernel(w: np.ndarray, kind: str) -> np.ndarray:
    """A torch weight in our layout: conv [O, I, *k] -> [*k, I, O]; transposed [I, O, K] -> [K, I, O];
    dense (1x1 conv) [O, I, 1] -> [I, O]."""
    if kind == "conv_transpose":
        return np.transpose(w, (2, 0, 1))
    if kind == "dense":
        return np.transpose(w[..., 0], (1, 0))
    return np.transpose(w, (*range(2, w.ndim), 1, 0))


def convert(state: Mapping[str, np.ndarray], pairs: Iterable[Pair], template: Mapping[str, tuple],
            prefix: str = "") -> tuple[dict[str, np.ndarray], set[str], list[str]]:
    """Map `state` (torch key -> array) onto the flat `template` (our "a/b/param" path -> shape).

    Returns (params {path: float32 array}, the torch keys used, our paths left missing). Raises
    ValueError naming both keys when a shape disagrees.
    """
    out, used = {}, set()

    def put(path: str, value: np.ndarray, key: str):
        if path not in template:
            return
        if tuple(template[path]) != value.shape:
            raise ValueError(f"{key} {value.shape} does not fit {path} {tuple(template[path])}")
        out[path] = np.asarray(value, np.float32)
        used.add(key)

    for torch_path, ours, kind in pairs:
        t = f"{prefix}{torch_path}"
        if kind == "snake":
            if f"{t}.alpha" in state:
                put(f"{ours}/alpha", np.asarray(state[f"{t}.alpha"]).reshape(-1), f"{t}.alpha")
            continue
        if kind == "snakebeta":
            for name in ("alpha", "beta"):
                if f"{t}.{name}" in state:
                    put(f"{ours}/log_{name}", np.asarray(state[f"{t}.{name}"]).reshape(-1), f"{t}.{name}")
            continue
        if f"{t}.bias" in state:
            put(f"{ours}/bias", np.asarray(state[f"{t}.bias"]), f"{t}.bias")
        if f"{t}.weight_v" in state:
            put(f"{ours}/kernel", _kernel(np.asarray(state[f"{t}.weight_v"]), kind), f"{t}.weight_v")
            put(f"{ours}/gain", np.asarray(state[f"{t}.weight_g"]).reshape(-1), f"{t}.weight_g")
        elif f"{t}.weight" in state:
            w = np.asarray(state[f"{t}.weight"])
            put(f"{ours}/kernel", _kernel(w, kind), f"{t}.weight")
            if f"{ours}/gain" in template:
                axes = tuple(i for i in range(w.ndim) if i != (1 if kind == "conv_transpose" else 0))
                out[f"{ours}/gain"] = np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=axes)).astype(np.float32)
    missing = sorted(set(template) - set(out))
    return out, used, missing


def check_buffers(state: Mapping[str, np.ndarray], keys: Iterable[str]) -> list[str]:
    """Known buffers among `keys` whose values differ from this project's filters (names, [] if all agree)."""
    bad = []
    for k in keys:
        if k.endswith((".upsample.filter", ".downsample.lowpass.filter")):
            ref = kaiser_sinc_lowpass(0.25, 0.3, 12)
        elif k.endswith(".resample.kernel"):
            ref = sinc_resample_kernel(1, 2)
        else:
            continue
        if np.asarray(state[k]).size != ref.size or not np.allclose(np.asarray(state[k]).ravel(), ref.ravel(),
                                                                    atol=1e-6):
            bad.append(k)
    return bad


def is_buffer(key: str) -> bool:
    """Whether `key` names one of the reference modules' non-trainable buffers."""
    return key.endswith(BUFFER_SUFFIXES)


def locate_parts(keys: Iterable[str]) -> dict[str, str]:
    """Key prefixes of the release's parts in a (Lightning or bare) state dict.

    Returns a subset of {"encoder", "decoder", "ema_encoder", "ema_decoder", "mpd", "cqt"} -> prefix, e.g.
    "autoencoder.encoder." (Stable Audio Tools' training wrapper), "autoencoder_ema.ema_model.encoder."
    (ema-pytorch), "encoder." (a bare autoencoder state dict), "discriminator.mpd." ... A generator
    part is found by its first layer (`encoder.block.0.*`, `conv_pre.*`), a discriminator family by
    its sub-discriminator list (`discriminators.0.conv_pres.*` for the CQT one).
    """
    keys = list(keys)
    cqt_bases = {k[:k.index("discriminators.0.conv_pres.")] for k in keys if "discriminators.0.conv_pres." in k}
    found: dict[str, str] = {}
    for k in keys:
        for marker, part in (("encoder.block.0.", "encoder"), ("conv_pre.", "decoder")):
            i = k.find(marker)
            if i < 0 or k[i + len(marker):] not in ("weight", "weight_v") or "online_model." in k[:i]:
                continue  # (ema-pytorch's online_model duplicates the online weights)
            if part == "decoder" and k[:i] and "decoder" not in k[:i]:
                continue  # (a bare BigVGAN generator state dict has no prefix)
            found[("ema_" if "ema" in k[:i].split(".")[0] else "") + part] = k[:i]
        i = k.find("discriminators.0.convs.0.weight")
        if i >= 0:
            found["cqt" if k[:i] in cqt_bases else "mpd"] = k[:i]
    return found
