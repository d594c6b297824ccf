"""The natural-speech folder builder on fake package trees (the real ones are optional)."""
import gzip

import numpy as np
import pytest
import soundfile as sf

from speechvae_jax.corpus import natural
from speechvae_jax.data import sources


def _fake_packages(tmp_path):
    alsa = tmp_path / "alsa"
    alsa.mkdir()
    for name in ("Front_Left", "Rear_Center"):
        sf.write(alsa / f"{name}.wav", np.full(4800, 0.1, np.float32), 48000)
    ast = tmp_path / "ast"
    (ast / "digits").mkdir(parents=True)
    prompts = {"vm-intro": "Please leave your message.", "digits/1": "one", "beep": "[a beep]",
               "auth-pass": "Enter your password followed by the # key, or * to cancel."}
    for name in prompts:
        sf.write(ast / f"{name}.wav", np.full(800, 0.1, np.float32), 8000)
    text = tmp_path / "core-sounds-en.txt.gz"
    with gzip.open(text, "wt") as f:
        f.write("; Core sounds\n\n" + "".join(f"{k}: {v}\n" for k, v in prompts.items()) + "missing: gone\n")
    return alsa, ast, text


def test_natural_folder_layout_and_transcripts(tmp_path):
    alsa, ast, text = _fake_packages(tmp_path)
    assert natural.asterisk_transcripts(str(text))["auth-pass"] == \
        "Enter your password followed by the pound key, or star to cancel."
    out = tmp_path / "natural"
    info = natural.build_natural_folder(str(out), test_fraction=0.5, alsa_dir=str(alsa), asterisk_dir=str(ast),
                                        asterisk_text=str(text))
    assert info["sources"]["alsa"]["files"] == 2 and info["sources"]["asterisk"]["files"] == 3  # no "[a beep]"
    assert sum(info["utterances"].values()) == 5 and (out / "natural_info.json").exists()
    everything = sources.open_source(f"folder:{out}", "all")
    recs = {everything[i]["id"]: everything[i] for i in range(len(everything))}
    assert recs["alsa_front_left"]["text"] == "Front Left"
    test = sources.open_source(f"folder:{out}", "test")
    assert {test[i]["speaker"] for i in range(len(test))} >= {"alsa"}
    assert "allison_digits-1" in recs and recs["allison_digits-1"]["audio"].size == 1600  # 8 -> 16 kHz


def test_nothing_installed_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install alsa-utils"):
        natural.build_natural_folder(str(tmp_path / "o"), alsa_dir=str(tmp_path), asterisk_dir=str(tmp_path / "x"),
                                     asterisk_text=str(tmp_path / "t.gz"))
