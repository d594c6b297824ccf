"""Pre-training of the in-house SSL teacher on the training engine (HuBERT-style masked prediction
of MFCC k-means clusters): `pretrain.hubert.pretrain(config, workdir)`."""
