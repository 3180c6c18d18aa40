"""The reproduction report: the paper's claims beside the book's stored results, with verdicts.

Everything here reads ``book/results/*.csv`` (through :func:`load_results`, which fails
loudly when a file lacks a column the report needs) and computes; no number is typed in.

Verdicts compare paired differences ``mollification - vanilla`` over seeds (same seed =
same initialisation and batch order, so the difference is the mollification alone):

* ``not yet run here``: no paired seeds;
* ``within seed noise``: the mean difference is smaller than the standard deviation of the
  differences (or, with one seed, cannot be judged: ``one seed only``);
* ``not reproduced``: ours favours the other side;
* ``reproduced``: same side as the paper and at least half the paper's effect;
* ``reproduced with a smaller effect``: same side, less than half the paper's effect.

Claims that something does *not* help (the paper's Sec. 2.2: "a small constant amount of
noise does not provide any particular benefits") get :func:`no_benefit_verdict`.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from .runtime import results_source

__all__ = ["REQUIRED_COLUMNS", "PRODUCED_BY", "load_results", "paired_differences", "verdict", "no_benefit_verdict"]

#: The columns the report reads from each results file.
REQUIRED_COLUMNS = {
    "toy2d.csv": ["dataset", "mode", "seed", "mmd2", "test_loglik", "iterations", "mmd2_best_val", "best_step",
                  "val_nll_best", "test_loglik_best_val", "commit", "date"],
    "uci.csv": ["dataset", "flow", "mode", "seed", "test_loglik", "test_loglik_best_val", "best_epoch", "epochs",
                "commit", "date"],
    "uci_curves.csv": ["dataset", "flow", "mode", "seed", "epoch", "val_loglik"],
    "overhead.csv": ["train_step_s", "mollifier_call_s", "overhead_ratio", "commit", "date"],
    "indm_toy2d.csv": ["dataset", "model", "flow", "seed", "steps", "mmd2", "test_loglik_bound",
                       "test_loglik_bound_mc_se", "train_seconds", "commit", "date"],
}  # fmt: skip

#: The command that (re)produces each results file.
PRODUCED_BY = {
    "toy2d.csv": "python -m molli_utils.experiments toy2d",
    "uci.csv": "python -m molli_utils.experiments uci --all; then uci --all --modes constant",
    "uci_curves.csv": "python -m molli_utils.experiments uci --all; then uci --all --modes constant",
    "overhead.csv": "make bench (python -m benchmarks.bench_overhead --out book/results/overhead.csv)",
    "indm_toy2d.csv": "python -m molli_utils.experiments indm",
}


def load_results(name: str, folder: str = "results", required: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Read results file ``name`` and check it has the columns the report needs.

    Raises ``ValueError`` naming the missing columns and the command that rebuilds the
    file (an old file from before a column was added, or a hand-edited one).
    """
    required = list(required if required is not None else REQUIRED_COLUMNS.get(name, []))
    source = results_source(name, folder)
    frame = pd.read_csv(source)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"results file {source} lacks the column(s) {missing} that the report needs "
                         f"(it has {list(frame.columns)}); re-create it with: "
                         f"{PRODUCED_BY.get(name, 'the command that produced it')}")  # fmt: skip
    return frame


def paired_differences(
    frame: pd.DataFrame, keys: Sequence[str], metric: str, *, treated: str = "mollification", control: str = "vanilla"
) -> pd.Series:
    """``metric[treated] - metric[control]`` for each (keys..., seed) present in both modes."""
    wide = frame.pivot_table(index=[*keys, "seed"], columns="mode", values=metric, aggfunc="first")
    if treated not in wide or control not in wide:
        return pd.Series(dtype=float, name=metric)
    return (wide[treated] - wide[control]).dropna().rename(metric)


def verdict(diffs: Sequence[float], paper_diff: float, *, higher_is_better: bool = True) -> str:
    """A verdict for one claim from our per-seed paired differences and the paper's difference.

    ``higher_is_better``: whether a positive difference favours ``treated`` (log-likelihood:
    yes; MMD^2 or FID: no, pass differences of the metric and ``False``).
    """
    d = np.asarray([x for x in diffs if math.isfinite(x)], dtype=float)
    if d.size == 0:
        return "not yet run here"
    sign = 1.0 if higher_is_better else -1.0
    ours, paper = sign * d.mean(), sign * paper_diff
    if d.size == 1:
        return "one seed only"
    if abs(d.mean()) < d.std(ddof=1):
        return "within seed noise"
    if ours * paper <= 0:
        return "not reproduced"
    return "reproduced" if abs(ours) >= 0.5 * abs(paper) else "reproduced with a smaller effect"


def no_benefit_verdict(diffs: Sequence[float], *, higher_is_better: bool = True) -> str:
    """A verdict for a claim that ``treated`` brings *no benefit* over ``control``.

    ``diffs`` are per-seed paired differences ``treated - control``. The claim is
    ``reproduced`` when the mean difference is within seed noise (``|mean| < sd``) or
    favours the control, and ``not reproduced`` when the treatment is better by more than
    the seed noise; ``not yet run here`` / ``one seed only`` as in :func:`verdict`.
    """
    d = np.asarray([x for x in diffs if math.isfinite(x)], dtype=float)
    if d.size == 0:
        return "not yet run here"
    if d.size == 1:
        return "one seed only"
    sign = 1.0 if higher_is_better else -1.0
    if abs(d.mean()) < d.std(ddof=1) or sign * d.mean() < 0:
        return "reproduced"
    return "not reproduced"
