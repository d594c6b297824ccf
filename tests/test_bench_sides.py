"""`bench.sides`: two builders in their own processes, timed in either order; failures are named."""
import os

import numpy as np
import pytest

from speechvae_jax.bench.sides import alternate


def sum_side(n: int):
    """A builder: one part that sums an n-vector, and the worker's pid."""
    return {"sum": (lambda x: float(np.sum(x)), np.ones(n))}, {"pid": os.getpid()}


def product_side(n: int):
    """A builder naming a different part."""
    return {"product": (lambda x: float(np.prod(x)), np.ones(n))}, {}


def failing_side(n: int):
    raise ValueError(f"no parts for n={n}")


@pytest.mark.parametrize("grouped", [False, True])
def test_each_side_runs_in_its_own_process_and_gives_medians(grouped):
    builders = {"a": "tests.test_bench_sides:sum_side", "b": "tests.test_bench_sides:sum_side"}
    medians, first, info = alternate(builders, {"n": 1000}, repeats=3, grouped=grouped)
    assert set(medians) == {"sum"} and set(medians["sum"]) == {"a", "b"}
    assert all(0 < t < 5 for t in medians["sum"].values())
    assert set(first) == {"a", "b"} and first["a"]["sum"] > 0
    assert len({info["a"]["pid"], info["b"]["pid"], os.getpid()}) == 3


def counting_side(path: str):
    """A builder whose one part appends a line to `path` per call (the first, warm-up and timed calls)."""
    def call(p):
        with open(p, "a") as f:
            f.write("call\n")
    return {"count": (call, path)}, {}


@pytest.mark.parametrize("grouped", [False, True])
def test_warmup_calls_run_untimed_before_the_timed_ones(tmp_path, grouped):
    path = str(tmp_path / "calls.txt")
    builders = {"a": "tests.test_bench_sides:counting_side"}
    alternate(builders, {"path": path}, repeats=3, grouped=grouped, warmup=2)
    assert open(path).read().count("call") == 1 + 2 + 3   # first call, warm-up, timed


def test_mismatched_parts_and_a_failing_builder_are_named():
    with pytest.raises(ValueError, match="name different parts"):
        alternate({"a": "tests.test_bench_sides:sum_side", "b": "tests.test_bench_sides:product_side"},
                  {"n": 10}, repeats=1)
    with pytest.raises(RuntimeError, match="the b side .*failing_side.* failed while building"):
        alternate({"a": "tests.test_bench_sides:sum_side", "b": "tests.test_bench_sides:failing_side"},
                  {"n": 10}, repeats=1)
