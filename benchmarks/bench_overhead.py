"""Per-step overhead of the one line, ``x = mollifier(x, step)``, against a flow's training step.

Model: the book's UCI MAF, ``molli_utils.models.tabular.tabular_flow("maf", 11)`` (5 MADE blocks
from normflows with two hidden layers of 512 tanh units, batch norm, order reversal), on
11 inputs (the wine data's width), batch 100, Adam: the paper's UCI setting (Appendix D.4).

Run:  make bench      (or: python -m benchmarks.bench_overhead --help)

Prints medians over repeats, measured in one run, and their ratio. The machine
is noisy: read the medians, not single timings.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from molli_utils import Mollifier
from molli_utils.models.tabular import tabular_flow


def _time_steps(fn, n_steps: int) -> float:
    t0 = time.perf_counter()
    for step in range(n_steps):
        fn(step)
    return (time.perf_counter() - t0) / n_steps


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=15, help="timings per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for small nets on 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", default=None, help="also write the medians as one CSV row (e.g. molli_utils/results/overhead.csv)"
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dim, batch = 11, 100
    model = tabular_flow("maf", dim, seed=args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    data = torch.randn(batch, dim)
    horizon = args.steps * args.repeats * 4
    mollifier = Mollifier("gaussian", horizon=horizon, generator=torch.Generator().manual_seed(args.seed))

    def train_step(x: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss = model.forward_kld(x)
        loss.backward()
        opt.step()

    def vanilla(step: int) -> None:
        train_step(data)

    def mollified(step: int) -> None:
        train_step(mollifier(data, step))

    def one_line(step: int) -> None:
        mollifier(data, step)

    _time_steps(mollified, 10)  # warm-up
    t_train, t_moll_train, t_line = [], [], []
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all three alike
        t_train.append(_time_steps(vanilla, args.steps))
        t_moll_train.append(_time_steps(mollified, args.steps))
        t_line.append(_time_steps(one_line, args.steps * 10))

    med = {
        k: statistics.median(v)
        for k, v in {
            "train_step_s": t_train,
            "mollified_train_step_s": t_moll_train,
            "mollifier_call_s": t_line,
        }.items()
    }
    med["overhead_ratio"] = med["mollifier_call_s"] / med["train_step_s"]
    med["end_to_end_ratio"] = med["mollified_train_step_s"] / med["train_step_s"]
    print(
        f"MAF (tabular_flow): 5 blocks, {dim} inputs, 512 hidden, batch {batch}; torch threads={args.threads}; "
        f"{args.repeats} repeats x {args.steps} steps, medians"
    )
    print(f"  training step (vanilla)          {med['train_step_s'] * 1e3:8.3f} ms")
    print(f"  training step (with mollifier)   {med['mollified_train_step_s'] * 1e3:8.3f} ms")
    print(f"  mollifier(x, step) alone         {med['mollifier_call_s'] * 1e6:8.1f} us")
    print(f"  overhead = mollifier / step      {100 * med['overhead_ratio']:8.3f} %   (target <= 1 %)")
    print(f"  end-to-end ratio (noisy)         {med['end_to_end_ratio']:8.4f}")
    if args.out:
        _write_row(args.out, {**med, "steps": args.steps, "repeats": args.repeats, "threads": args.threads})
    return med


def _write_row(path: str, row: dict) -> None:
    """One CSV row with provenance (commit, date), replacing the file: the report reads it."""
    import datetime as dt
    import pathlib

    import pandas as pd

    from molli_utils.runtime import git_commit

    row = {**row, "commit": git_commit(), "date": dt.date.today().isoformat()}
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(path, index=False)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
