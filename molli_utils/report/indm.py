"""Chapter 7's comparison: INDM and a plain diffusion model beside the REAL-NVPs of chapter 3, from the stored runs.

``indm_toy2d.csv`` (``python -m molli_utils.experiments indm``: 20,000 steps, seeds 0-2) and the flows of
``toy2d.csv`` (chapter 3's default grid: ReLU conditioners, the same seeds), scored by the same measures::

    runs = indm.comparison_runs(results.load("toy2d.csv"), results.load("indm_toy2d.csv"))
    indm.comparison_table(runs, styled=True)   # per toy and model: MMD², the test log-likelihood (a bound for INDM)
    indm.plot_comparison(runs)                 # every seed and the mean, one panel per measure, in the palette
    indm.learned(runs)                         # the chapter's findings: computed, glued, checked

:func:`learned` raises ``AssertionError`` (:meth:`molli_utils.findings.Findings.check`) the day a stated
finding stops holding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..findings import Findings, glue_all
from . import say

__all__ = [
    "TOYS",
    "NAMES",
    "ORDER",
    "MEASURES",
    "comparison_runs",
    "comparison_table",
    "circle_means",
    "run_notes",
    "plot_comparison",
    "learned",
]

TOYS = {"mixture_of_gaussians": "mixture of Gaussians", "von_mises": "von Mises on the circle"}
#: The stored models of ``indm_toy2d.csv``, as the chapter names them.
NAMES = {"diffusion": "diffusion (identity flow)", "indm": "INDM (REAL-NVP + diffusion)"}
#: The models compared, in the order of the tables and the figure.
ORDER = ["REAL-NVP, vanilla", "REAL-NVP, mollification", "REAL-NVP, constant", *NAMES.values()]
#: The colour key of each model (:func:`molli_utils.palette.color`) and its short label.
_COLOR = dict(zip(ORDER, ["vanilla", "mollification", "constant", "diffusion", "indm"]))
_SHORT = dict(zip(ORDER, ["vanilla", "mollified", "constant", "diffusion", "INDM"]))
#: Lower is better for all four; on the mixture only MMD² at ℓ = 1 applies.
MEASURES = ["mmd2", "mmd2_ls0.1", "circle_dist_q50", "angle_tv"]
STEPS = 20_000


def comparison_runs(flows: pd.DataFrame, stored: pd.DataFrame, *, steps: int = STEPS) -> pd.DataFrame:
    """One row per (toy, model, seed): the flows of chapter 3 (``toy2d.csv``: vanilla, mollification, constant;
    ReLU conditioners; the seeds of ``settings.SEEDS["toy2d"]``) and the diffusion/INDM runs of ``stored``
    (``indm_toy2d.csv``, at ``steps``). ``loglik`` is the flows' exact test log-likelihood (``-inf``, a diverged
    flow, shown as missing) and the diffusion models' bound; ``mc_se`` the bound's Monte-Carlo standard error."""
    from ..experiments import settings

    flows = flows[
        flows["mode"].isin(["vanilla", "mollification", "constant"])
        & (flows["activation"] == "relu")
        & flows["seed"].isin(settings.SEEDS["toy2d"])
    ]
    stored = stored[stored["steps"] == steps]
    cols = ["dataset", "model", "seed", *MEASURES, "loglik", "mc_se"]
    runs = pd.concat(
        [
            flows.assign(model="REAL-NVP, " + flows["mode"], loglik=flows["test_loglik"], mc_se=np.nan)[cols],
            stored.assign(
                model=stored["model"].map(NAMES),
                loglik=stored["test_loglik_bound"],
                mc_se=stored["test_loglik_bound_mc_se"],
            )[cols],
        ],
        ignore_index=True,
    )
    runs["loglik"] = runs["loglik"].replace(-np.inf, np.nan)
    return runs


def comparison_table(runs: pd.DataFrame, *, styled: bool = False):
    """Per toy and model (:data:`ORDER`), the means over seeds of MMD² and of the test log-likelihood, its sd over
    seeds, and the bound's Monte-Carlo error (``bound_mc_se``, the diffusion models only). With ``styled``, a
    pandas Styler with the book's number formats."""
    table = (
        runs.groupby(["dataset", "model"])
        .agg(
            mmd2=("mmd2", "mean"), loglik=("loglik", "mean"), loglik_sd=("loglik", "std"), bound_mc_se=("mc_se", "mean")
        )
        .reindex([(d, m) for d in TOYS for m in ORDER])
    )
    if not styled:
        return table
    return table.style.format(
        {"mmd2": "{:.2e}", "loglik": "{:.3f}", "loglik_sd": "{:.3f}", "bound_mc_se": "{:.3f}"}, na_rep=""
    )


def circle_means(runs: pd.DataFrame) -> pd.DataFrame:
    """On the circle, per model (:data:`ORDER`), the means over seeds of every measure and of the log-likelihood."""
    ring = runs[runs["dataset"] == "von_mises"]
    return ring.groupby("model")[[*MEASURES, "loglik"]].mean().reindex(ORDER)


def run_notes(stored: pd.DataFrame, *, steps: int = STEPS) -> None:
    """Say what the stored diffusion/INDM runs are: their number and commits, the mean distance of each circle run's
    samples from the circle (one INDM seed strays), and the median training time per toy and model."""
    stored = stored[stored["steps"] == steps]
    commits = ", ".join(sorted(stored["commit"].astype(str).unique()))
    ring = stored[stored["dataset"] == "von_mises"].set_index(["model", "seed"])["circle_dist_mean"]
    seconds = stored.groupby(["dataset", "model"])["train_seconds"].median()
    say(
        f"{len(stored)} diffusion/INDM runs from indm_toy2d.csv (commit {commits}); means over seeds; loglik is "
        "exact for the flows, a lower bound for the rest",
        "circle, mean distance from the circle per run: "
        + ", ".join(f"{m} seed {s}: {v:.3f}" for (m, s), v in ring.items()),
        f"median training seconds per run (one CPU thread, {steps:,} steps): "
        + ", ".join(f"{d}/{m} {s:.0f}" for (d, m), s in seconds.items()),
    )


_PANELS = [
    ("mixture_of_gaussians", "mmd2", "mixture: MMD² (ℓ = 1)"),
    ("von_mises", "mmd2", "circle: MMD² (ℓ = 1)"),
    ("von_mises", "mmd2_ls0.1", "circle: MMD² (ℓ = 0.1)"),
    ("von_mises", "circle_dist_q50", "circle: median distance"),
    ("von_mises", "angle_tv", "circle: angular TV"),
]


def plot_comparison(runs: pd.DataFrame):
    """Every seed (dots) and the mean (bar) of each model, one panel per toy and measure, log axes, lower is better;
    each model in its colour of the palette (vanilla red, mollified blue, constant green, diffusion grey, INDM
    pink). Returns the figure."""
    import matplotlib.pyplot as plt

    from ..palette import color

    fig, axes = plt.subplots(1, len(_PANELS), figsize=(14, 3.6), constrained_layout=True)
    for ax, (name, col, title) in zip(axes, _PANELS):
        for i, model in enumerate(ORDER):
            vals = runs[(runs["dataset"] == name) & (runs["model"] == model)][col].to_numpy()
            c = color(_COLOR[model])
            ax.scatter(np.full(len(vals), i), vals, color=c, s=20, zorder=3)
            ax.hlines(vals.mean(), i - 0.3, i + 0.3, color=c, lw=2)
        ax.set(yscale="log", title=title)
        ax.set_xticks(range(len(ORDER)), [_SHORT[m] for m in ORDER], rotation=45, fontsize=8)
    axes[0].set_ylabel("lower is better")
    return fig


def learned(runs: pd.DataFrame, *, show: bool = True) -> dict:
    """The numbers of chapter 7's "What we learned", from :func:`comparison_runs`, each glued for the prose (myst-nb)
    under its key; returns ``{key: value}``. Checks every condition the prose states and raises ``AssertionError``
    naming the findings that no longer hold. With ``show``, says each finding's short name and that it holds."""
    table, circ = comparison_table(runs), circle_means(runs)
    mix_mmd, mix_ll = table.loc["mixture_of_gaussians", "mmd2"], table.loc["mixture_of_gaussians", "loglik"]
    diffusion, indm_ = NAMES["diffusion"], NAMES["indm"]
    vanilla, mollified, constant = ORDER[:3]
    d, i_, m_, c_ = circ.loc[diffusion], circ.loc[indm_], circ.loc[mollified], circ.loc[constant]
    flow_ll = circ.loc[ORDER[:3], "loglik"].max()
    gap = {k: m_[k] / d[k] for k in MEASURES}
    v = {
        "mix_vanilla_mmd": mix_mmd[vanilla],
        "mix_diffusion_ll": mix_ll[diffusion],
        "mix_indm_ll": mix_ll[indm_],
        "mix_vanilla_ll": mix_ll[vanilla],
        "circle_diffusion_ll": d["loglik"],
        "circle_indm_ll": i_["loglik"],
        "circle_flow_ll": flow_ll,
        "indm_dist": i_["circle_dist_q50"],
        "diffusion_dist": d["circle_dist_q50"],
        "indm_closer": d["circle_dist_q50"] / i_["circle_dist_q50"],
        "indm_tv": i_["angle_tv"],
        "diffusion_tv": d["angle_tv"],
        "indm_mmd": i_["mmd2"],
        "diffusion_mmd": d["mmd2"],
        "indm_mmd_fine": i_["mmd2_ls0.1"],
        "diffusion_mmd_fine": d["mmd2_ls0.1"],
        "mollified_mmd": m_["mmd2"],
        "mollified_mmd_fine": m_["mmd2_ls0.1"],
        "gap_mmd": gap["mmd2"],
        "gap_mmd_fine": gap["mmd2_ls0.1"],
        "mollified_dist": m_["circle_dist_q50"],
        "mollified_tv": m_["angle_tv"],
        "constant_tv": c_["angle_tv"],
        "constant_dist": c_["circle_dist_q50"],
        "n_seeds": int(runs.groupby(["dataset", "model"])["seed"].nunique().min()),
    }
    check = Findings()
    check.add(
        "mixture: the vanilla REAL-NVP has the lowest MMD²; the diffusion bounds within 0.05 nats of the flows",
        mix_mmd.idxmin() == vanilla and mix_ll[ORDER[:3]].max() - mix_ll[[diffusion, indm_]].min() < 0.05,
    )
    check.add(
        "circle: the diffusion bound above every flow's likelihood, INDM's above the plain diffusion's",
        d["loglik"] > flow_ll and i_["loglik"] > d["loglik"],
    )
    check.add(
        "circle: INDM closer to the ring than the plain diffusion, but worse along it and by MMD²",
        i_["circle_dist_q50"] < d["circle_dist_q50"]
        and i_["angle_tv"] > d["angle_tv"]
        and i_["mmd2"] > d["mmd2"]
        and i_["mmd2_ls0.1"] > d["mmd2_ls0.1"],
    )
    check.add(
        "circle: the plain diffusion beats the mollified flow on every measure, most at MMD² ℓ = 0.1",
        all(g > 1 for g in gap.values()) and gap["mmd2_ls0.1"] == max(gap.values()),
    )
    check.add(
        "circle: constant noise matches the diffusion's angular TV (within 25%) but not its distance (5x)",
        abs(c_["angle_tv"] / d["angle_tv"] - 1) < 0.25 and c_["circle_dist_q50"] > 5 * d["circle_dist_q50"],
    )
    check.check()
    v = glue_all(v)
    if show:
        say(*(f"holds: {s}" for s, _ in check.items))
    return v
