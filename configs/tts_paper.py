"""F5-TTS-Small-sized flow-matching TTS on 64-d, 40 Hz latents (Semantic-VAE's generation protocol).

  speechvae generate train --config configs/tts_paper.py --latents RUN/export --workdir RUN/tts

For accelerators; on CPU its shapes are checked with jax.eval_shape (tests/generate/test_dit.py).
Character units padded with filler tokens (text.mode "filler"), the F5-TTS way.
"""
from speechvae_jax.generate.config import tts_config


def get_config(variant: str = ""):
    del variant
    return tts_config("paper")
