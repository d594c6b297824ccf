"""The full run config (configs/tiny.py and configs/paper.py build on this).

The sections here are the ones that do not depend on the model size; model, loss and alignment
sections come from presets/model.py and presets/alignment.py.
"""
import importlib
import importlib.util
import os

from ml_collections import ConfigDict, config_dict

from speechvae_jax.data.pipeline import default_data_config
from speechvae_jax.engine.loop import default_mesh_config, default_train_config
from speechvae_jax.presets.alignment import variant_config
from speechvae_jax.presets.model import loss_config, model_config


def vae_config(size: str, variant: str) -> ConfigDict:
    """The full config for `size` ('tiny' or 'paper') with alignment `variant` (a scheme, optionally
    `+weighting`, or a recipe: presets.alignment.variant_config)."""
    c = ConfigDict()
    c.data = default_data_config()
    c.model = model_config(size)
    c.loss = loss_config(size)
    c.alignment = variant_config(variant or "joint_marginal")

    c.teacher = ConfigDict()
    c.teacher.path = ""            # a converted or in-house teacher directory (docs/teachers.md)
    # Hidden-state index, Hugging Face numbering (0 = embeddings); also a list of indices (their
    # mean) or "average" (all hidden states), from a config file or `--config.teacher.layer=[3,4]`.
    c.teacher.layer = config_dict.FieldReference(23, field_type=object)
    c.teacher.interp = "linear"    # 50 Hz -> 40 Hz: "linear" (release) or "avgpool"
    c.teacher.cache_dir = ""       # precomputed features (speechvae teacher cache); "" = on the fly

    c.optim = ConfigDict()
    c.optim.lr = 1e-4
    c.optim.disc_lr = 1e-4
    c.optim.b1 = 0.8
    c.optim.b2 = 0.99
    c.optim.eps = 1e-8             # Adam's denominator floor
    c.optim.weight_decay = 0.01
    c.optim.decay = 0.999996       # exponential lr decay per update
    c.optim.clip_norm = 0.0        # global-norm clipping; 0 = off
    c.optim.ema_decay = 0.9999
    c.optim.ema_schedule = "release" if size == "paper" else "warmup10"   # train/state.py EMA_SCHEDULES
    c.optim.ema_power = 0.75       # "release": ema-pytorch warm-up power
    c.optim.ema_update_after_step = 1

    c.train = default_train_config()
    c.train.num_steps = 600_000
    c.train.batch_size = 16        # global batch
    c.train.update_mode = "alternating"   # or "simultaneous"
    c.train.disc_start = 0
    c.train.log_every = 50
    c.train.checkpoint_every = 5000
    c.train.keep_checkpoints = 3
    c.train.best_metric = "val/stft"
    c.train.sample_every = 10000
    c.train.num_samples = 3

    # Periodic evaluators by name (engine.evaluators): EMA reconstructions of fixed validation crops.
    c.evals = ConfigDict({"val": {"type": "vae_reconstruction", "every": 5000, "batches": 4}})
    c.mesh = default_mesh_config()
    return c


def load_config_file(name: str, variant: str | None = None) -> ConfigDict:
    """`get_config(variant)` (or `get_config()` when variant is None) of a config file: `name` is a
    path, or a name looked up as ./configs/<name>.py, then in the installed package
    (speechvae_jax.configs, setup.py)."""
    for path in (name, os.path.join("configs", f"{name}.py")):
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location(f"speechvae_config_{os.path.basename(path)[:-3]}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.get_config() if variant is None else module.get_config(variant)
    if name.endswith(".py") or os.sep in name:
        raise FileNotFoundError(f"config file {name} not found")
    try:
        module = importlib.import_module(f"speechvae_jax.configs.{name}")
    except ModuleNotFoundError as e:
        raise FileNotFoundError(f"no config {name!r}: not ./configs/{name}.py nor in the installed package") from e
    return module.get_config(variant)
