"""The reproduction report: the paper's claims beside the book's stored results, with verdicts.

Everything here reads the book's stored results (through
:func:`molli_utils.experiments.results.load`, which fails loudly when a file lacks a column the
report needs) and computes; no number is typed in.

Verdicts compare paired differences ``mollification - vanilla`` over seeds (same seed =
same initialisation and batch order, so the difference is the mollification alone). One rule,
:func:`verdict`, judges every claim of the book, and its names say where our effect lies
relative to the paper's, so that they read the same way for every claim:

* :data:`SIMILAR` ``paper's direction, similar size``: same side as the paper, at least half
  the paper's effect;
* :data:`SMALLER` ``paper's direction, smaller``: same side, less than half the paper's effect;
* :data:`NOISE` ``within seed noise``: the mean difference is smaller than the standard
  deviation of the differences, ``|mean| < sd``;
* :data:`OPPOSITE` ``opposite to the paper``: beyond seed noise, on the other side;
* :data:`ONE_SEED` and :data:`NOT_RUN`: one paired seed cannot be judged, none is not run.

Where the paper gives a direction but no size on our scale (a measure it did not report),
``verdict(..., sized=False)`` says :data:`DIRECTION` ``paper's direction`` in place of the two
sized names.

A claim that something brings *no benefit* (the paper's Sec. 2.2: "a small constant amount
of noise does not provide any particular benefits") has the paper's difference ``0``: its
direction is "no better than the control", so a treatment that is worse beyond seed noise is
in the paper's direction, one that is better is opposite to it, and within seed noise is
what the paper says. :func:`agrees` tells which verdicts agree with a claim.
"""

from __future__ import annotations

import math
from typing import Sequence

import textwrap

import numpy as np
import pandas as pd

__all__ = [
    "say",
    "PAGE_WIDTH",
    "paired_differences",
    "verdict",
    "agrees",
    "VERDICTS",
    "SIMILAR",
    "SMALLER",
    "NOISE",
    "OPPOSITE",
    "DIRECTION",
    "ONE_SEED",
    "NOT_RUN",
    "UCI_VIEWS",
    "uci_table",
    "uci_verdicts",
    "CODE_CHECK_EPOCHS",
    "uci_code_check",
]


#: Characters of printed output that fit the book's text column (752 px of monospace at 1280 px).
PAGE_WIDTH = 78


def say(*paragraphs: str, width: int = PAGE_WIDTH, indent: str = "    ") -> None:
    """Print each paragraph wrapped to ``width`` characters, continuation lines indented.

    A chapter's printed results must fit the built page (``tools/check_site.py`` fails a line
    that runs out of the text column); ``say`` is ``print`` that keeps them inside. A newline
    inside a paragraph starts a new line (the explicit break is kept).
    """
    if width < 20:
        raise ValueError(f"width={width} is too narrow to wrap text; use at least 20 characters")
    for paragraph in paragraphs:
        for line in str(paragraph).split("\n"):
            print(
                textwrap.fill(line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)
                if line.strip()
                else ""
            )


def paired_differences(
    frame: pd.DataFrame, keys: Sequence[str], metric: str, *, treated: str = "mollification", control: str = "vanilla"
) -> pd.Series:
    """``metric[treated] - metric[control]`` for each (keys..., seed) present in both modes."""
    wide = frame.pivot_table(index=[*keys, "seed"], columns="mode", values=metric, aggfunc="first")
    if treated not in wide or control not in wide:
        return pd.Series(dtype=float, name=metric)
    return (wide[treated] - wide[control]).dropna().rename(metric)


#: The verdicts of :func:`verdict`, from the strongest agreement with the paper to none.
SIMILAR = "paper's direction, similar size"
SMALLER = "paper's direction, smaller"
NOISE = "within seed noise"
OPPOSITE = "opposite to the paper"
DIRECTION = "paper's direction"
ONE_SEED = "one seed only"
NOT_RUN = "not run here"
VERDICTS = (SIMILAR, SMALLER, DIRECTION, NOISE, OPPOSITE, ONE_SEED, NOT_RUN)


def verdict(diffs: Sequence[float], paper_diff: float, *, higher_is_better: bool = True, sized: bool = True) -> str:
    """The verdict on one claim from our per-seed paired differences and the paper's difference.

    ``diffs``: ``metric(treated) - metric(control)`` per seed (non-finite values are dropped);
    ``paper_diff``: the paper's difference of the same quantity, ``0`` for a claim of *no
    benefit*; ``higher_is_better``: whether a positive difference favours the treatment
    (log-likelihood: yes; MMD², log FD: no); ``sized=False``: only the sign of ``paper_diff``
    counts (a measure the paper did not report). Returns one of :data:`VERDICTS` (module
    docstring). Raises ``ValueError`` for a non-finite ``paper_diff``.
    """
    if not math.isfinite(paper_diff):
        raise ValueError(
            f"paper_diff={paper_diff!r}: the paper's difference must be a finite number (0 for a claim of no benefit)"
        )
    d = np.asarray([x for x in diffs if math.isfinite(x)], dtype=float)
    if d.size == 0:
        return NOT_RUN
    if d.size == 1:
        return ONE_SEED
    if abs(d.mean()) < d.std(ddof=1):
        return NOISE
    sign = 1.0 if higher_is_better else -1.0
    ours, paper = sign * d.mean(), sign * paper_diff
    if paper == 0:  # "no benefit": the treatment better beyond noise contradicts it
        return OPPOSITE if ours > 0 else SIMILAR
    if ours * paper < 0:
        return OPPOSITE
    if not sized:
        return DIRECTION
    return SIMILAR if abs(ours) >= 0.5 * abs(paper) else SMALLER


def agrees(label: str, paper_diff: float) -> bool:
    """Whether verdict ``label`` agrees with the claim: the paper's direction at a similar size, or, for
    a claim of no benefit (``paper_diff == 0``), no better than the control (within noise or worse)."""
    if label not in VERDICTS:
        raise ValueError(f"{label!r} is not a verdict; expected one of {VERDICTS}")
    return label in (SIMILAR, DIRECTION) or (paper_diff == 0 and label == NOISE)


# --- the UCI table (Table 4), per variant of the flows ------------------------------------------------------------

#: The two views of a UCI run: the model at the last epoch (the paper's protocol) and at the best validation epoch.
UCI_VIEWS = {"final": "test_loglik", "early-stopped": "test_loglik_best_val"}


def _mean_sd(values: pd.Series) -> str:
    v = values.dropna()
    if v.empty:
        return "—"
    return f"{v.mean():.2f} ± {v.std():.2f}" if len(v) > 1 else f"{v.mean():.2f} (1 seed)"


def uci_table(
    frame: pd.DataFrame, paper: dict, *, variant: str, modes: Sequence[str] = ("vanilla", "mollification", "constant")
) -> pd.DataFrame:
    """Table 4 for one ``variant``: per (data set, flow) of ``paper`` (:data:`molli_utils.paper.UCI_TEST_LOGLIK`),
    the paper's mean ± sd and ours (mean ± sd over seeds, final and early-stopped) for each mode; cells
    without runs say so ("—")."""
    rows = []
    runs = frame[frame["variant"] == variant]
    for (dataset, flow), numbers in paper.items():
        sub = runs[(runs["dataset"] == dataset) & (runs["flow"] == flow)]
        row: dict = {"data set": dataset, "flow": flow}
        for mode in modes:
            if mode in numbers:
                row[f"paper {mode}"] = f"{numbers[mode][0]:.2f} ± {numbers[mode][1]:.2f}"
            ours = sub[sub["mode"] == mode]
            for view, column in UCI_VIEWS.items():
                row[f"ours {mode}, {view}"] = _mean_sd(ours[column])
        rows.append(row)
    return pd.DataFrame(rows).set_index(["data set", "flow"])


def uci_verdicts(frame: pd.DataFrame, paper: dict, *, variant: str) -> pd.DataFrame:
    """Per (data set, flow) with runs of ``variant``: the paired differences mollification - vanilla (mean,
    sd, seeds where mollification is better), the paper's difference and the :func:`verdict`, for the final
    and the early-stopped models; and constant - vanilla (final), judged as a claim of no benefit (the paper's
    "a small constant noise does not help": :func:`verdict` with the paper's difference 0). One row per cell and view."""
    rows = []
    runs = frame[frame["variant"] == variant]
    for (dataset, flow), numbers in paper.items():
        sub = runs[(runs["dataset"] == dataset) & (runs["flow"] == flow)]
        if sub.empty:
            continue
        paper_diff = numbers["mollification"][0] - numbers["vanilla"][0]
        for view, column in UCI_VIEWS.items():
            for treated, label in (("mollification", "mollification - vanilla"), ("constant", "constant - vanilla")):
                d = paired_differences(sub, ["dataset", "flow"], column, treated=treated)
                if treated == "constant" and view != "final":
                    continue
                rows.append(
                    {
                        "data set": dataset,
                        "flow": flow,
                        "view": view,
                        "comparison": label,
                        "seeds": len(d),
                        "better on": f"{int((d > 0).sum())}/{len(d)}",
                        "mean": d.mean() if len(d) else math.nan,
                        "sd": d.std() if len(d) > 1 else math.nan,
                        "paper": paper_diff if treated == "mollification" else 0.0,
                        "verdict": verdict(d.tolist(), paper_diff if treated == "mollification" else 0.0),
                    }
                )
    return pd.DataFrame(rows)


#: Epochs at which the book's official variant is compared with the paper's own code (``tools/official_uci.py``).
CODE_CHECK_EPOCHS = (10, 40, 100, 150)


def uci_code_check(
    code: pd.DataFrame,
    curves: pd.DataFrame,
    *,
    dataset: str = "redwine",
    mode: str = "vanilla",
    epochs: Sequence[int] = CODE_CHECK_EPOCHS,
    slack: float = 0.3,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """The official variant's test log-likelihood curve against the paper's own code, per flow and epoch.

    ``code`` is ``uci_official_code.csv`` (``tools/official_uci.py``), ``curves`` is ``uci_curves.csv.gz``.
    Columns: the mean over seeds of each (``code``, ``ours``), the seeds of each, ``diff = ours - code``, its
    standard error ``se = sqrt(var_code / n_code + var_ours / n_ours)``, the two-sided p-value of Welch's
    t-test (``p``), and ``agrees``: ``|diff| <= slack`` nats, or ``p >= alpha / k`` for the ``k`` rows
    compared (Bonferroni: one check over all flows and epochs, so that a single chance departure among
    the twelve does not read as a difference). With a few seeds the standard error is itself uncertain,
    which the t-distribution accounts for.
    """
    from scipy import stats

    ours = curves[(curves["variant"] == "official") & (curves["mode"] == mode) & (curves["dataset"] == dataset)]
    theirs = code[(code["mode"] == mode) & (code["dataset"] == dataset)]
    rows = []
    for flow in sorted(set(theirs["flow"]) & set(ours["flow"]), key=["maf", "realnvp", "glow"].index):
        for epoch in epochs:
            a = theirs[(theirs["flow"] == flow) & (theirs["epoch"] == epoch)]["test_loglik"].dropna()
            b = ours[(ours["flow"] == flow) & (ours["epoch"] == epoch)]["test_loglik"].dropna()
            enough = len(a) > 1 and len(b) > 1
            se = math.sqrt(a.var() / len(a) + b.var() / len(b)) if enough else math.nan
            p = float(stats.ttest_ind(b, a, equal_var=False).pvalue) if enough else math.nan
            rows.append(
                {
                    "flow": flow,
                    "epoch": epoch,
                    "code": a.mean(),
                    "ours": b.mean(),
                    "n_code": len(a),
                    "n_ours": len(b),
                    "diff": b.mean() - a.mean(),
                    "se": se,
                    "p": p,
                }
            )
    table = pd.DataFrame(rows)
    if not table.empty:
        table["agrees"] = (table["diff"].abs() <= slack) | (table["p"] >= alpha / len(table))
    return table
