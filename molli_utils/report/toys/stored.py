"""Chapter 3's tables and figures of the stored study (``toy2d.csv`` and its companions).

Verdicts are the book's one rule, :func:`molli_utils.report.verdict`. The small helpers that
:mod:`.prose` shares (:func:`by_seed`, :func:`circle_runs`, :func:`collapsed_mask`, :func:`second_layer`,
:data:`RUN_KEYS`) are public here.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np
import pandas as pd
import torch

from ...palette import color
from .. import say, verdict
from .live import model_samples
from .names import COLLAPSE_TOL, FLOOR, MODE_ORDER, PAIR, TITLES, short

__all__ = [
    "default_grid",
    "mmd_table",
    "true_loglik",
    "single_gaussian_loglik",
    "by_seed",
    "verdict_table",
    "mode_weights",
    "fair_table",
    "MEASURES",
    "blurred_ring_reference",
    "circle_runs",
    "circle_table",
    "plot_circle_measures",
    "collapsed_mask",
    "collapsed_by_mode",
    "collapse_table",
    "ablation",
    "RUN_KEYS",
    "second_layer",
    "dead_table",
    "plot_dead_units",
    "noise_floor",
    "ablation_table",
    "plot_ablation",
]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def default_grid(stored: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(all_runs, runs)`` of ``toy2d.csv``: the command's default grid (ReLU conditioners, the settings' seeds),
    every mode; and its vanilla and mollified runs, the paper's comparison."""
    from ...experiments import settings

    grid = (stored.activation == "relu") & stored.seed.isin(settings.SEEDS["toy2d"])
    all_runs = stored[grid].reset_index(drop=True)
    return all_runs, all_runs[all_runs["mode"].isin(PAIR)].reset_index(drop=True)


def mmd_table(runs: pd.DataFrame):
    """MMD² per seed and its mean, the mean test log-likelihood, diverged runs and the paper's MMD² (its scale)."""
    from ...paper import TOY2D_MMD2

    meta = runs[["iterations", "commit", "date"]].drop_duplicates()
    say(
        f"{len(runs)} vanilla or mollified runs of toy2d.csv:",
        meta.to_string(index=False),
        "MMD^2 (lengthscale 1, variance 1) per seed and its mean; mean test log-likelihood; diverged runs; "
        "the paper's MMD^2 (its own scale)",
    )
    per_seed = runs.pivot_table(index=["dataset", "mode"], columns="seed", values="mmd2")
    per_seed.columns = [f"seed {s}" for s in per_seed.columns]
    table = per_seed.join(
        runs.groupby(["dataset", "mode"]).agg(
            mean=("mmd2", "mean"),
            loglik=("test_loglik", "mean"),
            diverged=("diverged_at", lambda s: int(s.notna().sum())),
        )
    )
    table["paper"] = [TOY2D_MMD2[d][m] for d, m in table.index]
    return (
        short(table)
        .style.format("{:.1e}", subset=[*per_seed.columns, "mean"])
        .format("{:.3f}", subset=["loglik"])
        .format("{:g}", subset=["paper"])
    )


def true_loglik() -> float:
    """Mean log-likelihood of the 10,000 test points under the true mixture: the best a model can reach on average."""
    from ...data import MixtureOfGaussians, load_toy2d

    test = load_toy2d("mixture_of_gaussians", n_test=10_000, seed=0)[1]
    return float(MixtureOfGaussians().log_prob(test).mean())


def single_gaussian_loglik() -> float:
    r"""Expected log-likelihood of the mixture under its moment-matched Gaussian, :math:`-\log(2\pi e) -
    \frac12 \log\det\Sigma`, with :math:`\mathrm{Var}\,x_1 = \sigma_{mix}^2 = 4/9` and
    :math:`\mathrm{Var}\,x_2 = \sigma_{mix}^2 + 4`: where a collapsed flow ends."""
    cov_det = (4 / 9) * (4 / 9 + 4)
    return -math.log(2 * math.pi * math.e) - 0.5 * math.log(cov_det)


def by_seed(frame: pd.DataFrame, values: str) -> pd.DataFrame:
    """``frame``'s column ``values`` as a seeds x modes table (one row per seed, one column per mode)."""
    return frame.pivot(index="seed", columns="mode", values=values)


def verdict_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per toy, the verdict of the book's one rule on the per-seed log MMD² ratios against the paper's ratio, the
    two ratios of means, seeds won and diverged runs; says the mixture's true and reached log-likelihoods."""
    from ...paper import TOY2D_MMD2

    rows = []
    for name in TOY2D_MMD2:
        sub = runs[runs.dataset == name]
        mmd, ll = by_seed(sub, "mmd2"), by_seed(sub, "test_loglik")
        van, mol = mmd["vanilla"], mmd["mollification"]
        both = van.notna() & mol.notna()
        log_ratio = np.log(van[both]) - np.log(mol[both])
        paper = TOY2D_MMD2[name]["vanilla"] / TOY2D_MMD2[name]["mollification"]
        diverged = sub[sub.diverged_at.notna()]
        rows.append(
            {
                "data set": name,
                # per-seed log(mol / van) against the paper's, lower MMD^2 better
                "verdict": verdict(list(-log_ratio), -math.log(paper), higher_is_better=False),
                "ratio": float(f"{van[both].mean() / mol[both].mean():.3g}") if both.any() else math.nan,
                "geometric": float(f"{np.exp(log_ratio.mean()):.3g}") if both.any() else math.nan,
                "paper": float(f"{paper:.3g}"),
                "lower MMD^2": f"{int((mol[both] < van[both]).sum())}/{int(both.sum())}",
                "higher loglik": f"{int((ll['mollification'] > ll['vanilla']).sum())}/{len(ll)}",
                "diverged": ", ".join(f"{m} seed {s}" for m, s in zip(diverged["mode"], diverged["seed"])) or "none",
            }
        )
    mix_ll = runs[runs.dataset == "mixture_of_gaussians"].groupby("mode").test_loglik.mean()
    say(
        f"true mean test log-likelihood of the mixture: {true_loglik():.3f} nats; vanilla runs: "
        f"{mix_ll['vanilla']:.3f}, mollified runs: {mix_ll['mollification']:.3f}",
        "ratio: mean vanilla MMD^2 / mean mollified MMD^2; geometric: the same from the mean of the per-seed "
        "log-ratios; paper: its ratio",
    )
    return short(pd.DataFrame(rows).set_index("data set"))


def mode_weights(final: dict, seed: int = 0) -> pd.Series:
    """Fraction of 10,000 samples of each live mixture flow in the upper mode (``x_2 > 0``; true value 0.5)."""
    out = {}
    for mode in PAIR:
        x = model_samples(final[("mixture_of_gaussians", mode)], 10_000, seed=seed)
        out[mode] = round(float((x[:, 1] > 0).float().mean()), 3)
    return pd.Series(out, name="fraction of samples in the upper mode")


def fair_table(all_runs: pd.DataFrame):
    """Every mode's MMD² and test log-likelihood at the last step and at the best-validation step (means over
    seeds); says, per toy, the lowest early-stopped mode and the paired seed counts."""
    fair = (
        all_runs.groupby(["dataset", "mode"])
        .agg(
            mmd2_final=("mmd2", "mean"),
            mmd2_best_val=("mmd2_best_val", "mean"),
            best_step=("best_step", "median"),
            ll_final=("test_loglik", "mean"),
            ll_best_val=("test_loglik_best_val", "mean"),
        )
        .reindex([(d, m) for d in TITLES for m in MODE_ORDER])
        .dropna(how="all")
    )
    pairs = [
        ("mollification", "vanilla"),
        ("constant", "vanilla"),
        ("constant", "mollification"),
        ("half", "vanilla"),
        ("half", "mollification"),
        ("clean-half", "mollification"),
    ]
    for name in TITLES:
        wide = by_seed(all_runs[all_runs.dataset == name], "mmd2_best_val")
        paired = [
            f"{a} below {b} on {int((w[a] < w[b]).sum())}/{len(w)} seeds"
            for a, b in pairs
            if {a, b} <= set(wide.columns)
            for w in [wide[[a, b]].dropna()]
        ]
        best = fair.loc[name, "mmd2_best_val"].idxmin()
        say(
            f"{name}: early-stopped, the lowest mean MMD^2 is {best}'s "
            f"({fair.loc[(name, best), 'mmd2_best_val']:.2g}); " + ", ".join(paired)
        )
    fair.columns = ["MMD² final", "MMD² early", "best step", "loglik final", "loglik early"]
    return (
        short(fair)
        .style.format("{:.1e}", subset=["MMD² final", "MMD² early"])
        .format("{:.0f}", subset=["best step"])
        .format("{:.3f}", subset=["loglik final", "loglik early"])
    )


#: The circle measures of :func:`plot_circle_measures`, with their axis titles.
MEASURES = {
    "mmd2": "MMD² (ℓ = 1)",
    "mmd2_ls0.1": "MMD² (ℓ = 0.1)",
    "circle_dist_q50": "median distance\nfrom the circle",
    "angle_tv": "angular TV\n(density along the circle)",
}


def blurred_ring_reference(sigma: float = 0.1, seed: int = 5, n: int = 10_000) -> dict:
    """The circle measures (and MMD² at lengthscale 1) of the first ``n`` test points of the ring blurred by
    ``N(0, sigma^2 I)`` against them: where a perfect fit of the constant mode's noised data would sit."""
    return dict(_blurred_ring_reference(float(sigma), int(seed), int(n)))  # a copy: the cache keeps its own


@functools.lru_cache(maxsize=4)
def _blurred_ring_reference(sigma: float, seed: int, n: int) -> dict:
    from ...data import load_toy2d
    from ...metrics import circle_scores, mmd2

    ring = load_toy2d("von_mises", n_test=10_000, seed=0)[1][:n]
    blurred = ring + sigma * torch.randn(ring.shape, generator=torch.Generator().manual_seed(seed))
    reference = circle_scores(blurred, ring)
    reference["mmd2"] = mmd2(blurred, ring)
    return reference


def circle_runs(all_runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``(runs, modes)``: the von Mises runs of ``all_runs`` and their modes in :data:`MODE_ORDER`."""
    ring = all_runs[all_runs.dataset == "von_mises"]
    return ring, [m for m in MODE_ORDER if m in set(ring["mode"])]


def circle_table(all_runs: pd.DataFrame, reference: dict) -> pd.DataFrame:
    """Means over seeds of the circle measures per mode, and a last row for the blurred data (``reference``)."""
    ring, modes = circle_runs(all_runs)
    table = ring.groupby("mode")[list(MEASURES) + ["circle_dist_q90"]].mean().reindex(modes)
    table.loc["data + N(0, 0.1²)"] = [reference[c] for c in table.columns]
    return table


def plot_circle_measures(all_runs: pd.DataFrame, reference: Optional[dict] = None):
    """The von Mises runs under the four measures (dots: seeds, bars: means), the blurred data dashed, the angular
    TV of 10,000 true samples dotted; returns :func:`circle_table`, styled."""
    from ...metrics import angular_tv_floor

    plt = _plt()
    reference = blurred_ring_reference() if reference is None else reference
    ring, modes = circle_runs(all_runs)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4), constrained_layout=True)
    for ax, (col, label) in zip(axes, MEASURES.items()):
        for i, mode in enumerate(modes):
            vals = ring[ring["mode"] == mode][col].to_numpy()
            ax.scatter(np.full(len(vals), i), vals, s=18, color=color(mode), zorder=3)
            ax.hlines(vals.mean(), i - 0.3, i + 0.3, color=color(mode), lw=2)
        ax.axhline(reference[col], ls="--", color=color("data"), lw=1)
        if col == "angle_tv":
            ax.axhline(angular_tv_floor(10_000), ls=":", color="gray", lw=1)
        ax.set(yscale="log", title=label)
        ax.set_xticks(range(len(modes)), modes, rotation=45, fontsize=8)
    plt.show()
    return circle_table(all_runs, reference).style.format("{:.2g}")


# --- the collapse ---------------------------------------------------------------------------------------------


def collapsed_mask(frame: pd.DataFrame) -> pd.Series:
    """Per run, whether its test log-likelihood ended within :data:`COLLAPSE_TOL` of the single Gaussian's
    (:func:`single_gaussian_loglik`): the mixture collapsed to one Gaussian."""
    return (frame.test_loglik - single_gaussian_loglik()).abs() < COLLAPSE_TOL


def collapsed_by_mode(all_runs: pd.DataFrame) -> dict[str, list[int]]:
    """Mode -> the mixture seeds whose run ended as one Gaussian (every mode of ``all_runs``)."""
    mix = all_runs[all_runs.dataset == "mixture_of_gaussians"]
    return {mode: sorted(int(s) for s in g.seed[collapsed_mask(g)]) for mode, g in mix.groupby("mode")}


def collapse_table(all_runs: pd.DataFrame) -> pd.DataFrame:
    """Says which seeds of each mode collapsed; returns the mixture's test log-likelihood per seed and mode."""
    by_mode = collapsed_by_mode(all_runs)
    modes = [m for m in MODE_ORDER if m in by_mode]
    for mode in modes:
        say(f"{mode:14s} seeds ending as one Gaussian: {by_mode[mode]}")
    mix = all_runs[all_runs.dataset == "mixture_of_gaussians"]
    return by_seed(mix, "test_loglik")[modes].round(3)


def ablation(stored: pd.DataFrame) -> pd.DataFrame:
    """The activation ablation: the mixture's vanilla and mollified runs, every activation and seed, with a
    ``collapsed`` column."""
    rows = stored[(stored.dataset == "mixture_of_gaussians") & stored["mode"].isin(PAIR)].copy()
    rows["collapsed"] = collapsed_mask(rows)
    return rows


#: The columns that name one run of the activation ablation.
RUN_KEYS = ["activation", "mode", "seed"]


def second_layer(dead: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``toy2d_dead_units.csv`` for the mixture's second hidden layer (where units die)."""
    return dead[(dead.dataset == "mixture_of_gaussians") & (dead.hidden_layer == 2)]


def dead_table(dead: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """% of each coupling's second-layer units dead at the last step, per ablation run (one column per coupling,
    1 to 5), and whether the run collapsed."""
    dead = second_layer(dead)
    end = dead[dead.step == dead.iterations].pivot_table(index=RUN_KEYS, columns="coupling", values="dead_fraction")
    end = (100 * end).round().astype(int)
    end.columns = pd.Index([int(c) for c in end.columns], name="% dead, coupling")
    return end.join(ablation(stored).set_index(RUN_KEYS).collapsed)


def plot_dead_units(dead: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The dead fraction of each coupling's second hidden layer over training (ReLU solid, LeakyReLU dotted; mode
    colours of the palette); returns :func:`dead_table`."""
    plt = _plt()
    dead = second_layer(dead)
    line = {"relu": dict(ls="-", lw=1.3), "leaky_relu": dict(ls=":", lw=1)}
    couplings = sorted(dead.coupling.unique())
    fig, axes = plt.subplots(1, len(couplings), figsize=(13, 3.4), sharey=True, constrained_layout=True)
    for ax, k in zip(axes, couplings):
        for (act, mode, _), g in dead[dead.coupling == k].groupby(RUN_KEYS):
            ax.plot(g.step, 100 * g.dead_fraction, label=f"{mode}, {act}", color=color(mode), **line[act])
        ax.set(title=f"coupling {k}", xlabel="training step", ylim=(0, 102))
    axes[0].set_ylabel("2nd hidden layer: dead (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    legend = dict(zip(labels, handles))
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncol=4, fontsize=8)
    plt.show()
    return dead_table(dead, stored)


def noise_floor(floors: pd.DataFrame) -> pd.Series:
    """The mixture's MMD² of a perfect model (10,000 fresh samples against the 10,000 test points), one per draw."""
    return floors[
        (floors.dataset == "mixture_of_gaussians") & (floors.n_samples == 10_000) & (floors.n_test == 10_000)
    ].mmd2


def ablation_table(stored: pd.DataFrame) -> pd.DataFrame:
    """Per activation and mode: MMD² per seed and its mean, mean test log-likelihood, collapsed runs, seeds."""
    rows = ablation(stored)
    cells = ["activation", "mode"]
    table = rows.pivot_table(index=cells, columns="seed", values="mmd2")
    table.columns = [f"seed {s}" for s in table.columns]
    return table.join(
        rows.groupby(cells).agg(
            mean=("mmd2", "mean"),
            loglik=("test_loglik", "mean"),
            collapsed=("collapsed", "sum"),
            seeds=("seed", "count"),
        )
    )


def plot_ablation(stored: pd.DataFrame, floors: pd.DataFrame):
    """MMD² at the last step of every ablation run, the perfect model's 95% band in grey; returns
    :func:`ablation_table`, styled."""
    plt = _plt()
    rows, table, floor = ablation(stored), ablation_table(stored), noise_floor(floors)
    fig, ax = plt.subplots(figsize=(7.5, 3.8), constrained_layout=True)
    ax.axhspan(
        FLOOR, floor.quantile(0.95), color="0.85", label=f"a perfect model ({len(floor)} draws: 95% below the top)"
    )
    for i, (act, mode) in enumerate(table.index):
        cell = rows[(rows.activation == act) & (rows["mode"] == mode)]
        ax.scatter(np.full(len(cell), i), np.maximum(cell.mmd2, FLOOR), s=22, color=color(mode), zorder=3)
    ax.set_xticks(range(len(table)), [f"{m}\n{a}" for a, m in table.index])
    ax.set(
        yscale="log",
        title=f"the mixture: MMD² at the last step, seeds {rows.seed.min()}-{rows.seed.max()}",
        ylabel=f"MMD² (below {FLOOR:g} drawn at {FLOOR:g})",
    )
    ax.legend(fontsize=8, loc="upper left")
    plt.show()
    seeds = [c for c in table.columns if c.startswith("seed ")]
    return (
        table.rename(index={"mollification": "mollified"})
        .style.format("{:.1e}", subset=seeds + ["mean"])
        .format("{:.3f}", subset=["loglik"])
    )
