"""Pieces every trainer's state and update share: the base state keys and the guarded optimiser step.

A non-finite loss or gradient skips the update (parameters and optimiser state kept) and is counted:
`skipped` over the run, `skipped_run` since the last good update. The engine stops a run whose
`skipped_run` reaches `train.max_consecutive_skips` (divergence), without saving the diverged state.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax


def base_state(rng: jax.Array) -> dict[str, jax.Array]:
    """{"step": int32 [], "rng": key, "skipped": int32 [], "skipped_run": int32 []} of a fresh run."""
    zero = lambda: jnp.zeros((), jnp.int32)  # one buffer each: a donating step must not see one twice
    return {"step": zero(), "rng": rng, "skipped": zero(), "skipped_run": zero()}


def all_finite(tree: Any) -> jax.Array:
    """bool []: every element of every leaf is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def select(ok: jax.Array, new: Any, old: Any) -> Any:
    """`new` if ok else `old` (one conditional: a `where` per leaf on a predicate reduced from many
    leaves makes XLA:CPU compile times grow with the square of the leaf count)."""
    return jax.lax.cond(ok, lambda: new, lambda: old)


def guarded_update(tx: optax.GradientTransformation, params: Any, opt_state: Any, grads: Any,
                   loss: jax.Array) -> tuple[Any, Any, jax.Array]:
    """One optimiser step, or none when the loss or a gradient is not finite -> (params, opt_state, ok).
    The step runs inside the conditional, so a non-finite gradient never reaches the optimiser state."""
    ok = jnp.isfinite(loss) & all_finite(grads)

    def step():
        updates, new_opt = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_opt
    new_params, new_opt = jax.lax.cond(ok, step, lambda: (params, opt_state))
    return new_params, new_opt, ok


def count_updates(state: dict, oks: Sequence[jax.Array]) -> dict[str, jax.Array]:
    """The base counters after updates with flags `oks`: step + 1, skipped and skipped_run advanced."""
    bad = sum((1 - ok.astype(jnp.int32)) for ok in oks)
    return {"step": state["step"] + 1, "skipped": state["skipped"] + bad,
            "skipped_run": jnp.where(bad > 0, state["skipped_run"] + bad, 0)}
