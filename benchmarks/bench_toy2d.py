"""Per-step time of the toy experiment: one 12-run ensemble, two 6-run ensembles side by side, 12 runs alone,
and the compute bound.

The paper's toy setting (Sec. 4.1, Appendix D.3.1): REAL-NVP (``realnvp_2d``: 5 coupling layers,
2 x 64 hidden units), batch 256, Adam 5e-4, 20,000 steps, for 2 toys x 2 modes (vanilla, Gaussian
mollification) x 3 seeds = 12 runs. ``python -m molli_utils.experiments toy2d`` trains them as one
:class:`~molli_utils.models.FlowEnsemble` per worker process (default: one per core). Timed here,
each through :func:`molli_utils.training.train` (its own ``elapsed``: data and model set-up not
counted) and extrapolated to the paper's 20,000 steps:

* the 12 runs as one ensemble in one process;
* the 12 runs as two ensembles of 6 in two processes at once (what the command does on 2 cores):
  the wall time of the slower one;
* one run alone (x 12: twelve single-model runs one after the other);
* with ``--levers``: one worker's share (an ensemble of 6) with its loss under ``torch.compile``, against the
  same ensemble in eager mode (the compilation itself, about a minute, is timed apart);
* the bound: the matrix-product FLOPs of a 12-run step (forward and backward, counted with
  ``torch.utils.flop_counter.FlopCounterMode``) at the FLOP rate of a 256 x 64 x 64 product measured
  here, divided by the number of cores.

Run:  make bench      (or: python -m benchmarks.bench_toy2d --help)

Prints medians over repeats, measured in one run, interleaved so that drifts in machine load hit
all alike. The machine is noisy: read the medians, not single timings.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import copy
import multiprocessing as mp
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from molli_utils import TrainConfig, train
from molli_utils.data import load_toy2d
from molli_utils.experiments import settings
from molli_utils.experiments.toy2d import DATASETS as TOY2D_DATASETS
from molli_utils.experiments.toy2d import PAPER_MODES as MODES
from molli_utils.experiments.toy2d import flush_denormals
from molli_utils.models import FlowEnsemble, realnvp_2d

from .bench_uci import matmul_rate

PAPER_STEPS = 20_000
RUNS = [(d, mode, s) for d in TOY2D_DATASETS for mode in MODES for s in (0, 1, 2)]


def _members(runs):
    splits = {d: load_toy2d(d, n_train=10_000, n_test=0, seed=0)[0] for d in TOY2D_DATASETS}
    ensemble = FlowEnsemble([realnvp_2d(seed=s) for *_, s in runs])
    mollifiers = [settings.mollifier(mode, PAPER_STEPS, s, experiment="toy2d") for _, mode, s in runs]
    return ensemble, [splits[d] for d, *_ in runs], tuple(s for *_, s in runs), mollifiers


def seconds_per_step(runs, steps: int, warmup: int, threads: int = 1) -> float:
    """Seconds per step of the ensemble of ``runs`` after ``warmup`` untimed steps (a fresh Adam each)."""
    torch.set_num_threads(threads)
    ensemble, data, seeds, mollifiers = _members(runs)
    if len(runs) == 1:
        model, data, seeds, mollifiers = realnvp_2d(seed=seeds[0]), data[0], seeds[0], mollifiers[0]
    else:
        model = ensemble
    for n in (warmup, steps):
        config = TrainConfig(steps=n, batch_size=256, lr=5e-4, seed=seeds, progress=False)
        with flush_denormals():  # as the experiment trains
            elapsed = train(model, data, config, mollifier=mollifiers).elapsed
    return elapsed / steps


def step_flops() -> float:
    """Matrix-product FLOPs of one step (forward and backward) of the 12-run ensemble."""
    ensemble, data, _, _ = _members(RUNS)
    x = torch.stack([d[:256] for d in data])
    with FlopCounterMode(display=False) as counter:
        ensemble.forward_kld(x).sum().backward()
    return float(counter.get_total_flops())


def compile_timings(runs, *, steps: int = 50, repeats: int = 3, compile_loss: bool = True) -> dict[str, float]:
    """Seconds per step of the ensemble of ``runs`` in eager mode (``eager_s``) and, if ``compile_loss``, with
    its loss under ``torch.compile`` (``compiled_s``; ``compile_s``: the first step's seconds); medians of
    ``repeats`` alternating timings of ``steps`` steps on one fixed batch of 256 points per member, with
    one Adam (5e-4) per version. ``loss_gap``: the largest difference between the two versions' losses
    at the start (0 up to rounding)."""
    ensemble, data, _, _ = _members(runs)
    twin = copy.deepcopy(ensemble)
    x = torch.stack([d[:256] for d in data])
    versions = {"eager_s": (ensemble, ensemble.nll)}
    out: dict[str, float] = {"members": float(len(runs))}
    if compile_loss:
        compiled = torch.compile(twin.nll)
        versions["compiled_s"] = (twin, compiled)
    opts = {k: torch.optim.Adam(m.parameters(), lr=5e-4) for k, (m, _) in versions.items()}

    def step(key: str) -> None:
        opts[key].zero_grad(set_to_none=True)
        versions[key][1](x).sum().backward()
        opts[key].step()

    if compile_loss:
        with torch.no_grad():
            out["loss_gap"] = float((ensemble.nll(x) - compiled(x)).abs().max())
        start = time.perf_counter()
        step("compiled_s")
        out["compile_s"] = time.perf_counter() - start
    times: dict[str, list[float]] = {k: [] for k in versions}
    for key in versions:  # warm-up
        step(key), step(key)
    for _ in range(repeats):
        for key in versions:
            start = time.perf_counter()
            for _ in range(steps):
                step(key)
            times[key].append((time.perf_counter() - start) / steps)
    out.update({k: statistics.median(v) for k, v in times.items()})
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps of each before the timings")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these tiny models)")
    parser.add_argument("--levers", action="store_true", help="also time one worker's ensemble under torch.compile")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    halves = [RUNS[0::2], RUNS[1::2]]
    t_one, t_two, t_single = [], [], []
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        for _ in range(args.repeats):
            t_one.append(seconds_per_step(RUNS, args.steps, args.warmup, args.threads))
            futures = [pool.submit(seconds_per_step, h, args.steps, args.warmup, args.threads) for h in halves]
            t_two.append(max(f.result() for f in futures))
            t_single.append(seconds_per_step(RUNS[:1], args.steps, args.warmup, args.threads))
    # a 256 x 64 x 64 product: the coupling nets' hidden layer at batch 256
    rate, flops = matmul_rate(256, 64, 64, inner=200), step_flops()
    m = len(RUNS)
    med = {
        "ensemble_step_s": statistics.median(t_one),
        "two_workers_step_s": statistics.median(t_two),
        "single_step_s": statistics.median(t_single),
    }
    med["separate_step_s"] = m * med["single_step_s"]
    med["bound_step_s"] = flops / rate / 2
    med["speedup_two_workers"] = med["ensemble_step_s"] / med["two_workers_step_s"]
    print(
        f"Toys: {m} runs of realnvp_2d (2 toys x 2 modes x 3 seeds), batch 256; torch threads={args.threads}; "
        f"{args.repeats} repeats x {args.steps} steps after {args.warmup} warm-up steps, medians; "
        f"matrix product here {rate / 1e9:.1f} GFLOP/s, {flops / 1e6:.0f} MFLOP per step of the {m} runs"
    )
    for label, key in (
        ("one ensemble of 12, one process", "ensemble_step_s"),
        ("two ensembles of 6, two processes", "two_workers_step_s"),
        ("12 runs alone, one after the other", "separate_step_s"),
        ("compute bound on 2 cores", "bound_step_s"),
    ):
        print(
            f"  {label:36s} {med[key] * 1e3:8.2f} ms/step   -> {PAPER_STEPS:,} steps: "
            f"{med[key] * PAPER_STEPS / 60:6.1f} min"
        )
    print(
        f"  two workers / one ensemble: {med['speedup_two_workers']:.2f}x faster; "
        f"two workers / bound: {med['two_workers_step_s'] / med['bound_step_s']:.1f}x"
    )
    if args.levers:
        lev = compile_timings(halves[0], steps=args.steps // 4, repeats=args.repeats)
        med.update({f"levers_{k}": v for k, v in lev.items()})
        print(
            f"  torch.compile, one worker's ensemble of {len(halves[0])}: eager {lev['eager_s'] * 1e3:.2f} ms, "
            f"compiled {lev['compiled_s'] * 1e3:.2f} ms/step (speed-up {lev['eager_s'] / lev['compiled_s']:.2f}x, "
            f"compiled in {lev['compile_s']:.0f} s; loss gap {lev['loss_gap']:.1e})"
        )
    return med


if __name__ == "__main__":
    main()
