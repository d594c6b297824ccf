# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tour of exported latents
#
# Reads the latents a run exported (`speechvae export --workdir RUN --data SOURCE --out RUN/export/test`):
# a PCA of the latent frames coloured by phoneme and by speaker, the frame-by-frame self-similarity of
# one utterance's latent beside its teacher's (what the distance-matrix loss aligns), and the
# reconstructions decoded from the latents, to listen to. Set `SPEECHVAE_RUN` (and `SPEECHVAE_EXPORT`
# when the export is elsewhere) before starting Jupyter. `tests/test_notebooks.py` runs it on an
# untrained tiny run.

# %%
import collections
import os

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Audio, display

from speechvae_jax.constants import SAMPLE_RATE
from speechvae_jax.engine.rundir import load_config
from speechvae_jax.evaluate.features import select_utterances, teacher_items
from speechvae_jax.export import latent_source
from speechvae_jax.inference import load_for_inference
from speechvae_jax.teachers import load_teacher

RUN = os.environ.get("SPEECHVAE_RUN", "demo_out/run")
EXPORT = os.environ.get("SPEECHVAE_EXPORT", os.path.join(RUN, "export", "test"))
MAX_UTTERANCES = int(os.environ.get("SPEECHVAE_TOUR_UTTERANCES", "60"))
source = latent_source(EXPORT)
records = [source[i] for i in range(min(len(source), MAX_UTTERANCES))]
manifest = source.manifest
print(f"{len(source)} exported utterances ({manifest['mode']} latents, {manifest['dtype']}), "
      f"checkpoint step {manifest['checkpoint']['step']}; touring {len(records)}")

# %% [markdown]
# ## Frames and their labels
# Each frame gets the phoneme whose span covers it (`phoneme_start_frames` / `phoneme_end_frames` of the
# export) and its utterance's speaker.

# %%
frames, phones, speakers = [], [], []
for rec in records:
    t = int(rec["num_frames"])
    label = np.full(t, None, object)
    names = str(rec.get("phonemes", "")).split()
    starts, ends = rec.get("phoneme_start_frames"), rec.get("phoneme_end_frames")
    if starts is not None and len(names) == len(starts):
        for p, a, b in zip(names, starts, ends):
            label[a:b] = p
    frames.append(np.asarray(rec["latent"][:t], np.float32))
    phones += list(label)
    speakers += [str(rec.get("speaker", "?"))] * t
x = np.concatenate(frames)
x = (x - x.mean(0)) / (x.std(0) + 1e-6)
_, sv, vt = np.linalg.svd(x, full_matrices=False)
pcs = x @ vt[:2].T
explained = sv[:2] ** 2 / np.sum(sv ** 2)
print(f"{len(x)} frames; the first two components explain {explained[0]:.1%} and {explained[1]:.1%}")

# %% [markdown]
# ## PCA coloured by phoneme (the 8 most frequent) and by speaker

# %%
def scatter(ax, labels, title, top=8):
    counts = collections.Counter(lab for lab in labels if lab is not None)
    keep = [lab for lab, _ in counts.most_common(top)]
    labels = np.asarray(labels, object)
    ax.scatter(pcs[:, 0], pcs[:, 1], s=3, color="lightgrey", label="other")
    for i, lab in enumerate(keep):
        sel = labels == lab
        ax.scatter(pcs[sel, 0], pcs[sel, 1], s=4, color=plt.cm.tab10(i % 10), label=str(lab))
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%})")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%})")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, markerscale=3, loc="best")


fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
scatter(axes[0], phones, "latent frames by phoneme")
scatter(axes[1], speakers, "latent frames by speaker")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Latent vs teacher self-similarity of one utterance
# cos(z_i, z_j) against cos(s_i, s_j) over the frames of one utterance: the marginal distance-matrix
# loss pulls the left matrix towards the right one (up to its margin).

# %%
config = load_config(RUN)
spec, split = manifest["source"]["spec"], manifest["source"]["split"]
audio_records, _ = select_utterances(spec, split, len(source))
by_id = {r["id"]: r for r in audio_records}
rec = next(r for r in records if r["id"] in by_id)
teacher = load_teacher(config.teacher.path)
s = teacher_items(teacher, config.teacher.layer, [by_id[rec["id"]]])[0]["x"]
z = np.asarray(rec["latent"][: len(s)], np.float32)


def cosine_matrix(a):
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-8)
    return a @ a.T


fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, (title, m) in zip(axes, [("latent", cosine_matrix(z)), ("teacher", cosine_matrix(s)),
                                 ("|latent - teacher|", np.abs(cosine_matrix(z) - cosine_matrix(s)))]):
    im = ax.imshow(m, origin="lower", cmap="viridis", vmin=0 if title.startswith("|") else -1, vmax=1)
    ax.set_title(f"{title} ({rec['id']})", fontsize=8)
    ax.set_xlabel("frame j")
    ax.set_ylabel("frame i")
    fig.colorbar(im, ax=ax, fraction=0.046)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Listen: original and the reconstruction decoded from the exported latent

# %%
model = load_for_inference(RUN)
for r in records[:3]:
    n = int(r["num_samples"])
    decoded = np.asarray(model.decode(np.asarray(r["latent"], np.float32)[None]))[0, :n]
    print(r["id"], r.get("text", ""))
    if r["id"] in by_id:
        display(Audio(by_id[r["id"]]["audio"], rate=SAMPLE_RATE))
    display(Audio(decoded, rate=SAMPLE_RATE))
