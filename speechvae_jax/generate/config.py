"""The TTS config sections (configs/tts_*.py build on `tts_config`).

Sizes: "paper" is F5-TTS v1 Small (width 768, 18 layers, 12 heads, MLP x2, 512-wide text
embedding with 4 ConvNeXt layers, character units padded with filler tokens), as Semantic-VAE
trained on 64-d, 40 Hz latents; "tiny" is sized for a 2-core CPU.
"""
from ml_collections import ConfigDict

from speechvae_jax.constants import LATENT_DIM
from speechvae_jax.generate.text import CHARACTERS

SIZES = {
    "paper": dict(width=768, depth=18, heads=12, ff_mult=2, text_width=512, text_layers=4,
                  conv_pos_kernel=31, conv_pos_groups=16, dtype="bfloat16"),
    "tiny": dict(width=192, depth=6, heads=6, ff_mult=2, text_width=128, text_layers=2,
                 conv_pos_kernel=15, conv_pos_groups=8, dtype="float32"),
}


def tts_config(size: str) -> ConfigDict:
    """Sections `model` (the DiT), `text` (units and layout), `flow` (training objective), `sample`."""
    if size not in SIZES:
        raise ValueError(f"unknown TTS size {size!r}; one of {', '.join(SIZES)}")
    c = ConfigDict()
    c.model = ConfigDict(dict(latent_dim=LATENT_DIM, rotary_base=10000.0, **SIZES[size]))

    c.text = ConfigDict()
    c.text.mode = "filler"            # "filler" (F5-TTS) or "aligned" (per-frame phonemes from timings)
    c.text.units = "chars"            # "chars" or "phonemes"; "aligned" needs "phonemes"
    c.text.symbols = list(CHARACTERS)  # the vocabulary; a phoneme run stores the training set's here

    c.flow = ConfigDict()
    c.flow.mask_frac = (0.7, 1.0)     # share of each utterance masked and predicted
    c.flow.drop_audio = 0.3           # guidance: prompt dropped
    c.flow.drop_all = 0.2             # guidance: prompt and text dropped

    c.sample = ConfigDict()
    c.sample.nfe = 32                 # ODE steps
    c.sample.method = "euler"         # or "midpoint" (two evaluations per step)
    c.sample.cfg_scale = 3.0          # v_u + s (v_c - v_u); F5-TTS's cfg_strength 2
    c.sample.sway = -1.0              # sway sampling coefficient; 0 = uniform time grid
    c.sample.seed = 0
    return c
