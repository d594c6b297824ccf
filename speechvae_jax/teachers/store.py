"""Our teacher format on disk and the loaded `Teacher`.

A teacher directory holds `config.json` (`{"format": "speechvae_jax.teacher", "version": 1,
"encoder": EncoderConfig dict, "default_layer": int, "complete": true, ...meta}`) and
`params.safetensors` (the Flax param tree, keys joined with "/").
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy
from flax import traverse_util

from speechvae_jax import fileio
from speechvae_jax.dsp.frames import frame_mask
from speechvae_jax.teachers.config import EncoderConfig
from speechvae_jax.teachers.encoder import SSLEncoder, normalize_audio

FORMAT = "speechvae_jax.teacher"
CONFIG_FILE = "config.json"
PARAMS_FILE = "params.safetensors"


def teacher_identity(cfg: EncoderConfig, params: Any) -> str:
    """sha256 (hex, 16 chars) of the encoder config and every parameter's path, shape and bytes."""
    h = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode())
    for path, value in sorted(traverse_util.flatten_dict(params, sep="/").items()):
        a = np.ascontiguousarray(np.asarray(value, np.float32))
        h.update(f"{path}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def save_teacher(path: str, cfg: EncoderConfig, params: Any, default_layer: int,
                 meta: dict | None = None) -> None:
    """Write params then config.json (written last, with `"complete": true`); local or gs://."""
    if not 0 <= default_layer <= cfg.num_hidden_layers:
        raise ValueError(f"default_layer {default_layer} outside 0..{cfg.num_hidden_layers}")
    root = fileio.as_path(path)
    root.mkdir(parents=True, exist_ok=True)
    flat = {k: np.ascontiguousarray(np.asarray(v, np.float32))
            for k, v in traverse_util.flatten_dict(params, sep="/").items()}
    fileio.atomic_write_bytes(root / PARAMS_FILE, safetensors.numpy.save(flat))
    record = {"format": FORMAT, "version": 1, "encoder": cfg.to_dict(), "default_layer": int(default_layer),
              "identity": teacher_identity(cfg, params), **(meta or {}), "complete": True}
    fileio.atomic_write_json(root / CONFIG_FILE, record)


def is_complete(path: str) -> bool:
    """True if `path` holds a fully written teacher."""
    root = fileio.as_path(path)
    try:
        record = json.loads((root / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return record.get("complete") is True and (root / PARAMS_FILE).exists()


@dataclasses.dataclass(frozen=True, eq=False)
class Teacher:
    """A frozen SSL teacher: module, config, params and the pure forward function.

    `apply_fn(params, audio [B,N] float32 16 kHz, mask [B,N] | None) -> list of L+1 [B,T,D]`
    is pure and jittable (index 0 = embeddings, k = output of transformer layer k);
    `hidden_states(audio, mask=None)` is the same, jitted, with the stored params.
    """
    module: SSLEncoder
    config: EncoderConfig
    params: Any
    identity: str
    default_layer: int
    meta: dict
    hidden_states: Callable = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        jitted = jax.jit(self.apply_fn)
        object.__setattr__(self, "hidden_states",
                           lambda audio, mask=None: jitted(self.params, audio, mask))

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def hop(self) -> int:
        return self.config.hop

    @property
    def receptive_field(self) -> int:
        return self.config.receptive_field

    def frame_mask(self, sample_mask: jax.Array, num_frames: int) -> jax.Array:
        """Valid teacher frames [B,T] (bool) of audio with sample mask [B,N]."""
        return frame_mask(sample_mask, num_frames, self.hop, self.receptive_field)

    def apply_fn(self, params: Any, audio: jax.Array, mask: jax.Array | None = None) -> list[jax.Array]:
        audio = jnp.asarray(audio, jnp.float32)
        if audio.ndim != 2:
            raise ValueError(f"teacher audio must be [B, N], got shape {audio.shape}")
        if self.config.do_normalize:
            audio = normalize_audio(audio, mask)
        elif mask is not None:
            audio = audio * mask.astype(jnp.float32)
        num_frames = self.config.num_frames(audio.shape[1])
        if num_frames <= 0:
            raise ValueError(f"teacher input of {audio.shape[1]} samples is shorter than its receptive field "
                             f"({self.config.receptive_field})")
        frames = None if mask is None else self.frame_mask(mask, num_frames)
        return self.module.apply({"params": params}, audio, frames)


def build_teacher(cfg: EncoderConfig, params: Any, default_layer: int, meta: dict | None = None) -> Teacher:
    """A Teacher from an in-memory config and param tree (params converted to jnp float32)."""
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    return Teacher(SSLEncoder(cfg), cfg, params, teacher_identity(cfg, params), default_layer, meta or {})


def load_teacher(path: str) -> Teacher:
    """Load a teacher written by `convert_checkpoint` or `pretrain` (local or gs://)."""
    root = fileio.as_path(path)
    cfg_path = root / CONFIG_FILE
    if not cfg_path.exists():
        raise FileNotFoundError(f"{path}: no {CONFIG_FILE}; convert a checkpoint with "
                                "`speechvae teacher convert SRC DST` or pretrain one first")
    record = json.loads(cfg_path.read_text())
    if record.get("format") != FORMAT or not record.get("complete"):
        raise ValueError(f"{cfg_path}: not a complete {FORMAT} directory")
    params_path = root / PARAMS_FILE
    if not params_path.exists():
        raise FileNotFoundError(f"{path}: {PARAMS_FILE} is missing")
    cfg = EncoderConfig.from_dict(record["encoder"])
    params = traverse_util.unflatten_dict(safetensors.numpy.load(params_path.read_bytes()), sep="/")
    meta = {k: v for k, v in record.items() if k not in ("encoder", "default_layer")}
    teacher = build_teacher(cfg, params, int(record["default_layer"]), meta)
    if record.get("identity") not in (None, teacher.identity):
        raise ValueError(f"{params_path}: params do not match the identity recorded in {CONFIG_FILE}")
    return teacher
