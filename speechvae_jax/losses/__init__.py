"""Loss functions, pure and float32 inside: spectral (MR-STFT, mel distance), adversarial (LSGAN,
feature matching), KL, the latent-to-teacher alignment family and its adaptive weighting."""
