import matplotlib.pyplot as plt
import numpy as np

from speechvae_jax.dsp import figures


def test_spectrogram_pairs_titles_name_both_columns():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(8000).astype(np.float32), rng.standard_normal(6400).astype(np.float32)
    fig = figures.spectrogram_pairs([("u1", a, b)])
    assert [ax.get_title() for ax in fig.axes] == ["u1: original", "u1: reconstruction"]
    plt.close(fig)
    fig = figures.spectrogram_pairs([("u1", a, b), ("u2", b, a)], labels=("recording", "generated"))
    assert [ax.get_title() for ax in fig.axes] == ["u1: recording", "u1: generated", "u2: recording", "u2: generated"]
    assert fig.axes[1].get_images()[0].get_extent()[1] == 6400 / 16000  # time axis in seconds per column
    plt.close(fig)
