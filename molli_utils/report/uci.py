"""Chapter 4 (density estimation on UCI data, the paper's Table 4): its tables, figures, checks and findings.

The chapter trains and explains; everything that only formats, judges or checks lives here and is
called from it in one line. Every function reads frames of the stored results
(``molli_utils/results/uci*.csv*``, loaded with :func:`molli_utils.experiments.results.load`), so a
test can hand it the shipped files or a tampered copy:

* names: :data:`SHORT` (data sets as the page spells them), :data:`BRIEF` (verdicts shortened for a
  table), :data:`RED_WINE_VARIABLES`;
* tables: :func:`data_table`, :func:`model_table`, :func:`live_table`, :func:`table4`, :func:`brief`,
  :func:`peaks`, :func:`vanilla_gap`, :func:`bf16_tables`;
* checks that raise when the stored runs stop saying what the chapter says: :func:`check_live` (live against
  stored), :func:`stored_runs`,
  :func:`peaks`, :func:`code_check`, :func:`learned`;
* figures, in the book's palette: :func:`skew_figure`, :func:`curves_figure`, :func:`rounding_figure`,
  :func:`paired_figure`, :func:`code_figure`;
* :func:`learned`: the numbers of "What we learned", computed, checked (:class:`~molli_utils.findings.Findings`)
  and glued for the chapter's prose.

Verdicts are :func:`molli_utils.report.verdict`'s, through :func:`molli_utils.report.uci_verdicts`; nothing
here judges by another rule.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..findings import Findings, glue_all
from ..palette import color
from ..paper import UCI_TEST_LOGLIK
from . import (
    NOISE,
    NOT_RUN,
    ONE_SEED,
    OPPOSITE,
    SIMILAR,
    SMALLER,
    UCI_VIEWS,
    paired_differences,
    uci_table,
    uci_verdicts,
)

__all__ = [
    "SHORT",
    "BRIEF",
    "RED_WINE_VARIABLES",
    "DATASETS",
    "VARIANTS",
    "GRID",
    "MOL",
    "data_table",
    "skewness",
    "skew_figure",
    "model_table",
    "live_table",
    "curves_figure",
    "live_sentences",
    "rounding_changes",
    "rounding_figure",
    "stored_runs",
    "table4",
    "paired_figure",
    "verdicts",
    "brief",
    "peaks",
    "vanilla_gap",
    "code_check",
    "code_figure",
    "bf16_tables",
    "learned",
    "check_live",
    "rounding_sentences",
]

#: The data sets as the page spells them.
SHORT = {"redwine": "red wine", "whitewine": "white wine", "parkinsons": "Parkinsons", "miniboone": "MiniBooNE"}
#: :func:`molli_utils.report.verdict`'s names, shortened for a table.
BRIEF = {
    SIMILAR: "similar",
    SMALLER: "smaller",
    NOISE: "noise",
    OPPOSITE: "opposite",
    ONE_SEED: "1 seed",
    NOT_RUN: "not run",
}
#: The eleven columns of the red-wine array, in order.
RED_WINE_VARIABLES = (
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free SO2",
    "total SO2",
    "density",
    "pH",
    "sulphates",
    "alcohol",
)
DATASETS = ("redwine", "whitewine", "parkinsons")
VARIANTS = ("official", "paper-text")
FLOWS = ("maf", "realnvp", "glow")
#: Runs per variant in the stored table: data sets x flows x modes x seeds.
GRID = 3 * 3 * 3 * 4
MOL = "mollification - vanilla"


# --- the data and the models ----------------------------------------------------------------------------------------


def data_table(data: Mapping[str, Any]) -> pd.DataFrame:
    """Per data set (``name -> load_uci(name)``): variables, rows of each split, the source file."""
    from ..data.uci import SOURCES

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
    from ..models.tabular import FLOWS as KINDS, VARIANTS as ALL, count_parameters, tabular_flow

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

    from ..schedules import sigmoid_schedule

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

    from ..experiments import reproduce, results

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


# --- the stored table -------------------------------------------------------------------------------------------------


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
    from . import uci_code_check

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


def _bf16(runs: pd.DataFrame, bf16: pd.DataFrame) -> dict[str, Any]:
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
    b = _bf16(runs, bf16)
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


# --- what we learned ----------------------------------------------------------------------------------------------


def _listed(values: pd.Series) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in values.items())


def learned(
    runs: pd.DataFrame, curves: pd.DataFrame, code: pd.DataFrame, bf16: pd.DataFrame, rounding: pd.DataFrame
) -> dict[str, str]:
    """The numbers of chapter 4's "What we learned", from the stored runs: computed, checked and glued.

    ``runs`` = ``uci.csv``, ``curves`` = ``uci_curves.csv.gz``, ``code`` = ``uci_official_code.csv``,
    ``bf16`` = ``uci_bf16.csv``, ``rounding`` = ``uci_rounding.csv``. Every value is glued under its key
    (prefixed ``uci_``) as formatted text and returned. Raises ``AssertionError`` (from
    :meth:`~molli_utils.findings.Findings.check`) naming each finding of the prose that the numbers no
    longer support.
    """
    v = verdicts(runs)

    def means(variant: str, comparison: str, view: str) -> pd.Series:
        s = v[(v.variant == variant) & (v.comparison == comparison) & (v.view == view)]
        return s.set_index(["data set", "flow"])["mean"]

    g: dict[str, Any] = {}
    f = Findings()
    paper_gap = pd.Series({k: p["mollification"][0] - p["vanilla"][0] for k, p in UCI_TEST_LOGLIK.items()})

    # 1. the paper-text variant: better everywhere, by less than the paper
    pt_final = means("paper-text", MOL, "final")
    less = int((pt_final < paper_gap[pt_final.index]).sum())
    g.update(
        pt_better=(pt_final > 0).sum(),
        cells=len(pt_final),
        pt_less=less,
        pt_red_realnvp=f"{pt_final['redwine', 'realnvp']:+.2f}",
        paper_red_realnvp=f"{paper_gap['redwine', 'realnvp']:+.2f}",
    )
    f.add(
        "paper-text: mollification helps the final model everywhere, by less than the paper's gap in >= 7 cells",
        holds=bool((pt_final > 0).all()) and less >= 7,
    )

    # 2. early stopping, paper-text: vanilla wins on Parkinsons, the wines within 0.5 nats
    pt_early = means("paper-text", MOL, "early-stopped")
    park = pt_early.xs("parkinsons", level="data set")
    wine = pt_early.drop("parkinsons", level="data set")
    g.update(pt_park_early=", ".join(f"{k} {x:+.2f}" for k, x in park.items()), pt_wine_early=f"{wine.abs().max():.2f}")
    f.add(
        "paper-text, early-stopped: negative on Parkinsons for all flows, |Δ| < 0.5 on the wines",
        holds=bool((park < 0).all()) and wine.abs().max() < 0.5,
    )

    # 3. constant noise, paper-text
    pt_const = means("paper-text", "constant - vanilla", "final")
    share = (pt_const / pt_final).median()
    g.update(const_better=(pt_const > 0).sum(), const_share=f"{share:.0%}")
    f.add(
        "constant noise improves >= 8 cells and recovers over half the gain",
        holds=(pt_const > 0).sum() >= 8 and share > 0.5,
    )

    # 4. the official variant overfits as the paper's models did (red wine)
    final = runs[runs.dataset == "redwine"].groupby(["variant", "mode", "flow"]).test_loglik.mean()
    of_van = final["official", "vanilla"].reindex(list(FLOWS))
    pt_van = final["paper-text", "vanilla"].reindex(list(FLOWS))
    of_mol = final["official", "mollification"].reindex(list(FLOWS))
    paper_mol = pd.Series({fl: UCI_TEST_LOGLIK["redwine", fl]["mollification"][0] for fl in FLOWS})
    paper_sd = pd.Series({fl: UCI_TEST_LOGLIK["redwine", fl]["mollification"][1] for fl in FLOWS})
    g.update(
        of_red_vanilla=_listed(of_van),
        pt_red_vanilla=_listed(pt_van),
        of_seeds=runs[runs.variant == "official"].seed.nunique(),
        of_red_mol_off=f"{(of_mol - paper_mol).abs().max():.2f}",
        of_red_mol=_listed(of_mol),
        paper_red_mol=_listed(paper_mol),
    )
    f.add(
        "official, red wine: vanilla below paper-text for every flow; mollified within 2 paper sds of the paper",
        holds=bool((of_van < pt_van).all()) and bool(((of_mol - paper_mol).abs() < 2 * paper_sd).all()),
    )

    # 5. it follows the paper's own code
    from . import uci_code_check

    check = uci_code_check(code, curves)
    early = check[check.epoch <= 40]
    worst = check.loc[check["diff"].abs().idxmax()]
    g.update(
        code_early=f"{early['diff'].abs().max():.2f}",
        code_worst_flow=worst["flow"],
        code_worst_epoch=int(worst["epoch"]),
        code_worst_diff=f"{worst['diff']:+.1f}",
        code_worst_p=f"{worst['p']:.2f}",
    )
    f.add(
        "the official variant agrees with the official code at all 12 checkpoints, within 0.7 nats to epoch 40",
        holds=bool(check.agrees.all()) and len(check) == 12 and early["diff"].abs().max() < 0.7,
    )

    # 6. the paper's numbers are the official variant's
    mean = runs.groupby(["variant", "mode", "dataset", "flow"])[["test_loglik", "test_loglik_best_val"]].mean()
    paper_mean = pd.Series(
        {
            (m, d, fl): p[m][0]
            for (d, fl), p in UCI_TEST_LOGLIK.items()
            for m in ("vanilla", "mollification")
            if d in DATASETS
        }
    )
    off = {var: (mean.test_loglik[var].reindex(paper_mean.index) - paper_mean).abs() for var in VARIANTS}
    closer = int((off["official"] < off["paper-text"]).sum())
    g.update(
        paper_cells=len(paper_mean),
        off_official=f"{off['official'].median():.2f}",
        off_paper_text=f"{off['paper-text'].median():.2f}",
        closer=closer,
    )
    f.add(
        "the official variant's means are closer to the paper's (median, and in most cells)",
        holds=off["official"].median() < off["paper-text"].median() and closer > len(paper_mean) / 2,
    )

    # 7. the official variant reproduces Table 4's final-model gains
    of_final = means("official", MOL, "final")
    of_paper = paper_gap[of_final.index]
    g.update(
        of_better=(of_final > 0).sum(),
        of_cells=len(of_final),
        of_half=(of_final >= of_paper / 2).sum(),
        of_ratio=f"{(of_final / of_paper).median():.2f}",
        of_white_realnvp=f"{of_final['whitewine', 'realnvp']:+.2f}",
        paper_white_realnvp=f"{of_paper['whitewine', 'realnvp']:+.2f}",
        of_park_maf=f"{of_final['parkinsons', 'maf']:+.2f}",
        paper_park_maf=f"{of_paper['parkinsons', 'maf']:+.2f}",
    )
    f.add(
        "official: mollification improves all 9 final models, by at least half the paper's gap in >= 7",
        holds=len(of_final) == 9 and bool((of_final > 0).all()) and (of_final >= of_paper / 2).sum() >= 7,
    )

    # 8. the gain follows the vanilla model's overfitting
    van, mol = mean.xs("vanilla", level="mode"), mean.xs("mollification", level="mode")
    gain = mol.test_loglik - van.test_loglik
    lost = van.test_loglik_best_val - van.test_loglik
    rho = gain.corr(lost, method="spearman")
    g.update(
        gain_cells=len(gain),
        rho=f"{rho:.2f}",
        lost_more=(lost["official"] > lost["paper-text"]).sum(),
        gains_more=(gain["official"] > gain["paper-text"]).sum(),
    )
    f.add(
        "the gain follows the vanilla overfitting (Spearman > 0.8 over 18 cells), official gains more in >= 6",
        holds=len(gain) == 18 and rho > 0.8 and (gain["official"] > gain["paper-text"]).sum() >= 6,
    )

    # 9. early stopping takes the official gain away
    of_early = means("official", MOL, "early-stopped")
    of_park = of_early.xs("parkinsons", level="data set")
    g.update(
        of_early_max=f"{of_early.max():+.2f}",
        of_early_lose=(of_early < 0).sum(),
        of_park_early=_listed(of_park),
        of_final_min=f"{of_final.min():+.2f}",
        of_final_max=f"{of_final.max():+.2f}",
    )
    f.add(
        "official, early-stopped: at most 0.5 nats of gain, a loss on Parkinsons for every flow",
        holds=of_early.max() < 0.5 and bool((of_park < 0).all()),
    )

    # 10. bf16 products move a run less than a seed does
    b = _bf16(runs, bf16)
    v32, v16, moved, spread = b["v32"], b["v16"], b["moved"], b["spread"]
    same = v16["verdict"] == v32["verdict"]

    def told(vv: pd.DataFrame, k: tuple) -> str:
        m, sd, says = vv.loc[k, ["mean", "sd", "verdict"]]
        return f"{m:+.2f} ± {sd:.2f}, {says}"

    differ = "; ".join(
        f"{SHORT[k[0]]} {k[1]} {k[2]} ({told(v32, k)} in fp32, {told(v16, k)} in bf16)" for k in same[~same].index
    )
    signs = int((np.sign(v16["mean"]) == np.sign(v32["mean"])).sum())
    g.update(
        bf16_moved=f"{moved.loc['mollification', 'final']:.2f}",
        bf16_spread=f"{spread.loc['mollification', 'final']:.2f}",
        bf16_signs=signs,
        bf16_views=len(v32),
        bf16_same=int(same.sum()),
        bf16_differ=differ or "none",
    )
    f.add(
        "bf16: every mean gain keeps its sign, at most 2 verdicts change and only at the edge of seed noise, a run "
        "moves less than a quarter of the seeds' spread",
        holds=signs == len(v32)
        and same.sum() >= len(v32) - 2
        and all(NOISE in (v32.loc[k, "verdict"], v16.loc[k, "verdict"]) for k in same[~same].index)
        and moved.loc["mollification", "final"] < spread.loc["mollification", "final"] / 4,
    )

    # 11. rounding alone moves an overfitting run by nats
    by = rounding_changes(runs, rounding)
    (van_change, van_sd), (mol_change, mol_sd) = by["vanilla"], by["mollification"]
    g.update(
        round_van=f"{abs(van_change):.2f}",
        round_van_sd=f"{van_sd:.2f}",
        round_mol=f"{abs(mol_change):.2f}",
        round_mol_sd=f"{mol_sd:.2f}",
    )
    f.add(
        "rounding moves the vanilla run more than 10 times the mollified one, within two of its seeds' sds",
        holds=abs(van_change) > 10 * abs(mol_change) and abs(van_change) < 2 * van_sd,
    )

    f.check()
    return glue_all({f"uci_{k}": str(int(x)) if isinstance(x, (int, np.integer)) else str(x) for k, x in g.items()})


def check_live(live: Mapping[str, Any], epochs: int) -> list[str]:
    """Judge each live run against its stored twin (:func:`molli_utils.experiments.reproduce.uci`): a sentence per
    run; raises (``Reproduction.check``) when a run with a stored twin does not reproduce it."""
    from ..experiments import reproduce

    out = []
    for mode, r in live.items():
        try:
            check = reproduce.uci(r)  # the stored run with these settings
        except LookupError:
            out.append(f"{mode}: no stored run of {epochs} epochs to compare with (the stored table has 150)")
            continue
        out.append(check.check().sentence())
    return out


def rounding_sentences(runs: pd.DataFrame, rounding: pd.DataFrame) -> list[str]:
    """Per mode, how far rounding alone moved the final test LL (:func:`rounding_changes`), beside the seeds' sd."""
    return [
        f"{mode}: rounding alone moved the final test LL by {change:+.2f} nats; this cell's four seeds have a "
        f"standard deviation of {sd:.2f}"
        for mode, (change, sd) in rounding_changes(runs, rounding).items()
    ]
