"""Experiments that produce the book's results files.

Usage::

    python -m molli_utils.experiments toy2d                 # paper settings: 18 runs x 20k steps
    python -m molli_utils.experiments toy2d --steps 2000    # shorter
    python -m molli_utils.experiments toy2d --modes vanilla mollification
    python -m molli_utils.experiments uci --all             # Table 4: 3 data sets x 3 flows x 2 modes x 4 seeds
    python -m molli_utils.experiments uci --dataset redwine --flow maf --mode mollification --seed 1
    python -m molli_utils.experiments --help

``toy2d`` trains REAL-NVP on the paper's two 2D toys (Sec. 4.1, Appendix D.3.1:
5 coupling layers, 2 x 64 hidden units, Adam 5e-4, batch 256, 20k steps),
in three modes for each seed: ``vanilla``, ``mollification`` (Gaussian, sigmoid
schedule over the whole run) and ``constant`` (Gaussian noise of the fixed level
:data:`~molli_utils.uci_runs.CONSTANT_NOISE` for the whole run: the "constant noise
does not help" baseline of Sec. 2.2). All runs train together as one vectorised
:class:`~molli_utils.models.FlowEnsemble` (the same updates as separate runs; 12
members took ~7 min on one CPU thread). Runs with the same seed share their initial
parameters and batch order (and the two noised modes their noise generator's seed),
so their differences are the mollification alone. Every run is scored twice: at the
last step, and at the step with the lowest mean NLL on a held-out validation set
(early stopping; :func:`toy2d_validation`, evaluated every ``steps // 20`` steps).
Results go to ``book/results/toy2d.csv``.

``indm`` trains a diffusion model in a flow's latent space (INDM, :mod:`molli_utils.indm`)
and, for contrast, the same diffusion model on the data (identity flow) on the two toys,
with the toy runs' budget (Adam 5e-4, batch 256, 20k steps), data split and MMD^2
protocol, and appends one row per run to ``book/results/indm_toy2d.csv`` (finished runs
are skipped). Its log-likelihood is the *bound* of :class:`~molli_utils.indm.INDM`.

``uci`` trains the paper's UCI flows (Sec. 4.3, Appendix D.4; see
:mod:`molli_utils.uci_runs`) and appends one row per run to ``book/results/uci.csv``
and its learning curve to ``book/results/uci_curves.csv``; runs already in the
CSV are skipped, so an interrupted table resumes.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import math
import pathlib
import time
from typing import Optional, Sequence

import numpy as np
import torch

from .data import get_toy2d, load_toy2d
from .indm import INDM, make_indm
from .metrics import mmd2
from .models import FlowEnsemble, realnvp_2d, train_ensemble
from .mollifiers import Mollifier
from .runtime import git_commit
from .schedules import constant_schedule
from .uci_runs import CONSTANT_NOISE

TOY2D_DATASETS = ("mixture_of_gaussians", "von_mises")
MODES = ("vanilla", "mollification")  # the paper's two modes (benchmarks/bench_toy2d.py times these)
TOY2D_MODES = (*MODES, "constant")  # the toy2d command's modes: the paper's and the constant-noise baseline
# on request (--modes half): the sigmoid schedule over the first half of the run, then clean data
# (the paper's recipe for images)
TOY2D_ALL_MODES = (*TOY2D_MODES, "half")
RESULTS = pathlib.Path(__file__).resolve().parents[1] / "book" / "results"


def _score(member, test: torch.Tensor, n_samples: int, seed: int) -> dict:
    """MMD^2 (RBF, lengthscale 1, variance 1) between ``n_samples`` model samples and ``test``."""
    with torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(seed)
        x, _ = member.sample(n_samples)
    return _mmd_of_samples(x, test)


def _mmd_of_samples(x: torch.Tensor, test: torch.Tensor) -> dict:
    """MMD^2 (RBF, lengthscale 1, variance 1) of the finite rows of ``x`` against ``test``, and how many were not finite."""
    finite = torch.isfinite(x).all(1)
    value = mmd2(x[finite], test, lengthscale=1.0, variance=1.0) if int(finite.sum()) >= 2 else math.nan
    return {"mmd2": value, "nonfinite_samples": int((~finite).sum())}


def toy2d_validation(name: str, n_val: int = 10_000, seed: int = 0) -> torch.Tensor:
    """A validation set ``[n_val, 2]`` of toy ``name``, independent of :func:`~molli_utils.data.load_toy2d`'s.

    ``load_toy2d(name, seed=seed)`` draws train and test from the first two children of
    ``numpy.random.SeedSequence(seed)``; this draws from the third, so the train and test
    sets are unchanged and the three sets are independent.
    """
    child = np.random.SeedSequence(seed).spawn(3)[2]
    gen = torch.Generator().manual_seed(int(child.generate_state(1, dtype=np.uint64)[0]))
    return get_toy2d(name).sample(n_val, gen)


def toy2d_mollifier(mode: str, steps: int, seed: int) -> Optional[Mollifier]:
    """The mollifier of one toy run: ``None`` (vanilla), the sigmoid schedule over the run or its first half, or the constant level."""
    if mode == "vanilla":
        return None
    gen = torch.Generator().manual_seed(1000 + seed)
    if mode == "mollification":
        return Mollifier("gaussian", horizon=steps, generator=gen)
    if mode == "half":
        return Mollifier("gaussian", horizon=max(1, steps // 2), generator=gen)
    if mode == "constant":
        return Mollifier("gaussian", horizon=steps, schedule=constant_schedule,
                         schedule_kwargs={"level": CONSTANT_NOISE}, generator=gen)  # fmt: skip
    raise ValueError(f"unknown mode {mode!r}; choose from {list(TOY2D_ALL_MODES)}")


class BestByValidation:
    """A ``train_ensemble`` callback: every ``every`` steps (and at step ``total``) the mean
    validation NLL of each member; keeps each member's parameters at its lowest finite value.

    ``val`` is ``[M, n, 2]`` (one validation set per member). After training, ``steps`` and
    ``nll`` (one list of M floats per evaluation) hold the curve, ``best_step[m]`` the step
    (``None`` if no value was finite) and ``best_nll[m]`` the value; :meth:`best_ensemble`
    returns a copy of the ensemble holding every member's best parameters.
    """

    def __init__(self, ensemble: FlowEnsemble, val: torch.Tensor, every: int, total: int) -> None:
        self.val, self.every, self.total = val, every, total
        self.steps: list[int] = []
        self.nll: list[list[float]] = []
        self.best_nll = [math.inf] * len(ensemble)
        self.best_step: list[Optional[int]] = [None] * len(ensemble)
        self.params = {k: v.detach().clone() for k, v in ensemble.stacked.items()}

    @torch.no_grad()
    def __call__(self, step: int, ensemble: FlowEnsemble) -> None:
        if step % self.every and step != self.total:
            return
        nll = (-ensemble.log_prob(self.val).double().mean(1)).tolist()
        self.steps.append(step)
        self.nll.append(nll)
        better = [math.isfinite(v) and v < b for v, b in zip(nll, self.best_nll)]
        if any(better):
            rows = torch.tensor(better)
            for k, v in ensemble.stacked.items():
                self.params[k][rows] = v.detach()[rows]
            for m in (m for m, b in enumerate(better) if b):
                self.best_nll[m], self.best_step[m] = nll[m], step

    @torch.no_grad()
    def best_ensemble(self, ensemble: FlowEnsemble) -> FlowEnsemble:
        best = copy.deepcopy(ensemble)
        for k, p in best.stacked.items():
            p.copy_(self.params[k])
        return best


def run_toy2d(
    *,
    steps: int = 20_000,
    seeds: Sequence[int] = (0, 1, 2),
    datasets: Sequence[str] = TOY2D_DATASETS,
    modes: Sequence[str] = TOY2D_MODES,
    n_train: int = 10_000,
    n_test: int = 10_000,
    n_val: int = 10_000,
    n_samples: int = 10_000,
    n_evals: int = 20,
    batch_size: int = 256,
    lr: float = 5e-4,
    progress: bool = True,
):
    """Train every (data set, mode, seed) at once and score it; returns a pandas DataFrame, one row per run.

    Columns: ``dataset, mode, seed, mmd2, nonfinite_samples, test_loglik, nonfinite_steps,
    diverged_at, iterations`` for the model at the last step, then ``mmd2_best_val,
    nonfinite_samples_best_val, best_step, val_nll_best, val_nll_final, test_loglik_best_val``
    for the model at the step with the lowest finite validation NLL (evaluated every
    ``max(1, steps // n_evals)`` steps and at the end). ``test_loglik`` is the mean test
    log-likelihood (nats); ``diverged_at`` the step at which a run was stopped after 20
    non-finite losses in a row (empty if it never was); ``best_step`` is empty (and the
    best-validation columns nan) if no validation NLL was finite. ``frame.attrs`` holds
    ``val_steps``, ``val_nll`` (``[evaluations][runs]``), ``noise_level`` and
    ``log_steps`` (the mollifiers' levels at the loss-log points, ``[points][runs]``) and
    ``train_seconds``.
    """
    import pandas as pd

    unknown = [m for m in modes if m not in TOY2D_ALL_MODES]
    if unknown:
        raise ValueError(f"unknown mode(s) {unknown}; choose from {list(TOY2D_ALL_MODES)}")
    runs = [(d, mode, s) for d in datasets for mode in modes for s in seeds]
    splits = {d: load_toy2d(d, n_train=n_train, n_test=n_test, seed=0) for d in datasets}
    val = {d: toy2d_validation(d, n_val=n_val, seed=0) for d in datasets}
    ensemble = FlowEnsemble([realnvp_2d(seed=s) for *_, s in runs])
    mollifiers = [toy2d_mollifier(mode, steps, s) for _, mode, s in runs]
    tracker = BestByValidation(ensemble, torch.stack([val[d] for d, *_ in runs]), max(1, steps // n_evals), steps)
    result = train_ensemble(
        ensemble, [splits[d][0] for d, *_ in runs], steps=steps, batch_size=batch_size, lr=lr,
        seeds=[s for *_, s in runs], mollifiers=mollifiers, callback=tracker, progress=progress,
    )
    best = tracker.best_ensemble(ensemble)
    test = torch.stack([splits[d][1] for d, *_ in runs])
    with torch.inference_mode():
        test_ll, test_ll_best = ensemble.log_prob(test).mean(1), best.log_prob(test).mean(1)
    rows = []
    for i, ((d, mode, s), member) in enumerate(zip(runs, ensemble.members())):
        final = _score(member, splits[d][1], n_samples, seed=s)
        step = tracker.best_step[i]
        if step is None:
            at_best = {"mmd2": math.nan, "nonfinite_samples": 0}
        elif step == steps:  # the best model is the final one: same parameters, same sampling seed
            at_best = final
        else:
            at_best = _score(best.member(i), splits[d][1], n_samples, seed=s)
        rows.append({"dataset": d, "mode": mode, "seed": s, **final,
                     "test_loglik": float(test_ll[i]), "nonfinite_steps": result.num_nonfinite[i],
                     "diverged_at": result.diverged_at[i], "iterations": steps,
                     "mmd2_best_val": at_best["mmd2"], "nonfinite_samples_best_val": at_best["nonfinite_samples"],
                     "best_step": step, "val_nll_best": tracker.best_nll[i] if step is not None else math.nan,
                     "val_nll_final": tracker.nll[-1][i],
                     "test_loglik_best_val": float(test_ll_best[i]) if step is not None else math.nan})
    frame = pd.DataFrame(rows)
    frame["best_step"] = frame["best_step"].astype("Int64")
    frame.attrs.update(train_seconds=result.elapsed, val_steps=list(tracker.steps), val_nll=tracker.nll,
                       log_steps=list(result.step), noise_level=result.noise_level.tolist())
    return frame


def _toy2d_command(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    frame = run_toy2d(steps=args.steps, seeds=args.seeds, modes=args.modes, n_train=args.n_train,
                      n_test=args.n_test, n_val=args.n_val, n_samples=args.n_samples, n_evals=args.n_evals,
                      progress=not args.no_progress)
    frame["commit"] = git_commit()
    frame["date"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    frame["wall_seconds_all_runs"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    train_seconds, wall = frame.attrs["train_seconds"], frame["wall_seconds_all_runs"].iloc[0]
    if args.append and args.out.exists():  # keep the stored runs of other (dataset, mode, seed)s
        import pandas as pd

        old = pd.read_csv(args.out)
        key = ["dataset", "mode", "seed"]
        keep = old.merge(frame[key], on=key, how="left", indicator=True)["_merge"].eq("left_only").to_numpy()
        frame = pd.concat([old[keep], frame], ignore_index=True)
    frame.to_csv(args.out, index=False)
    print(frame.to_string(index=False))
    print(f"wrote {args.out} ({len(frame)} runs, {wall:.0f} s, "
          f"training {train_seconds:.0f} s)")


#: ``indm_toy2d.csv``'s name of each flow of :func:`molli_utils.indm.make_indm`.
INDM_MODELS = {"identity": "diffusion", "realnvp": "indm"}


def run_indm_toy2d(dataset: str, flow: str, seed: int, *, steps: int = 20_000, batch_size: int = 256, lr: float = 5e-4,
                   n_train: int = 10_000, n_test: int = 10_000, n_samples: int = 10_000, sample_steps: int = 500,
                   draws: int = 128, progress: bool = False) -> tuple[dict, INDM]:  # fmt: skip
    """Train one INDM (``flow="realnvp"``) or plain diffusion model (``"identity"``) on a toy; score it.

    Same data (``load_toy2d(dataset, seed=0)``), optimiser, batch and steps as the toy
    flows of :func:`run_toy2d`; MMD^2 of ``n_samples`` samples (``sample_steps`` ancestral
    steps, seeded by ``seed``) against the test set; ``test_loglik_bound`` is minus the
    mean bound on ``-log p`` over the test set (``draws`` Monte-Carlo draws per point), a
    *lower* bound on the test log-likelihood up to its Monte-Carlo error
    ``test_loglik_bound_mc_se``. Returns the row and the trained model.
    """
    from .training import TrainConfig, train

    x_train, x_test = load_toy2d(dataset, n_train=n_train, n_test=n_test, seed=0)
    model = make_indm(flow, seed=seed)
    config = TrainConfig(batch_size=batch_size, lr=lr, steps=steps, seed=seed, progress=progress,
                         desc=f"{INDM_MODELS[flow]} {dataset} seed {seed}")  # fmt: skip
    result = train(model, x_train, config)
    model.eval()
    scores = _mmd_of_samples(model.sample(n_samples, steps=sample_steps, seed=seed), x_test)
    bound, bound_se = model.mean_nll_bound(x_test, draws=draws, seed=seed)
    row = {"dataset": dataset, "model": INDM_MODELS[flow], "flow": flow, "seed": seed, "steps": steps,
           **scores, "test_loglik_bound": -bound,
           "test_loglik_bound_mc_se": bound_se,
           "nonfinite_steps": result.num_nonfinite, "sample_steps": sample_steps, "train_seconds": round(result.elapsed, 1)}  # fmt: skip
    return row, model


def _indm_command(args: argparse.Namespace) -> None:
    from .runtime import append_csv_rows

    torch.set_num_threads(args.threads)
    done = set()
    if args.out.exists():
        import pandas as pd

        old = pd.read_csv(args.out)
        done = set(zip(old["dataset"], old["flow"], old["seed"], old["steps"]))
    for dataset in args.datasets:
        for flow in args.flows:
            for seed in args.seeds:
                if (dataset, flow, seed, args.steps) in done:
                    print(f"{dataset}/{flow}/seed {seed}: already in {args.out}, skipped")
                    continue
                row, _ = run_indm_toy2d(dataset, flow, seed, steps=args.steps, n_samples=args.n_samples,
                                        sample_steps=args.sample_steps, progress=not args.no_progress)  # fmt: skip
                row.update(commit=git_commit(), date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"))
                append_csv_rows(args.out, [row], list(row))
                print(", ".join(f"{k}={v}" for k, v in row.items()))


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
    toy = sub.add_parser("toy2d", help="the 2D toys, vanilla vs mollified vs constant noise (paper Sec. 4.1)")
    toy.add_argument("--steps", type=int, default=20_000, help="training iterations (paper: 20000)")
    toy.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    toy.add_argument("--modes", nargs="+", choices=TOY2D_ALL_MODES, default=list(TOY2D_MODES),
                     help="training modes (default: vanilla mollification constant)")
    toy.add_argument("--n-train", type=int, default=10_000, help="training points (paper: 10000)")
    toy.add_argument("--n-test", type=int, default=10_000, help="test points (paper: 10000)")
    toy.add_argument("--n-val", type=int, default=10_000, help="validation points for early stopping")
    toy.add_argument("--n-evals", type=int, default=20, help="validation evaluations over the run")
    toy.add_argument("--n-samples", type=int, default=10_000, help="model samples for MMD^2 (paper: 10000)")
    toy.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these tiny models)")
    toy.add_argument("--out", type=pathlib.Path, default=RESULTS / "toy2d.csv")
    toy.add_argument("--no-progress", action="store_true")
    toy.add_argument("--append", action="store_true",
                     help="add (or replace) these runs in --out instead of rewriting it (members train independently)")
    toy.set_defaults(func=_toy2d_command)
    indm = sub.add_parser("indm", help="diffusion in a flow's latent space (INDM) vs plain diffusion on the 2D toys")
    indm.add_argument("--datasets", nargs="+", choices=TOY2D_DATASETS, default=list(TOY2D_DATASETS))
    indm.add_argument("--flows", nargs="+", choices=list(INDM_MODELS), default=list(INDM_MODELS),
                      help="identity = a plain diffusion model; realnvp = INDM")
    indm.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    indm.add_argument("--steps", type=int, default=20_000, help="training iterations (as the toy flows: 20000)")
    indm.add_argument("--n-samples", type=int, default=10_000, help="model samples for MMD^2 (paper: 10000)")
    indm.add_argument("--sample-steps", type=int, default=500, help="ancestral sampling steps")
    indm.add_argument("--threads", type=int, default=1)
    indm.add_argument("--out", type=pathlib.Path, default=RESULTS / "indm_toy2d.csv")
    indm.add_argument("--no-progress", action="store_true")
    indm.set_defaults(func=_indm_command)
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
