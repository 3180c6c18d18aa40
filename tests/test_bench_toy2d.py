"""The toy benchmark's torch.compile lever times the ensemble it claims to (no timing is asserted)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import bench_toy2d


def test_compile_timings_eager_only_is_positive_and_skips_compile() -> None:
    torch.manual_seed(0)
    out = bench_toy2d.compile_timings(bench_toy2d.RUNS[:2], steps=2, repeats=1, compile_loss=False)
    assert out["members"] == 2 and out["eager_s"] > 0
    assert "compiled_s" not in out and "compile_s" not in out


def test_compile_timings_rejects_nothing_silently_on_a_wrong_run() -> None:
    with pytest.raises((KeyError, ValueError)):
        bench_toy2d.compile_timings([("no_such_toy", "vanilla", 0)], steps=1, repeats=1, compile_loss=False)
