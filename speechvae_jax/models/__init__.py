"""Flax Linen modules: the DAC-style encoder, the VAE bottleneck, the BigVGAN decoder, the
discriminators (MPD, sub-band CQT, STFT) and the alignment projection heads."""
