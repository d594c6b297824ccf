"""Run configs on the command line: `--config FILE[:variant]` plus `--config.a.b=value` overrides.

The file is a Python module with `get_config(variant)` (configs/*.py). Overrides name existing keys
only; a value is parsed as a Python literal where it is one (numbers, booleans, tuples, None) and
must fit the key's type. Mistakes fail before any work starts, in one line naming the key, the value
and what was expected (with the closest valid key for a typo).
"""
from __future__ import annotations

import ast
import difflib

from ml_collections import ConfigDict

from speechvae_jax.presets.run import load_config_file


class ConfigError(ValueError):
    """A config file or override the user can fix (the message says how)."""


def _keys(cfg: ConfigDict, prefix: str = "") -> list[str]:
    out = []
    for k, v in cfg.items():
        path = f"{prefix}{k}"
        out += _keys(v, path + ".") if isinstance(v, ConfigDict) else [path]
    return out


def _literal(text: str):
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _override(cfg: ConfigDict, key: str, text: str) -> None:
    parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        if not isinstance(node, ConfigDict) or part not in node:
            _unknown(cfg, key)
        node = node[part]
    if not isinstance(node, ConfigDict) or parts[-1] not in node or isinstance(node[parts[-1]], ConfigDict):
        _unknown(cfg, key)
    value, old = _literal(text), node[parts[-1]]
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(old, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(old, str) and not isinstance(value, str):
        value = text
    try:
        with node.unlocked():
            node[parts[-1]] = value
    except (TypeError, ValueError):
        expected = f"a value of type {type(old).__name__}" if old is not None else "a value of the field's type"
        raise ConfigError(f"--config.{key}={text}: expected {expected}") from None


def _unknown(cfg: ConfigDict, key: str):
    close = difflib.get_close_matches(key, _keys(cfg), n=1, cutoff=0.6)
    hint = f"; did you mean --config.{close[0]}?" if close else ""
    raise ConfigError(f"--config.{key}: no such config key{hint}")


def load(spec: str, overrides: list[tuple[str, str]]) -> ConfigDict:
    """The config `FILE[:variant]` with `(key, value)` overrides applied, locked against new keys."""
    path, _, variant = spec.partition(":")
    try:
        cfg = load_config_file(path, variant or None)
    except FileNotFoundError as e:
        raise ConfigError(f"--config {spec}: {e}") from None
    except ValueError as e:  # an unknown variant or a bad preset name, raised by get_config
        raise ConfigError(f"--config {spec}: {e}") from None
    for key, text in overrides:
        _override(cfg, key, text)
    cfg.lock()
    return cfg


def split_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Pull `--config.k=v` / `--config.k v` out of argv -> (the other arguments, [(k, v), ...])."""
    rest, overrides, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--config."):
            key, eq, value = arg[len("--config."):].partition("=")
            if not eq:
                if i + 1 >= len(argv):
                    raise ConfigError(f"{arg}: missing value (use {arg}=VALUE)")
                value, i = argv[i + 1], i + 1
            overrides.append((key, value))
        else:
            rest.append(arg)
        i += 1
    return rest, overrides
