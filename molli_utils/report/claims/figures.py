"""The report's UCI figures (chapter 5): per-seed gains over vanilla, and the test log-likelihood curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ...paper import UCI_TEST_LOGLIK
from .. import UCI_VIEWS, paired_differences, say
from .tables import LABEL, UCI_CELLS, variants_with_runs

__all__ = ["plot_uci_gains", "plot_uci_curves"]


def plot_uci_gains(uci: pd.DataFrame):
    """Per-seed paired differences of the test log-likelihood, treatment − vanilla, one panel per variant with runs
    (symmetric-log axis): annealed final (blue dots), annealed early-stopped (blue open squares), constant final
    (green triangles), the paper's difference (black bar). Returns the figure."""
    import matplotlib.pyplot as plt

    from ...palette import color

    present = variants_with_runs(uci)
    kinds = (
        ("final", "mollification", "o", "annealed − vanilla, final"),
        ("early-stopped", "mollification", "s", "annealed − vanilla, early-stopped"),
        ("final", "constant", "^", "constant − vanilla, final"),
    )
    fig, axes = plt.subplots(len(present), 1, squeeze=False, figsize=(8, 3.4 * len(present)))
    for ax, variant in zip(axes[:, 0], present):
        runs = uci[uci["variant"] == variant]
        for i, (dataset, flow) in enumerate(UCI_CELLS):
            sub = runs[(runs["dataset"] == dataset) & (runs["flow"] == flow)]
            for j, (view, treated, marker, label) in enumerate(kinds):
                d = paired_differences(sub, ["dataset", "flow"], UCI_VIEWS[view], treated=treated)
                c = color(treated)
                ax.scatter(
                    np.full(len(d), i + (j - 1) * 0.22),
                    d,
                    s=22,
                    marker=marker,
                    label=label if i == 0 else None,
                    color=c if view == "final" else "none",
                    edgecolors=c,
                )
            p = UCI_TEST_LOGLIK[(dataset, flow)]
            ax.plot(
                [i - 0.35, i + 0.35],
                [p["mollification"][0] - p["vanilla"][0]] * 2,
                color=color("data"),
                lw=2,
                label="paper" if i == 0 else None,
            )
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_ylim(top=2 * max(ax.get_ylim()[1], 1))  # room for the bars
        ax.set_xticks(range(len(UCI_CELLS)), [f"{LABEL[d]}\n{LABEL[f]}" for d, f in UCI_CELLS], fontsize=7)
        ax.set(ylabel="treatment − vanilla\ntest LL (nats)", yscale="symlog", title=f"{variant} variant")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.12 / len(present), 1, 1))
    return fig


def plot_uci_curves(curves: pd.DataFrame, variant: str, peak_before: int = 75):
    """The mean validation log-likelihood per epoch of each mode (vanilla, annealed, constant) over the stored seeds,
    one panel per cell of ``variant`` (``uci_curves.csv.gz``), the best epoch marked; an epoch of -inf (one row at
    zero density) is left out. Says how many vanilla runs peak before epoch ``peak_before``; returns the figure."""
    import matplotlib.pyplot as plt

    from ...palette import color

    runs = curves[curves["variant"] == variant]
    runs = runs.assign(val_loglik=runs["val_loglik"].replace(-np.inf, np.nan))
    here = [k for k in UCI_CELLS if ((runs["dataset"] == k[0]) & (runs["flow"] == k[1])).any()]
    nrow = max(1, math.ceil(len(here) / 3))
    fig, axes = plt.subplots(nrow, 3, figsize=(10, 2.8 * nrow), squeeze=False)
    for ax, (dataset, flow) in zip(axes.flat, here):
        cell = runs[(runs["dataset"] == dataset) & (runs["flow"] == flow)]
        for mode in ("vanilla", "mollification", "constant"):
            c = cell[cell["mode"] == mode]
            if c.empty:
                continue
            mean = c.groupby("epoch")["val_loglik"].mean()
            ax.plot(mean.index, mean.values, color=color(mode), label=mode)
            ax.plot(mean.idxmax(), mean.max(), "o", color=color(mode))
        ax.set_ylim(bottom=cell["val_loglik"].quantile(0.1))
        ax.set_title(f"{LABEL[dataset]} / {LABEL[flow]}", fontsize=9)
        ax.set(xlabel="epoch", ylabel="validation LL")
    for ax in list(axes.flat)[len(here) :]:
        ax.axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(f"{variant} variant", fontsize=10)
    fig.tight_layout(rect=(0, 0.04 / nrow, 1, 1))
    vanilla = runs[runs["mode"] == "vanilla"]
    best = vanilla.loc[vanilla.groupby(["dataset", "flow", "seed"])["val_loglik"].idxmax()]
    say(
        f"{variant}: vanilla runs whose validation LL peaks before epoch {peak_before}: "
        f"{int((best['epoch'] < peak_before).sum())} of {len(best)}"
    )
    return fig
