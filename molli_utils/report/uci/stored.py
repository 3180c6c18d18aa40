"""Chapter 4's stored table (``uci.csv`` and its companions): Table 4, the paired differences and verdicts,
where runs peak, the check against the paper's own code and the bf16 re-runs.

Verdicts are :func:`molli_utils.report.verdict`'s, through :func:`molli_utils.report.uci_verdicts`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ...palette import color
from ...paper import UCI_TEST_LOGLIK
from .. import UCI_VIEWS, paired_differences, uci_table, uci_verdicts
from .names import BRIEF, DATASETS, FLOWS, GRID, MOL, SHORT, VARIANTS

__all__ = [
    "stored_runs",
    "table4",
    "paired_figure",
    "verdicts",
    "brief",
    "peaks",
    "vanilla_gap",
    "code_check",
    "code_figure",
    "bf16_comparison",
    "bf16_tables",
]


def stored_runs(runs: pd.DataFrame) -> list[str]:
    """What ``uci.csv`` holds per variant (runs, seeds, commits, CPU-hours, non-finite steps, diverged runs), as
    sentences; raises ``AssertionError`` unless both variants hold all :data:`GRID` runs (three data sets,
    seeds 1-4, every data set and seed with its nine flows x modes), as the chapter says."""
    out = []
    for variant in VARIANTS:
        sub = runs[runs.variant == variant]
        seeds = sub.groupby("dataset").seed.nunique()
        out.append(
            f"{variant}: {len(sub)} of {GRID} runs (seeds per data set: "
            f"{', '.join(f'{d} {n}' for d, n in seeds.items())}); commits "
            f"{', '.join(sorted(sub.commit.unique()))}; {sub.train_seconds.sum() / 3600:.2f} CPU-hours of "
            f"training, {sub.train_seconds.median():.0f} s per run (median); "
            f"{int(sub.nonfinite_steps.sum())} non-finite steps, "
            f"{int(sub.diverged_at.notna().sum())} diverged runs"
        )
        assert len(sub) == GRID, f"{variant}: {len(sub)} of {GRID} runs"
        assert set(sub.dataset) == set(DATASETS), f"{variant}: data sets {sorted(set(sub.dataset))}"
        assert (sub.groupby(["dataset", "seed"]).size() == 3 * 3).all(), f"{variant}: a (data set, seed) lacks runs"
        assert set(sub.seed) == {1, 2, 3, 4}, f"{variant}: seeds {sorted(set(sub.seed))}"
    return out


def table4(runs: pd.DataFrame, variant: str, view: str = "final") -> pd.DataFrame:
    """Table 4 for one variant: the paper's mean ± sd beside ours (vanilla, mollified, constant) in ``view``."""
    t = uci_table(runs, UCI_TEST_LOGLIK, variant=variant)
    cols = {
        "paper vanilla": "paper vanilla",
        f"ours vanilla, {view}": "ours vanilla",
        "paper mollification": "paper mollified",
        f"ours mollification, {view}": "ours mollified",
        f"ours constant, {view}": "ours constant",
    }
    return t[list(cols)].rename(columns=cols, index=SHORT)


def _paired(runs: pd.DataFrame, variant: str) -> pd.DataFrame:
    sub = runs[runs.variant == variant]
    return pd.DataFrame({view: paired_differences(sub, ["dataset", "flow"], col) for view, col in UCI_VIEWS.items()})


def paired_figure(runs: pd.DataFrame):
    """Per cell and variant: each seed's paired difference mollified - vanilla (final, early-stopped) and the
    paper's difference of means."""
    import matplotlib.pyplot as plt

    diffs = {v: _paired(runs, v) for v in VARIANTS}
    cells = {v: [k for k in UCI_TEST_LOGLIK if k in set(d.index.droplevel("seed"))] for v, d in diffs.items()}
    fig, axes = plt.subplots(
        1, 2, figsize=(12, 4), sharey=True, gridspec_kw={"width_ratios": [len(cells[v]) + 1 for v in VARIANTS]}
    )
    for ax, variant in zip(axes, VARIANTS):
        for i, (d, f) in enumerate(cells[variant]):
            sub, first = diffs[variant].loc[(d, f)], i == 0
            ax.scatter(
                np.full(len(sub), i - 0.12),
                sub["final"],
                color=color("mollification"),
                s=22,
                label="ours, final" if first else None,
            )
            ax.scatter(
                np.full(len(sub), i + 0.12),
                sub["early-stopped"],
                edgecolors=color("mollification"),
                facecolors="none",
                marker="s",
                s=22,
                label="ours, early-stopped" if first else None,
            )
            p = UCI_TEST_LOGLIK[(d, f)]
            ax.plot(
                [i - 0.3, i + 0.3],
                [p["mollification"][0] - p["vanilla"][0]] * 2,
                color=color("data"),
                lw=2,
                label="paper (difference of means)" if first else None,
            )
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_xticks(range(len(cells[variant])), [f"{SHORT[d]}\n{f}" for d, f in cells[variant]], fontsize=8)
        ax.set_title(f"{variant} variant", fontsize=10)
    axes[0].set_ylabel("mollified − vanilla test LL (nats)")
    axes[0].legend(fontsize=8)
    fig.suptitle("per-seed paired differences (above 0: mollification better)")
    fig.tight_layout()
    return fig


def verdicts(runs: pd.DataFrame) -> pd.DataFrame:
    """:func:`molli_utils.report.uci_verdicts` of both variants, with a ``variant`` column."""
    return pd.concat([uci_verdicts(runs, UCI_TEST_LOGLIK, variant=v).assign(variant=v) for v in VARIANTS])


def brief(verdict_rows: pd.DataFrame, variant: str) -> pd.DataFrame:
    """Per cell of ``variant``: the mean paired difference (seeds better) and the verdict (:data:`BRIEF`), final,
    early-stopped and constant - vanilla, beside the paper's difference."""
    v = verdict_rows[verdict_rows.variant == variant].copy()
    v["Δ"] = [f"{m:+.2f} ({b})" for m, b in zip(v["mean"], v["better on"])]
    v["verdict"] = v["verdict"].map(BRIEF)
    key = ["data set", "flow"]
    mol = v[v.comparison == MOL]
    fin, early = mol[mol.view == "final"].set_index(key), mol[mol.view != "final"].set_index(key)
    con = v[v.comparison == "constant - vanilla"].set_index(key)
    out = pd.concat(
        {
            ("final", "Δ"): fin["Δ"],
            ("final", "verdict"): fin["verdict"],
            ("early-stopped", "Δ"): early["Δ"],
            ("early-stopped", "verdict"): early["verdict"],
            ("constant", "Δ"): con["Δ"],
            ("paper", "Δ"): fin["paper"].round(2),
        },
        axis=1,
    )
    return out.rename(index=SHORT)


def peaks(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per variant, data set, flow and mode: the mean best-validation epoch and the test LL ``lost`` from there to
    the end; and sentences on where runs peak and which runs got an absurd held-out density. Raises
    ``AssertionError`` if such a run is not of the official variant or a test LL is not finite."""
    peak = (
        runs.assign(lost=runs.test_loglik_best_val - runs.test_loglik)
        .groupby(["variant", "dataset", "flow", "mode"])
        .agg(best_epoch=("best_epoch", "mean"), lost=("lost", "mean"))
        .unstack("mode")
        .round(1)
        .rename(index=SHORT)
    )
    early = peak["best_epoch"]["vanilla"]
    wild = runs[(runs.val_loglik < -1000) | (runs.test_loglik_best_val < -100)]
    said = [
        f"vanilla runs peak on average at epoch {early.min():.0f} to {early.max():.0f} (by variant, data set "
        f"and flow); mollified runs at epoch {peak['best_epoch']['mollification'].min():.0f} or later",
        "runs with a final validation LL below -1000 nats or a test LL below -100 at the best-validation "
        f"epoch: {len(wild)} ("
        + "; ".join(
            f"{r.variant} {SHORT[r.dataset]} {r.flow} {r.mode} seed {r.seed}: {r.val_loglik:.3g}, "
            f"{r.test_loglik_best_val:.3g}"
            for r in wild.itertuples()
        )
        + ")",
    ]
    assert set(wild.variant) <= {"official"}, "a paper-text run got an absurd held-out density"
    assert np.isfinite(runs[["test_loglik", "test_loglik_best_val"]]).all(axis=None), "a test LL is not finite"
    cols = [(what, mode) for what in ("best_epoch", "lost") for mode in ("vanilla", "mollification", "constant")]
    shown = peak[cols].rename(columns={"best_epoch": "best epoch", "mollification": "mollified"})
    return shown, said


def vanilla_gap(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell: our mean vanilla test LL minus the paper's, for both variants."""
    van = runs[runs["mode"] == "vanilla"].groupby(["dataset", "flow", "variant"]).test_loglik.mean().unstack("variant")
    paper = pd.Series({k: v["vanilla"][0] for k, v in UCI_TEST_LOGLIK.items()}).reindex(van.index)
    return van.sub(paper, axis=0).round(2).rename(index=SHORT).add_prefix("ours − paper, ")


# --- the official code ------------------------------------------------------------------------------------------------


def code_check(code: pd.DataFrame, curves: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """:func:`molli_utils.report.uci_code_check` (the official variant against the paper's code) and a sentence
    on what was compared; raises ``AssertionError`` if a comparison does not agree."""
    from .. import uci_code_check

    check = uci_code_check(code, curves)
    runs = code.groupby(["flow", "seed"])
    said = (
        f"official code: commit {', '.join(sorted(code.code_commit.unique()))}, {runs.ngroups} runs, "
        f"{runs.run_seconds.first().median():.0f} s per run on one CPU thread (median); seeds per mean: "
        f"{int(check.n_code.min())} (code), {int(check.n_ours.min())} (ours)"
    )
    assert bool(check.agrees.all()), "the official variant departs from the official code:\n" + check.to_string()
    return check.drop(columns=["n_code", "n_ours"]).round(3), said


def code_figure(code: pd.DataFrame, curves: pd.DataFrame):
    """The test LL during training of the paper's code (the reference: dashed, black) and of the official variant
    (solid, the vanilla colour), red wine, vanilla, every stored seed, one panel per flow."""
    import matplotlib.pyplot as plt

    ours = curves[(curves.variant == "official") & (curves["mode"] == "vanilla") & (curves.dataset == "redwine")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharex=True)
    for ax, flow in zip(axes, FLOWS):
        for i, (_, c) in enumerate(code[code.flow == flow].groupby("seed")):
            ax.plot(c.epoch, c.test_loglik, "--", color=color("data"), lw=1.2, label=None if i else "official code")
        for i, (_, c) in enumerate(ours[ours.flow == flow].groupby("seed")):
            ax.plot(
                c.epoch,
                c.test_loglik,
                color=color("vanilla"),
                lw=1,
                alpha=0.7,
                label=None if i else "book, official variant",
            )
        ax.set_title(f"red wine, {flow}, vanilla", fontsize=10)
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("test log-likelihood (nats)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- bf16 products ----------------------------------------------------------------------------------------------------


def bf16_comparison(runs: pd.DataFrame, bf16: pd.DataFrame) -> dict[str, Any]:
    """The official variant's float32 runs (of ``runs``) against their bf16 re-runs (``bf16``, ``uci_bf16.csv``):
    ``v32`` and ``v16``, the mollification - vanilla verdict rows of each, by (data set, flow, view); ``moved``, the
    median |bf16 - fp32| of a run per mode and view; ``spread``, the median sd over seeds per mode and view. Raises
    ``AssertionError`` unless every official vanilla or mollified run has exactly one bf16 twin."""
    fp32 = runs[(runs.variant == "official") & runs["mode"].isin(["vanilla", "mollification"])]
    pair = fp32.merge(bf16, on=["dataset", "flow", "mode", "seed"], suffixes=("", "_bf16"))
    assert len(pair) == len(bf16) == len(fp32), "uci_bf16.csv and the official runs of uci.csv differ"

    def mol(frame: pd.DataFrame) -> pd.DataFrame:
        v = uci_verdicts(frame, UCI_TEST_LOGLIK, variant="official")
        return v[v.comparison == MOL].set_index(["data set", "flow", "view"])

    moved = pd.DataFrame(
        {
            view: (pair[col + "_bf16"] - pair[col]).abs().groupby(pair["mode"]).median()
            for view, col in UCI_VIEWS.items()
        }
    )
    spread = pd.DataFrame(
        {
            view: fp32.groupby(["mode", "dataset", "flow"])[col].std().groupby("mode").median()
            for view, col in UCI_VIEWS.items()
        }
    )
    return {"v32": mol(fp32), "v16": mol(bf16), "moved": moved, "spread": spread}


def bf16_tables(runs: pd.DataFrame, bf16: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The official variant's float32 runs against their bf16 re-runs (``uci_bf16.csv``): per cell and view the
    mean gain and verdict of each; and the median |bf16 - fp32| of a run beside the median sd over seeds."""
    b = bf16_comparison(runs, bf16)
    v32, v16 = b["v32"], b["v16"]
    verdicts_ = pd.DataFrame(
        {
            "Δ fp32": v32["mean"].round(2),
            "Δ bf16": v16["mean"].round(2),
            "verdict fp32": v32["verdict"].map(BRIEF),
            "verdict bf16": v16["verdict"].map(BRIEF),
        }
    )
    moved = pd.concat({"median |bf16 - fp32|": b["moved"], "median sd over seeds": b["spread"]}).round(3)
    return verdicts_.rename(index=SHORT), moved
