"""Frame targets for HuBERT-style pre-training: MFCC features and k-means cluster ids.

MFCCs use the teacher's frame geometry (window = receptive field 400, hop 320, no centring), so
frame j of an utterance is exactly teacher frame j: T = floor((N - 400) / 320) + 1.
"""
from __future__ import annotations

import numpy as np


def mfcc_features(audio: np.ndarray, n_mfcc: int = 13, window: int = 400, hop: int = 320,
                  sample_rate: int = 16000, deltas: bool = True) -> np.ndarray:
    """MFCC (+ delta + delta-delta) [T, 3*n_mfcc] (or [T, n_mfcc]) float32; T = 0 if too short."""
    import librosa
    n = audio.shape[0]
    if n < window:
        return np.zeros((0, 3 * n_mfcc if deltas else n_mfcc), np.float32)
    m = librosa.feature.mfcc(y=np.asarray(audio, np.float32), sr=sample_rate, n_mfcc=n_mfcc, n_fft=window,
                             hop_length=hop, win_length=window, n_mels=40, center=False)
    if deltas:
        m = np.concatenate([m, librosa.feature.delta(m, order=1, mode="nearest"),
                            librosa.feature.delta(m, order=2, mode="nearest")], axis=0)
    return m.T.astype(np.float32)


def fit_kmeans(features: list[np.ndarray], num_clusters: int, max_frames: int, seed: int) -> dict:
    """Mini-batch k-means on (standardised) frames drawn from `features` ([T_i, D] each).

    Returns {"mean" [D], "std" [D], "centroids" [K, D]} (centroids in standardised units)."""
    from sklearn.cluster import MiniBatchKMeans
    frames = np.concatenate([f for f in features if len(f)])
    rng = np.random.default_rng(seed)
    if len(frames) > max_frames:
        frames = frames[rng.choice(len(frames), max_frames, replace=False)]
    if len(frames) < num_clusters:
        raise ValueError(f"k-means: {len(frames)} frames for {num_clusters} clusters; more audio is needed")
    mean, std = frames.mean(0), frames.std(0) + 1e-5
    km = MiniBatchKMeans(n_clusters=num_clusters, batch_size=4096, n_init=3, random_state=seed,
                         max_iter=100).fit((frames - mean) / std)
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32),
            "centroids": km.cluster_centers_.astype(np.float32)}


def assign_clusters(features: np.ndarray, kmeans: dict) -> np.ndarray:
    """Nearest-centroid ids [T] (int32) of frames [T, D]."""
    if len(features) == 0:
        return np.zeros((0,), np.int32)
    x = (features - kmeans["mean"]) / kmeans["std"]
    c = kmeans["centroids"]
    d = (x * x).sum(1, keepdims=True) - 2 * x @ c.T + (c * c).sum(1)[None]
    return d.argmin(1).astype(np.int32)


def span_mask(rng: np.random.Generator, valid: np.ndarray, prob: float, length: int) -> np.ndarray:
    """HuBERT/wav2vec2 span masking [B,T] (bool): per row, int(prob * T_valid / length + u) spans of
    `length` frames start at distinct random valid positions (u ~ U[0,1)); spans stay in the valid part."""
    b, t = valid.shape
    out = np.zeros((b, t), bool)
    for i in range(b):
        tv = int(valid[i].sum())
        if tv < length:
            continue
        n = min(int(prob * tv / length + rng.random()), tv - length + 1)
        for s in rng.choice(tv - length + 1, n, replace=False):
            out[i, s:s + length] = True
    return out
