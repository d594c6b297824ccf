"""The TTS run config (configs/tts_*.py build on `tts_config`).

Sizes: "paper" is F5-TTS v1 Small (width 768, 18 layers, 12 heads, MLP x2, 512-wide text
embedding with 4 ConvNeXt layers, character units padded with filler tokens), as Semantic-VAE
trained on 64-d, 40 Hz latents; "tiny" is sized for a 2-core CPU.
"""
from ml_collections import ConfigDict

from speechvae_jax.constants import LATENT_DIM
from speechvae_jax.engine.loop import default_mesh_config, default_train_config
from speechvae_jax.generate.text import CHARACTERS

SIZES = {
    "paper": dict(width=768, depth=18, heads=12, ff_mult=2, text_width=512, text_layers=4,
                  conv_pos_kernel=31, conv_pos_groups=16, dtype="bfloat16"),
    "tiny": dict(width=192, depth=6, heads=6, ff_mult=2, text_width=128, text_layers=2,
                 conv_pos_kernel=15, conv_pos_groups=8, dtype="float32"),
}


def tts_config(size: str) -> ConfigDict:
    """Sections model (the DiT), text, flow (objective), sample, data, vae, optim, train, evals, mesh."""
    if size not in SIZES:
        raise ValueError(f"unknown TTS size {size!r}; one of {', '.join(SIZES)}")
    c = ConfigDict()
    c.model = ConfigDict(dict(latent_dim=LATENT_DIM, rotary_base=10000.0, **SIZES[size]))

    c.text = ConfigDict()
    c.text.mode = "filler"            # "filler" (F5-TTS) or "aligned" (per-frame phonemes from timings)
    c.text.units = "chars"            # "chars" or "phonemes"; "aligned" needs "phonemes"
    c.text.symbols = list(CHARACTERS)  # the vocabulary; [] = the training export's phonemes (set at start)

    c.flow = ConfigDict()
    c.flow.mask_frac = (0.7, 1.0)     # share of each utterance masked and predicted
    c.flow.drop_audio = 0.3           # guidance: prompt dropped
    c.flow.drop_all = 0.2             # guidance: prompt and text dropped

    c.sample = ConfigDict()
    c.sample.nfe = 32                 # ODE steps
    c.sample.method = "euler"         # or "midpoint" (two evaluations per step)
    c.sample.cfg_scale = 3.0          # v_u + s (v_c - v_u); F5-TTS's cfg_strength 2
    c.sample.sway = -1.0              # sway sampling coefficient; 0 = uniform time grid
    c.sample.batch_size = 8           # rows generated together

    c.data = ConfigDict()
    c.data.latents = ""               # export root: one `speechvae export` per split in ROOT/<split>
    c.data.train_split = "train"
    c.data.valid_split = "valid"
    c.data.max_frames = 1000          # frames per training example (25 s at 40 Hz)
    c.data.prompt_pairs = 0.0         # share of examples preceded by another utterance of their speaker
    c.data.read_threads = 2
    c.data.latent_mean = []          # set at start from the train export's manifest (per channel)
    c.data.latent_std = []

    c.vae = ConfigDict()
    c.vae.workdir = ""                # the VAE run that exported data.latents ("" = found above it)
    c.vae.step = -1                   # set at start: the exporting checkpoint's step and hash
    c.vae.hash = ""

    c.optim = ConfigDict()
    c.optim.lr = 1e-4                 # Semantic-VAE's F5-TTS Small
    c.optim.warmup_steps = 20_000     # linear warm-up from 0 ...
    c.optim.decay_steps = 500_000     # ... then linear decay to 0 over this many steps (F5-TTS), then 0
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.weight_decay = 0.01
    c.optim.clip_norm = 1.0
    c.optim.ema_decay = 0.9999

    c.train = default_train_config()
    c.train.num_steps = 500_000
    c.train.batch_size = 32
    c.train.log_every = 100
    c.train.checkpoint_every = 10_000
    c.train.best_metric = "val/loss"
    c.train.sample_every = 50_000     # generated validation sentences (wav + spectrograms)
    c.train.num_samples = 3
    c.evals = ConfigDict({"val": {"type": "tts_flow", "every": 10_000, "batches": 4}})
    c.mesh = default_mesh_config()
    return c
