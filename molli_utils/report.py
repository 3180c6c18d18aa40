"""The reproduction report: the paper's claims beside the book's stored results, with verdicts.

Everything here reads the book's stored results (through
:func:`molli_utils.experiments.results.load`, which fails loudly when a file lacks a column the
report needs) and computes; no number is typed in.

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

__all__ = ["paired_differences", "verdict", "no_benefit_verdict"]


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
