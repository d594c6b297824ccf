"""The architecture description of an SSL teacher (WavLM, HuBERT, wav2vec2 and the in-house one).

One frozen dataclass covers all supported layouts; it is what `DST/config.json` holds under
`"encoder"` and what `teachers.encoder.SSLEncoder` is built from.
"""
from __future__ import annotations

import dataclasses
from typing import Any

KINDS = ("wavlm", "hubert", "wav2vec2")
ACTIVATIONS = ("gelu", "gelu_new", "relu")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of a conv feature extractor + transformer encoder.

    kind: "wavlm" (gated relative position bias) or "hubert" / "wav2vec2" (plain attention).
    feat_extract_norm: "group" (per-channel group norm after the first conv, Base layout) or
      "layer" (layer norm after every conv, Large layout).
    do_stable_layer_norm: True = layer norm before attention/FFN (Large), False = after (Base).
    do_normalize: zero-mean unit-variance input normalisation per utterance.
    """

    kind: str = "wavlm"
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    feat_proj_layer_norm: bool = True
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    do_stable_layer_norm: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    num_buckets: int = 320
    max_bucket_distance: int = 800
    do_normalize: bool = False
    sample_rate: int = 16000

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"teacher kind {self.kind!r} is not one of {KINDS}")
        if self.feat_extract_norm not in ("group", "layer"):
            raise ValueError(f"feat_extract_norm {self.feat_extract_norm!r} is not 'group' or 'layer'")
        for name in ("hidden_act", "feat_extract_activation"):
            if getattr(self, name) not in ACTIVATIONS:
                raise ValueError(f"{name} {getattr(self, name)!r} is not one of {ACTIVATIONS}")
        if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride):
            raise ValueError("conv_dim, conv_kernel and conv_stride must have the same length")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by "
                             f"num_attention_heads {self.num_attention_heads}")

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame of the conv stack (400 for the standard stack)."""
        field = 1
        for k, s in zip(reversed(self.conv_kernel), reversed(self.conv_stride)):
            field = (field - 1) * s + k
        return field

    @property
    def hop(self) -> int:
        """Total conv stride in samples (320 = 50 Hz at 16 kHz for the standard stack)."""
        hop = 1
        for s in self.conv_stride:
            hop *= s
        return hop

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def num_frames(self, num_samples: int) -> int:
        """Output frames of the conv stack for `num_samples` input samples (0 if too short)."""
        n = num_samples
        for k, s in zip(self.conv_kernel, self.conv_stride):
            n = (n - k) // s + 1
            if n <= 0:
                return 0
        return n

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown teacher encoder config keys: {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
