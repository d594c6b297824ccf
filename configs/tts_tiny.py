"""A tiny flow-matching TTS for a 2-core CPU, on the latents of a tiny VAE run (docs/generation.md).

  speechvae export --workdir RUN --data corpus:demo_out/corpus --split train --out RUN/export/train
  speechvae export --workdir RUN --data corpus:demo_out/corpus --split valid --out RUN/export/valid
  speechvae generate train --config configs/tts_tiny.py --latents RUN/export --workdir RUN/tts

Phonemes laid out on the frames by the corpus timings (text.mode "aligned"): with the alignment
given, a small DiT learns on the hour-long built-in corpus in minutes; the F5-TTS way (filler
tokens, learned alignment) needs far more data (configs/tts_paper.py). Every example is an
utterance preceded by another of its speaker (data.prompt_pairs), as sampling lays a prompt before
the target: trained on single 4 s windows, the model droned past 4 s (docs/generation.md).
"""
from speechvae_jax.generate.config import tts_config


def get_config(variant: str = ""):
    del variant
    c = tts_config("tiny")
    c.text.mode = "aligned"
    c.text.units = "phonemes"
    c.text.symbols = []               # the training export's phoneme inventory
    c.data.max_frames = 320           # 8 s windows: two utterances of one speaker
    c.data.prompt_pairs = 1.0
    c.sample.nfe = 16
    c.optim.lr = 1e-3
    c.optim.warmup_steps = 100
    c.optim.decay_steps = 1500
    c.optim.ema_decay = 0.99
    c.train.num_steps = 1500
    c.train.batch_size = 8            # 8 x 320 frames: the frames per step of 16 x 160
    c.train.log_every = 25
    c.train.checkpoint_every = 500
    c.train.sample_every = 1500
    c.evals.val.every = 250
    c.evals.val.batches = 2
    return c
