"""Per-step time of the toy experiment: the 12-run ensemble against one single-model run x 12.

The paper's toy setting (Sec. 4.1, Appendix D.3.1): REAL-NVP (``realnvp_2d``: 5 coupling
layers, 2 x 64 hidden units), batch 256, Adam 5e-4, 20,000 steps, for 2 toys x 2 modes
(vanilla, Gaussian mollification) x 3 seeds = 12 runs. ``python -m molli_utils.experiments
toy2d`` trains them as one :class:`~molli_utils.models.FlowEnsemble`; this times a step of
that ensemble and a step of one of the runs trained alone, both through
:func:`molli_utils.training.train` (its own ``elapsed``, so data and model set-up are not
counted), and extrapolates both to the paper's 20,000 steps.

Run:  make bench      (or: python -m benchmarks.bench_toy2d --help)

Prints medians over repeats, measured in one run, interleaved so that drifts in
machine load hit both alike. The machine is noisy: read the medians, not single timings.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from molli_utils import Mollifier, TrainConfig, train
from molli_utils.data import load_toy2d
from molli_utils.experiments.toy2d import DATASETS as TOY2D_DATASETS
from molli_utils.experiments.toy2d import PAPER_MODES as MODES
from molli_utils.models import FlowEnsemble, realnvp_2d

PAPER_STEPS = 20_000


def _mollifier(mode: str, seed: int):
    if mode == "vanilla":
        return None
    return Mollifier("gaussian", horizon=PAPER_STEPS, generator=torch.Generator().manual_seed(1000 + seed))


def _seconds_per_step(model, data, steps: int, seed, mollifier) -> float:
    """Train ``model`` ``steps`` more steps (a fresh Adam) and return the loop's seconds per step."""
    config = TrainConfig(steps=steps, batch_size=256, lr=5e-4, seed=seed, progress=False)
    return train(model, data, config, mollifier=mollifier).elapsed / steps


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps of each before the timings")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these tiny models)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    runs = [(d, mode, s) for d in TOY2D_DATASETS for mode in MODES for s in (0, 1, 2)]
    splits = {d: load_toy2d(d, n_train=10_000, n_test=0, seed=0)[0] for d in TOY2D_DATASETS}
    ensemble = FlowEnsemble([realnvp_2d(seed=s) for *_, s in runs])
    ens_data, ens_seeds = [splits[d] for d, *_ in runs], tuple(s for *_, s in runs)
    ens_mollifiers = [_mollifier(mode, s) for _, mode, s in runs]
    single = realnvp_2d(seed=0)  # one of the 12 runs: the mollified mixture, seed 0
    single_mollifier = _mollifier("mollification", 0)

    def ensemble_step(steps: int) -> float:
        return _seconds_per_step(ensemble, ens_data, steps, ens_seeds, ens_mollifiers)

    def single_step(steps: int) -> float:
        return _seconds_per_step(single, splits[TOY2D_DATASETS[0]], steps, 0, single_mollifier)

    ensemble_step(args.warmup), single_step(args.warmup)
    t_ens, t_one = [], []
    for _ in range(args.repeats):
        t_ens.append(ensemble_step(args.steps))
        t_one.append(single_step(args.steps))

    m = len(runs)
    med = {"ensemble_step_s": statistics.median(t_ens), "single_step_s": statistics.median(t_one)}
    med["separate_step_s"] = m * med["single_step_s"]
    med["speedup"] = med["separate_step_s"] / med["ensemble_step_s"]
    print(f"Toys: {m} runs of realnvp_2d (2 toys x 2 modes x 3 seeds), batch 256; torch threads={args.threads}; "
          f"{args.repeats} repeats x {args.steps} steps after {args.warmup} warm-up steps, medians")
    print(f"  ensemble of {m}, one step              {med['ensemble_step_s'] * 1e3:8.2f} ms"
          f"   -> {PAPER_STEPS:,} steps: {med['ensemble_step_s'] * PAPER_STEPS / 60:6.1f} min")
    print(f"  one run alone, one step              {med['single_step_s'] * 1e3:8.2f} ms")
    print(f"  {m} runs alone (x {m}), one step        {med['separate_step_s'] * 1e3:8.2f} ms"
          f"   -> {PAPER_STEPS:,} steps: {med['separate_step_s'] * PAPER_STEPS / 60:6.1f} min")
    print(f"  speed-up of the ensemble ({m} alone / ensemble)  {med['speedup']:6.2f} x")
    return med


if __name__ == "__main__":
    main()
