"""The paper's UCI density-estimation experiment (Sec. 4.3, Table 4, Appendix D.4), run by the book.

One run = (data set, flow, mode, seed): :func:`run_uci` trains a :func:`~molli_utils.flows.tabular_flow`
with :func:`~molli_utils.training.train` (Adam, lr 1e-4, weight decay 1e-6 as in the
paper's code, batch 100, 150 epochs) and returns one results row:

* ``test_loglik``: mean test log-likelihood (nats) of the model at the end of training
  (the paper's number);
* ``test_loglik_best_val`` / ``best_epoch``: the same for the model of the epoch with the
  best validation log-likelihood (early stopping, evaluated every epoch);
* provenance: epochs, steps, times, non-finite steps, commit, date.

Modes: ``vanilla``; ``mollification`` (Gaussian, sigmoid schedule over the whole run,
the paper's UCI recipe); ``constant`` (a fixed noise level :data:`CONSTANT_NOISE` for the
whole run: the baseline the paper says does not help).

:func:`run_many` runs a list of configurations in parallel processes (one torch thread
each) and appends each row to a CSV as soon as it is done, so an interrupted table
resumes where it stopped (rows already in the CSV are skipped). The command line is
``python -m molli_utils.experiments uci ...``.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import csv
import datetime as dt
import itertools
import math
import multiprocessing as mp
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch

from .data.uci import load_uci
from .flows import FLOWS, tabular_flow
from .mollifiers import Mollifier
from .runtime import append_csv_rows
from .schedules import constant_schedule
from .training import DivergenceError, TrainConfig, train

__all__ = ["UCI_MODES", "UCI_DATASETS", "CONSTANT_NOISE", "UCIRun", "run_uci", "grid", "run_many", "COLUMNS"]

UCI_DATASETS = ("redwine", "whitewine", "parkinsons")  # the ones runnable offline (miniboone needs a download)
UCI_MODES = ("vanilla", "mollification", "constant")
CONSTANT_NOISE = 0.01  # noise variance of the constant baseline: noise std 0.1 on standardised data
PAPER_SEEDS = (1, 2, 3, 4)  # the paper's scripts use seeds 1-4

COLUMNS = [
    "dataset", "flow", "mode", "seed", "test_loglik", "test_loglik_best_val", "best_epoch", "val_loglik",
    "val_loglik_best", "nonfinite_steps", "diverged_at", "epochs", "steps", "hidden", "train_seconds",
    "eval_seconds", "commit", "date",
]  # fmt: skip
CURVE_COLUMNS = ["dataset", "flow", "mode", "seed", "epoch", "train_loss", "val_loglik"]


@dataclass(frozen=True)
class UCIRun:
    """One configuration of the experiment; the defaults are the paper's settings."""

    dataset: str
    flow: str
    mode: str
    seed: int
    epochs: int = 150
    batch_size: int = 100
    lr: float = 1e-4
    weight_decay: float = 1e-6
    hidden: int = 512
    layers: int = 5

    def __post_init__(self) -> None:
        for name, value, valid in (("flow", self.flow, FLOWS), ("mode", self.mode, UCI_MODES)):
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; choose one of {list(valid)}")

    @property
    def key(self) -> tuple:
        return (self.dataset, self.flow, self.mode, self.seed, self.epochs)


def _mollifier(mode: str, horizon: int, seed: int) -> Optional[Mollifier]:
    gen = torch.Generator().manual_seed(10_000 + seed)
    if mode == "mollification":
        return Mollifier("gaussian", horizon=horizon, schedule="sigmoid", generator=gen)
    if mode == "constant":
        return Mollifier("gaussian", horizon=horizon, schedule=constant_schedule,
                         schedule_kwargs={"level": CONSTANT_NOISE}, generator=gen)  # fmt: skip
    return None


def mean_loglik(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 10_000) -> float:
    """Mean log-likelihood (nats) of the rows of ``x`` under ``model`` in eval mode (no gradients)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return float(torch.cat([model.log_prob(b) for b in x.split(batch_size)]).double().mean())
    finally:
        model.train(was_training)


def run_uci(
    run: UCIRun,
    *,
    root: Union[str, Path, None] = None,
    progress: bool = False,
    checkpoint_dir: Union[str, Path, None] = None,
    device: Union[str, torch.device] = "cpu",
    commit: str = "",
) -> tuple[dict, list[dict]]:
    """Train one configuration; return its results row and its per-epoch learning curve."""
    data = load_uci(run.dataset, root)
    train_x, val_x, test_x = (torch.from_numpy(a) for a in (data.train, data.val, data.test))
    config = TrainConfig(batch_size=run.batch_size, lr=run.lr, epochs=run.epochs, seed=run.seed, drop_last=False,
                         log_every=None, progress=progress, desc=f"{run.dataset}/{run.flow}/{run.mode}/{run.seed}",
                         checkpoint_dir=checkpoint_dir, device=device)  # fmt: skip
    config = replace(config, log_every=config.steps_per_epoch(len(train_x)))  # one loss point per epoch
    model = tabular_flow(run.flow, data.dim, hidden=run.hidden, layers=run.layers, seed=run.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=run.lr, weight_decay=run.weight_decay)
    eval_time = [0.0]
    val_dev = val_x.to(device)

    def val_nll(m: torch.nn.Module) -> float:
        start = time.perf_counter()
        value = -mean_loglik(m, val_dev)
        eval_time[0] += time.perf_counter() - start
        return value if math.isfinite(value) else math.inf

    mollifier = _mollifier(run.mode, config.total_steps(len(train_x)), run.seed)
    row = {**{k: getattr(run, k) for k in ("dataset", "flow", "mode", "seed", "epochs", "hidden")},
           "steps": config.total_steps(len(train_x)), "commit": commit,
           "date": dt.date.today().isoformat(), "diverged_at": ""}  # fmt: skip
    start = time.perf_counter()
    try:
        result = train(model, train_x, config, mollifier=mollifier, optimizer=optimizer, metrics={"val_nll": val_nll})
    except DivergenceError as err:  # reported in the row, never silently kept
        nan = math.nan
        row.update(test_loglik=nan, test_loglik_best_val=nan, best_epoch="", val_loglik=nan, val_loglik_best=nan,
                   nonfinite_steps=err.count, diverged_at=err.step, train_seconds=time.perf_counter() - start,
                   eval_seconds=eval_time[0])  # fmt: skip
        return row, []
    train_seconds = time.perf_counter() - start - eval_time[0]
    test_dev = test_x.to(device)
    row["test_loglik"] = mean_loglik(model, test_dev)
    row["val_loglik"] = -result.final_metrics["val_nll"]
    best = _best_model(model, result.best_state)
    row["test_loglik_best_val"] = mean_loglik(best, test_dev) if best is not None else math.nan
    row["best_epoch"] = next((e["epoch"] for e in result.evals if e["step"] == result.best_step), "")
    row["val_loglik_best"] = -result.best_value
    row.update(nonfinite_steps=result.num_nonfinite, train_seconds=round(train_seconds, 3),
               eval_seconds=round(eval_time[0], 3))  # fmt: skip
    losses = dict(zip(result.history["step"], result.history["loss"]))
    curve = [{"dataset": run.dataset, "flow": run.flow, "mode": run.mode, "seed": run.seed, "epoch": e["epoch"],
              "train_loss": losses.get(e["step"], math.nan), "val_loglik": -e["val_nll"]} for e in result.evals]  # fmt: skip
    return row, curve


def _best_model(model: torch.nn.Module, state: Optional[dict]) -> Optional[torch.nn.Module]:
    if state is None:
        return None
    best = copy.deepcopy(model)
    best.load_state_dict(state)
    return best


def grid(
    datasets: Sequence[str] = UCI_DATASETS,
    flows: Sequence[str] = FLOWS,
    modes: Sequence[str] = ("vanilla", "mollification"),
    seeds: Sequence[int] = PAPER_SEEDS,
    **settings,
) -> list[UCIRun]:
    """All combinations, seed-major (every configuration's first seed first), so a partial table is balanced."""
    return [UCIRun(d, f, m, s, **settings) for s, d, f, m in itertools.product(seeds, datasets, flows, modes)]


def _done_keys(csv_path: Path) -> set[tuple]:
    if not csv_path.exists():
        return set()
    with open(csv_path, newline="") as f:
        return {(r["dataset"], r["flow"], r["mode"], int(r["seed"]), int(r["epochs"])) for r in csv.DictReader(f)}


def _worker(run: UCIRun, root, commit: str) -> tuple[dict, list[dict]]:
    torch.set_num_threads(1)
    return run_uci(run, root=root, commit=commit)


def run_many(
    runs: Sequence[UCIRun],
    out: Union[str, Path],
    *,
    curves: Union[str, Path, None] = None,
    workers: Optional[int] = None,
    root: Union[str, Path, None] = None,
    commit: str = "",
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Run ``runs`` not yet in ``out`` on ``workers`` processes (default: all cores); append rows as they finish."""
    out = Path(out)
    done = _done_keys(out)
    todo = [r for r in runs if r.key not in done]
    log(f"{len(runs) - len(todo)} of {len(runs)} runs already in {out}; running {len(todo)}")
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    rows: list[dict] = []
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_worker, r, root, commit): r for r in todo}
        for i, fut in enumerate(cf.as_completed(futures), 1):
            row, curve = fut.result()
            append_csv_rows(out, [row], COLUMNS)
            if curves is not None and curve:
                append_csv_rows(curves, curve, CURVE_COLUMNS)
            rows.append(row)
            log(f"[{i}/{len(todo)}, {time.perf_counter() - start:.0f} s] {row['dataset']}/{row['flow']}/{row['mode']}"
                f"/seed {row['seed']}: test LL {row['test_loglik']:.3f} (best-val epoch {row['best_epoch']}: "
                f"{row['test_loglik_best_val']:.3f}), {row['train_seconds']:.0f} s")  # fmt: skip
    log(f"{len(todo)} runs in {time.perf_counter() - start:.0f} s wall on {workers} processes")
    return rows


