"""Experiments that produce the book's results files.

Usage::

    python -m molli_utils.experiments toy2d                 # paper settings: 12 runs x 20k steps
    python -m molli_utils.experiments toy2d --steps 2000    # shorter
    python -m molli_utils.experiments uci --all             # Table 4: 3 data sets x 3 flows x 2 modes x 4 seeds
    python -m molli_utils.experiments uci --dataset redwine --flow maf --mode mollification --seed 1
    python -m molli_utils.experiments --help

``toy2d`` trains REAL-NVP on the paper's two 2D toys (Sec. 4.1, Appendix D.3.1:
5 coupling layers, 2 x 64 hidden units, Adam 5e-4, batch 256, 20k steps),
vanilla and with Gaussian mollification (sigmoid schedule over the whole run),
for each seed. All runs train together as one vectorised
:class:`~molli_utils.models.FlowEnsemble` (the same updates as separate runs,
~6.5 min on one CPU thread). A vanilla run and a mollified run with the same
seed share their initial parameters and batch order, so their difference is
the mollification alone. Results go to ``book/results/toy2d.csv``.

``uci`` trains the paper's UCI flows (Sec. 4.3, Appendix D.4; see
:mod:`molli_utils.uci_runs`) and appends one row per run to ``book/results/uci.csv``
and its learning curve to ``book/results/uci_curves.csv``; runs already in the
CSV are skipped, so an interrupted table resumes.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import pathlib
import subprocess
import time
from typing import Sequence

import torch

from .data import load_toy2d
from .metrics import mmd2
from .models import FlowEnsemble, realnvp_2d, train_ensemble
from .mollifiers import Mollifier

TOY2D_DATASETS = ("mixture_of_gaussians", "von_mises")
MODES = ("vanilla", "mollification")
RESULTS = pathlib.Path(__file__).resolve().parents[1] / "book" / "results"


def git_commit(root: pathlib.Path = RESULTS.parents[1]) -> str:
    """The current commit of the checkout (short hash), or ``unknown`` outside git."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _score(member, test: torch.Tensor, n_samples: int, seed: int) -> dict:
    """MMD^2 (RBF, lengthscale 1, variance 1) between ``n_samples`` model samples and ``test``."""
    with torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(seed)
        x, _ = member.sample(n_samples)
    finite = torch.isfinite(x).all(1)
    value = mmd2(x[finite], test, lengthscale=1.0, variance=1.0) if int(finite.sum()) >= 2 else math.nan
    return {"mmd2": value, "nonfinite_samples": int((~finite).sum())}


def run_toy2d(
    *,
    steps: int = 20_000,
    seeds: Sequence[int] = (0, 1, 2),
    datasets: Sequence[str] = TOY2D_DATASETS,
    n_train: int = 10_000,
    n_test: int = 10_000,
    n_samples: int = 10_000,
    batch_size: int = 256,
    lr: float = 5e-4,
    progress: bool = True,
):
    """Train every (data set, mode, seed) at once and score it; returns a pandas DataFrame, one row per run.

    Columns: ``dataset, mode, seed, mmd2, test_loglik, nonfinite_steps, diverged_at,
    nonfinite_samples, iterations``. ``test_loglik`` is the mean test log-likelihood
    (nats); ``diverged_at`` the step at which a run was stopped after 20 non-finite
    losses in a row (empty if it never was).
    """
    import pandas as pd

    runs = [(d, mode, s) for d in datasets for mode in MODES for s in seeds]
    splits = {d: load_toy2d(d, n_train=n_train, n_test=n_test, seed=0) for d in datasets}
    ensemble = FlowEnsemble([realnvp_2d(seed=s) for *_, s in runs])
    mollifiers = [
        None if mode == "vanilla" else Mollifier("gaussian", horizon=steps, generator=torch.Generator().manual_seed(1000 + s))
        for _, mode, s in runs
    ]
    result = train_ensemble(
        ensemble, [splits[d][0] for d, *_ in runs], steps=steps, batch_size=batch_size, lr=lr,
        seeds=[s for *_, s in runs], mollifiers=mollifiers, progress=progress,
    )
    with torch.inference_mode():
        test_ll = ensemble.log_prob(torch.stack([splits[d][1] for d, *_ in runs])).mean(1)
    rows = []
    for i, ((d, mode, s), member) in enumerate(zip(runs, ensemble.members())):
        rows.append({"dataset": d, "mode": mode, "seed": s, **_score(member, splits[d][1], n_samples, seed=s),
                     "test_loglik": float(test_ll[i]), "nonfinite_steps": result.num_nonfinite[i],
                     "diverged_at": result.diverged_at[i], "iterations": steps})
    frame = pd.DataFrame(rows)
    frame.attrs["train_seconds"] = result.elapsed
    return frame


def _toy2d_command(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    frame = run_toy2d(steps=args.steps, seeds=args.seeds, n_train=args.n_train, n_test=args.n_test,
                      n_samples=args.n_samples, progress=not args.no_progress)
    frame["commit"] = git_commit()
    frame["date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    frame["wall_seconds_all_runs"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(frame.to_string(index=False))
    print(f"wrote {args.out} ({len(frame)} runs, {frame['wall_seconds_all_runs'].iloc[0]:.0f} s, "
          f"training {frame.attrs['train_seconds']:.0f} s)")


def _uci_command(args: argparse.Namespace) -> None:
    from .uci_runs import grid, run_many

    if args.all:
        runs = grid(modes=args.modes or ("vanilla", "mollification"), epochs=args.epochs)
    else:
        missing = [n for n in ("dataset", "flow", "mode", "seed") if getattr(args, n) is None]
        if missing:
            raise SystemExit(f"error: give --all, or all of --dataset --flow --mode --seed (missing: {missing})")
        runs = grid([args.dataset], [args.flow], [args.mode], [args.seed], epochs=args.epochs)
    curves = args.out.with_name(args.out.stem + "_curves.csv")
    run_many(runs, args.out, curves=curves, workers=args.workers, root=args.root, commit=git_commit())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m molli_utils.experiments", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    toy = sub.add_parser("toy2d", help="the 2D toys, vanilla vs mollified (paper Sec. 4.1)")
    toy.add_argument("--steps", type=int, default=20_000, help="training iterations (paper: 20000)")
    toy.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    toy.add_argument("--n-train", type=int, default=10_000, help="training points (paper: 10000)")
    toy.add_argument("--n-test", type=int, default=10_000, help="test points (paper: 10000)")
    toy.add_argument("--n-samples", type=int, default=10_000, help="model samples for MMD^2 (paper: 10000)")
    toy.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these tiny models)")
    toy.add_argument("--out", type=pathlib.Path, default=RESULTS / "toy2d.csv")
    toy.add_argument("--no-progress", action="store_true")
    toy.set_defaults(func=_toy2d_command)
    uci = sub.add_parser("uci", help="UCI density estimation with MAF / REAL-NVP / GLOW (paper Table 4)")
    uci.add_argument("--all", action="store_true", help="the paper's grid on the offline data sets, seeds 1-4")
    uci.add_argument("--dataset", choices=("redwine", "whitewine", "parkinsons", "miniboone"))
    uci.add_argument("--flow", choices=("maf", "realnvp", "glow"))
    uci.add_argument("--mode", choices=("vanilla", "mollification", "constant"))
    uci.add_argument("--modes", nargs="+", choices=("vanilla", "mollification", "constant"),
                     help="with --all: the modes to run (default: vanilla mollification)")
    uci.add_argument("--seed", type=int)
    uci.add_argument("--epochs", type=int, default=150, help="paper: 150")
    uci.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    uci.add_argument("--root", type=pathlib.Path, default=None, help="folder with NAME/data.npy (default: $MOLLI_DATA/uci)")
    uci.add_argument("--out", type=pathlib.Path, default=RESULTS / "uci.csv")
    uci.set_defaults(func=_uci_command)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
