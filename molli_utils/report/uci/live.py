"""Chapter 4's data, models and live runs: their tables, figures and checks, and rounding alone (the AVX2 re-runs).

``live`` arguments map a mode to the result of ``uci.run(...)`` (its ``row`` and ``curve``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ...palette import color
from .names import RED_WINE_VARIABLES

__all__ = [
    "data_table",
    "skewness",
    "skew_figure",
    "model_table",
    "live_table",
    "curves_figure",
    "live_sentences",
    "check_live",
    "rounding_changes",
    "rounding_figure",
    "rounding_sentences",
]


def data_table(data: Mapping[str, Any]) -> pd.DataFrame:
    """Per data set (``name -> load_uci(name)``): variables, rows of each split, the source file."""
    from ...data.uci import SOURCES

    return pd.DataFrame(
        {
            name: {
                "variables": d.dim,
                "train": len(d.train),
                "validation": len(d.val),
                "test": len(d.test),
                "source file": SOURCES[name].filename,
            }
            for name, d in data.items()
        }
    ).T


def skewness(x: np.ndarray) -> np.ndarray:
    """Per column of ``x``: the sample skewness (0 for a Gaussian)."""
    x = np.asarray(x, dtype=np.float64)
    return ((x - x.mean(0)) ** 3).mean(0) / x.std(0) ** 3


def skew_figure(split: Any, names: Sequence[str] = RED_WINE_VARIABLES) -> str:
    """Draw the three most skewed variables of ``split.train`` and the skewness of every variable (black: above 1);
    return a sentence with the count above 1 and the distinct values per variable."""
    import matplotlib.pyplot as plt

    skew = skewness(split.train)
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1.4, 1]})
    for col, ls in zip(np.argsort(-skew)[:3], ("-", "--", ":")):  # the data: black, one line style each
        axes[0].hist(
            split.train[:, col],
            bins=60,
            density=True,
            histtype="step",
            lw=1.5,
            ls=ls,
            color=color("data"),
            label=names[col],
        )
    axes[0].set(
        xlabel="standardised value",
        ylabel="density (log scale)",
        yscale="log",
        title="the three most skewed red-wine variables (training rows)",
    )
    axes[0].legend()
    axes[1].barh(list(names), skew, color=[color("data") if s > 1 else "0.7" for s in skew])
    axes[1].axvline(0, color="gray", lw=0.8)
    axes[1].set(xlabel="skewness (0 for a Gaussian)", title="red wine (black: skewness above 1)")
    fig.tight_layout()
    distinct = [len(np.unique(split.train[:, j])) for j in range(split.dim)]
    return (
        f"{int((skew > 1).sum())} of {split.dim} variables have skewness above 1; distinct values per "
        f"variable among {len(split.train)} rows: {distinct}"
    )


def model_table(dim: int) -> pd.DataFrame:
    """Parameters and normflows layers of the three flows of both variants, for ``dim`` variables."""
    from ...models.tabular import FLOWS as KINDS, VARIANTS as ALL, count_parameters, tabular_flow

    return pd.DataFrame(
        {
            (variant, kind): {"parameters": count_parameters(flow), "layers (normflows)": len(flow.flows)}
            for variant in ALL
            for kind in KINDS
            for flow in [tabular_flow(kind, dim, variant=variant, seed=0)]
        }
    ).T


# --- the live runs --------------------------------------------------------------------------------------------------


def live_table(live: Mapping[str, Any]) -> pd.DataFrame:
    """Per live run (``mode -> uci.run(...)``): final and early-stopped test LL, best epoch, training time."""
    show = ["test_loglik", "best_epoch", "test_loglik_best_val", "train_seconds"]
    return pd.DataFrame({m: {k: r.row[k] for k in show} for m, r in live.items()}).T


def curves_figure(live: Mapping[str, Any], epochs: int):
    """The live runs' training-batch log-likelihood (with the noise level) and clean validation LL per epoch."""
    import matplotlib.pyplot as plt

    from ...schedules import sigmoid_schedule

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    curves = {mode: pd.DataFrame(r.curve) for mode, r in live.items()}
    for mode, c in curves.items():
        axes[0].plot(c.epoch, -c.train_loss, color=color(mode), label=f"{mode}: training batches")
        axes[1].plot(c.epoch, c.val_loglik, color=color(mode), label=mode)
        row = live[mode].row
        axes[1].plot(row["best_epoch"], row["val_loglik_best"], "o", color=color(mode))
    e = np.arange(0, epochs + 1)
    ax2 = axes[0].twinx()
    ax2.plot(e, sigmoid_schedule(e, epochs), color="gray", ls=":", label="noise level $\\gamma$")
    ax2.set(ylabel="noise level $\\gamma(t/T)$", ylim=(0, 1.05))
    axes[0].set(xlabel="epoch", ylabel="mean log-likelihood (nats)", title="training batches (mollified: noisy data)")
    axes[0].set_ylim(bottom=min(np.nanpercentile(-c.train_loss, 5) for c in curves.values()))
    axes[0].legend(loc="lower right")
    axes[1].set(
        xlabel="epoch", ylabel="validation log-likelihood (nats)", title="clean validation data (dot: best epoch)"
    )
    vals = np.concatenate([c.val_loglik.to_numpy() for c in curves.values()])
    axes[1].set_ylim(np.nanpercentile(vals, 5) - 1, np.nanmax(vals) + 0.5)
    axes[1].legend()
    fig.tight_layout()
    return fig


def live_sentences(live: Mapping[str, Any], epochs: int) -> list[str]:
    """Per live run: its best validation epoch, how far validation LL fell after it, both test LLs."""
    out = []
    for mode, r in live.items():
        row = r.row
        drop = row["val_loglik_best"] - row["val_loglik"]
        out.append(
            f"{mode}: best validation epoch {row['best_epoch']} of {epochs}; validation LL fell by {drop:.2f} "
            f"nats from there to the end; test LL: final {row['test_loglik']:.2f}, at the best-validation "
            f"epoch {row['test_loglik_best_val']:.2f}"
        )
    return out


def check_live(live: Mapping[str, Any], epochs: int) -> list[str]:
    """Judge each live run against its stored twin (:func:`molli_utils.experiments.reproduce.uci`): a sentence per
    run; raises (``Reproduction.check``) when a run with a stored twin does not reproduce it."""
    from ...experiments import reproduce

    out = []
    for mode, r in live.items():
        try:
            check = reproduce.uci(r)  # the stored run with these settings
        except LookupError:
            out.append(f"{mode}: no stored run of {epochs} epochs to compare with (the stored table has 150)")
            continue
        out.append(check.check().sentence())
    return out


# --- rounding alone ---------------------------------------------------------------------------------------------------

_ROUNDED = dict(dataset="redwine", flow="maf", variant="official", seed=1)


def rounding_changes(runs: pd.DataFrame, rounding: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Per mode: (the re-run's final test LL - the stored seed-1 red-wine MAF's, the sd of the cell's stored seeds).

    ``runs`` is ``uci.csv``, ``rounding`` is ``uci_rounding.csv`` (the same runs with MKL's AVX2 kernels)."""
    out = {}
    for mode in ("vanilla", "mollification"):
        cell = runs[
            (runs.dataset == "redwine") & (runs.flow == "maf") & (runs.variant == "official") & (runs["mode"] == mode)
        ]
        ours = cell[cell.seed == 1].test_loglik.iloc[0]
        other = rounding[
            (rounding["mode"] == mode) & np.logical_and.reduce([rounding[k] == v for k, v in _ROUNDED.items()])
        ]
        out[mode] = (float(other.test_loglik.iloc[0] - ours), float(cell.test_loglik.std()))
    return out


def rounding_figure(curves: pd.DataFrame, rounding_curves: pd.DataFrame):
    """Per epoch, the gap between the stored seed-1 red-wine MAF runs and their AVX2 re-runs (training loss,
    relative; validation LL, nats), vanilla and mollified."""
    import matplotlib.pyplot as plt

    from ...experiments import reproduce, results

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for mode in ("vanilla", "mollification"):
        gap = reproduce.drift(
            results.select(curves, **_ROUNDED, mode=mode), results.select(rounding_curves, **_ROUNDED, mode=mode)
        )
        axes[0].semilogy(gap.epoch, gap.loss_rel, color=color(mode), label=mode)
        axes[1].semilogy(gap.epoch, gap.val_abs, color=color(mode), label=mode)
    axes[0].set(xlabel="epoch", ylabel="relative gap", title="training loss: AVX2 kernels against the stored run")
    axes[1].set(xlabel="epoch", ylabel="gap (nats)", title="validation log-likelihood: the same two runs")
    axes[0].legend()
    fig.tight_layout()
    return fig


def rounding_sentences(runs: pd.DataFrame, rounding: pd.DataFrame) -> list[str]:
    """Per mode, how far rounding alone moved the final test LL (:func:`rounding_changes`), beside the seeds' sd."""
    return [
        f"{mode}: rounding alone moved the final test LL by {change:+.2f} nats; this cell's four seeds have a "
        f"standard deviation of {sd:.2f}"
        for mode, (change, sd) in rounding_changes(runs, rounding).items()
    ]
