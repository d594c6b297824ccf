"""The TTS trainer on the engine: a few steps, exact resume, samples of the requested length."""
import json
import logging
import os

import jax
import numpy as np
import pytest
import soundfile as sf

from speechvae_jax.generate import prompt as prompt_lib
from speechvae_jax.generate import synthesis, trainer
from speechvae_jax.generate.data import open_split
from speechvae_jax.presets.run import load_config_file
from tests.generate.conftest import synthetic_utterance
from tests.test_cli import run_cli


def _config(latents, vae_run, **train):
    c = load_config_file("tts_tiny")
    c.model.update(width=32, depth=2, heads=2, text_width=16, text_layers=1, conv_pos_kernel=5, conv_pos_groups=4)
    c.data.latents, c.vae.workdir = latents, vae_run
    c.data.max_frames = 24
    c.sample.update(nfe=2, batch_size=2)
    c.optim.update(warmup_steps=2, decay_steps=100)
    c.train.update(batch_size=8, num_steps=4, log_every=1, checkpoint_every=2, sample_every=4, num_samples=2)
    c.evals.val.update(every=2, batches=1)
    c.train.update(train)
    return c


def test_prepare_config_reads_the_export(tts_latents, tiny_run, tiny_model):
    c = trainer.prepare_config(_config(tts_latents, tiny_run))
    assert c.text.symbols == ["a", "b", "c", "d", "e"]
    assert len(c.data.latent_mean) == 64 and min(c.data.latent_std) > 0
    assert (c.vae.step, c.vae.hash) == (tiny_model.step, tiny_model.checkpoint_hash)
    bad = _config(tts_latents, tiny_run)
    bad.model.latent_dim = 32
    with pytest.raises(ValueError, match="64-d"):
        trainer.prepare_config(bad)
    with pytest.raises(FileNotFoundError, match="vae.workdir"):
        trainer.find_vae_run(tts_latents)


def _losses(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {r["step"]: r["loss/flow"] for r in rows if "loss/flow" in r}


@pytest.mark.slow
def test_trains_resumes_exactly_and_samples(tts_latents, tiny_run, tmp_path, caplog):
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    result = trainer.train(_config(tts_latents, tiny_run), straight)
    assert result.step == 4 and np.isfinite(result.metrics["val/loss"])
    losses = _losses(straight)
    assert sorted(losses) == [1, 2, 3, 4] and all(np.isfinite(v) for v in losses.values())
    trainer.train(_config(tts_latents, tiny_run, num_steps=2), resumed)
    again = trainer.train(_config(tts_latents, tiny_run), resumed)
    assert again.step == 4
    assert _losses(resumed) == losses
    for a, b in zip(jax.tree.leaves(result.state["ema"]), jax.tree.leaves(again.state["ema"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    samples = os.path.join(straight, "samples", "step_0000004")
    assert sorted(os.listdir(samples)) == ["0_generated.wav", "1_generated.wav", "spectrograms.png"]
    # Generation from the checkpoint: decodable audio of the requested number of frames.
    synth = synthesis.load_synthesizer(straight)
    valid = open_split(synth.config.data, "valid")
    prompt, target = valid[0], valid[2]
    rows = [prompt_lib.compose(prompt, prompt_lib.Target(["a", "b"], 17, np.array([0, 5]), np.array([5, 17])),
                               synth.config.text, synth.vocab, synth.stats),
            prompt_lib.compose(prompt, prompt_lib.target_from_record(target, synth.config.text),
                               synth.config.text, synth.vocab, synth.stats)]
    with caplog.at_level(logging.WARNING):
        audio = synth.speech(rows, seed=3)
    assert f"exceed the {synth.config.data.max_frames}-frame training examples" in caplog.text
    assert [a.size for a in audio] == [17 * 400, target["num_frames"] * 400]
    assert all(np.all(np.isfinite(a)) and np.abs(a).max() <= 1.0 for a in audio)
    np.testing.assert_array_equal(audio[0], synth.speech(rows, seed=3)[0])


SMALL_FLAGS = ["--config.model.width=32", "--config.model.depth=2", "--config.model.heads=2",
               "--config.model.text_width=16", "--config.model.text_layers=1", "--config.model.conv_pos_kernel=5",
               "--config.model.conv_pos_groups=4", "--config.data.max_frames=24", "--config.train.batch_size=8",
               "--config.train.num_steps=1", "--config.train.sample_every=0", "--config.evals.val.batches=1"]


@pytest.mark.slow
def test_cli_trains_and_says_a_text_at_the_prompt_rate(tts_latents, tiny_run, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    code, _, err = run_cli(capsys, "generate", "train", "--config", "configs/tts_tiny.py", "--latents", tts_latents,
                           "--vae", tiny_run, "--workdir", workdir, *SMALL_FLAGS)
    assert code == 0, err
    utt = synthetic_utterance("p", "s0", seed=5)
    sf.write(tmp_path / "prompt.wav", utt["audio"], 16000)
    args = ["generate", "sample", "--workdir", workdir, "--text", "hello there, hello", "--prompt",
            str(tmp_path / "prompt.wav"), "--out", str(tmp_path / "out.wav"), "--nfe", "2"]
    code, _, err = run_cli(capsys, *args)
    assert code != 0 and "transcript" in err.splitlines()[-1]
    (tmp_path / "prompt.txt").write_text("hello there")
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    audio, sr = sf.read(tmp_path / "out.wav")
    phones, _ = prompt_lib.espeak_phonemes("hello there, hello")
    prompt_phones, _ = prompt_lib.espeak_phonemes("hello there")
    frames = round(-(-utt["audio"].size // 400) * len(phones) / len(prompt_phones))
    assert sr == 16000 and audio.size == frames * 400 and f"({frames} frames)" in out
