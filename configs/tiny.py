"""A scaled-down VAE for a 2-core CPU: trains in about 15 minutes on the built-in corpus.

  speechvae train --config configs/tiny.py:joint_marginal --workdir runs/tiny \
      --config.data.source=corpus:demo_out/corpus --config.teacher.path=demo_out/teacher/teacher

Variants as configs/paper.py (joint_marginal is the default; `none` trains without a teacher). The
encoder is a frame-rate ConvNeXt on a log-magnitude STFT and the decoder the harmonic (source-filter)
decoder, not the release's DAC and BigVGAN: at this budget BigVGAN reconstructs whisper, the harmonic
decoder voiced speech, and the STFT encoder reaches in 750 steps the validation loss the 8-channel DAC
encoder reached in 2000, with better phoneme probes (docs/training.md);
`--config.model.encoder.kind=dac --config.model.decoder.kind=bigvgan` restore the release's families. The
first `train.disc_start` steps are GAN-free (spectral + KL + alignment + f0 only), which gets intelligible
reconstructions much sooner on a CPU. With the defaults the whole run is that GAN-free phase (the
demo's 30-minute budget on 2 cores); `--config.train.num_steps=3500` adds 1500 steps of alternating
generator / discriminator updates (MPD + CQT discriminators, LSGAN, feature matching), which at this
budget make every reconstruction figure worse, where 1500 more GAN-free steps (`--config.train.disc_start=3500`
too) improve them (docs/training.md, "The GAN phase after the GAN-free one").
"""
from speechvae_jax.presets.run import vae_config


def get_config(variant: str = "joint_marginal"):
    c = vae_config("tiny", variant)
    c.data.source = "corpus:demo_out/corpus"
    c.data.crop_samples = 8000          # 0.5 s crops (20 latent frames)
    c.model.encoder.kind = "stft"       # models/stft_encoder.py; settings in c.model.encoder.stft
    c.model.decoder.kind = "harmonic"   # models/harmonic_decoder.py; f0 loss settings in c.loss.pitch
    c.teacher.path = "demo_out/teacher/teacher"
    c.teacher.layer = 1             # the in-house teacher's best phoneme layer (docs/teachers.md)
    c.optim.lr = 1e-3
    c.optim.disc_lr = 1e-3
    c.optim.decay = 0.9999
    c.optim.clip_norm = 1.0
    c.optim.ema_decay = 0.999
    c.train.batch_size = 8
    c.train.num_steps = 2000
    c.train.disc_start = 2000
    c.train.log_every = 25
    c.evals.val.every = 250
    c.evals.val.batches = 2
    c.train.sample_every = 500
    c.train.checkpoint_every = 500
    c.train.keep_checkpoints = 2
    return c
