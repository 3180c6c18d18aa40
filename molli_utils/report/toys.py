"""Chapter 3's plumbing: the toys' figures, tables and checked numbers.

The chapter (``book/03_toys.ipynb``) keeps in view what it teaches: the data, the flow, the
training with the one line, the MMD² callback and the model's score. Everything else lives
here, each called in one line:

* figures: :func:`plot_data`, :func:`plot_scores`, :func:`plot_snapshots`, :func:`film`,
  :func:`plot_curves`, :func:`plot_circle_measures`, :func:`plot_dead_units`,
  :func:`plot_ablation` (colours from :mod:`molli_utils.palette`);
* tables of the stored study (``toy2d.csv``): :func:`default_grid`, :func:`mmd_table`,
  :func:`verdict_table` (the book's one rule, :func:`molli_utils.report.verdict`),
  :func:`fair_table`, :func:`circle_table`, :func:`collapsed_by_mode`, :func:`dead_table`,
  :func:`ablation_table`;
* :func:`learned`: every number of the chapter's prose from the stored results, glued for
  ``{glue:text}`` and checked: it raises ``AssertionError`` naming each statement of the prose
  that the numbers no longer support, so the build fails the day a finding stops holding.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch

from ..findings import Findings, glue
from ..palette import color
from . import say, verdict

__all__ = [
    "SHORT",
    "TITLES",
    "MODE_ORDER",
    "LIM",
    "FLOOR",
    "short",
    "square_grid",
    "hist2d",
    "quiver",
    "density_image",
    "model_samples",
    "plot_data",
    "divergence_report",
    "plot_scores",
    "score_cosines",
    "plot_snapshots",
    "film",
    "plot_curves",
    "default_grid",
    "mmd_table",
    "true_loglik",
    "single_gaussian_loglik",
    "verdict_table",
    "mode_weights",
    "fair_table",
    "blurred_ring_reference",
    "circle_table",
    "plot_circle_measures",
    "collapsed_by_mode",
    "ablation",
    "dead_table",
    "plot_dead_units",
    "noise_floor",
    "ablation_table",
    "plot_ablation",
    "learned",
]

#: Data-set names short enough for the page.
SHORT = {"mixture_of_gaussians": "mixture", "von_mises": "circle"}
#: Data-set names as figure titles.
TITLES = {"mixture_of_gaussians": "mixture of Gaussians", "von_mises": "von Mises on the circle"}
#: The modes of the stored study, in the order the chapter shows them.
MODE_ORDER = ["vanilla", "mollification", "constant", "half", "clean-half"]
#: The plotting window is ``[-LIM, LIM]^2``.
LIM = 4.0
#: The unbiased MMD² estimate can dip below 0 near a perfect fit: values below are drawn at FLOOR.
FLOOR = 1e-5
#: A mixture run has collapsed when its test log-likelihood is within this of the single Gaussian's (nats).
COLLAPSE_TOL = 0.01
_EDGES = np.linspace(-LIM, LIM, 81)
_PAIR = ("vanilla", "mollification")


def _plt():
    import matplotlib.pyplot as plt

    return plt


def short(frame):
    """``frame`` with short data-set names (:data:`SHORT`) in its ``dataset`` column and index."""
    return frame.replace({"dataset": SHORT}).rename(index=SHORT)


def square_grid(n: int, lim: float = LIM) -> torch.Tensor:
    """The ``n * n`` points of a regular grid on ``[-lim, lim]^2``, ``[n*n, 2]`` (x fastest)."""
    g = torch.linspace(-lim, lim, n)
    return torch.stack(torch.meshgrid(g, g, indexing="xy"), dim=-1).reshape(-1, 2)


def hist2d(ax, x, title: str) -> None:
    """2D histogram of points ``[n, 2]``; non-finite rows (a diverged model's samples) are dropped."""
    x = np.asarray(x)
    x = x[np.isfinite(x).all(1)]
    ax.hist2d(x[:, 0], x[:, 1], bins=[_EDGES, _EDGES], cmap="viridis")
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", aspect="equal")


def quiver(ax, points, vectors, title: str, color: str = "k") -> None:
    """A score field, arrows normalised to equal length so that the direction is readable everywhere."""
    v = np.asarray(vectors, dtype=float)
    v = np.where(np.isfinite(v), v, 0.0)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    p = np.asarray(points)
    ax.quiver(p[:, 0], p[:, 1], v[:, 0], v[:, 1], color=color, angles="xy", scale=30, width=0.004)
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", xlim=(-LIM, LIM), ylim=(-LIM, LIM), aspect="equal")


def density_image(ax, model, title: str, n: int = 161) -> None:
    """The flow's density on an ``n * n`` grid; colours clipped at the 99.5th percentile, grey where not finite."""
    from ..models import flow_log_prob

    with torch.no_grad():
        dens = flow_log_prob(model, square_grid(n)).exp().reshape(n, n).numpy()
    dens = np.where(np.isfinite(dens), dens, np.nan)
    top = np.nanpercentile(dens, 99.5) if np.isfinite(dens).any() else 1.0  # a spike must not hide the rest
    cmap = _plt().get_cmap("magma").with_extremes(bad="0.6")
    ax.imshow(dens, origin="lower", extent=(-LIM, LIM, -LIM, LIM), cmap=cmap, vmin=0, vmax=top)
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$")


def model_samples(model, n: int, seed: int) -> torch.Tensor:
    """``n`` samples of ``model`` under their own seed (the global RNG restored), finite rows only."""
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(seed)
        x, _ = model.sample(n)
    return x[torch.isfinite(x).all(1)]


def plot_data(splits: dict) -> None:
    """The chapter's first figure: both training sets and the mixture's true score."""
    from ..data import MixtureOfGaussians

    plt = _plt()
    grid = square_grid(21)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4), constrained_layout=True)
    hist2d(axes[0], splits["mixture_of_gaussians"][0], "mixture: training data")
    hist2d(axes[1], splits["von_mises"][0], "von Mises: training data")
    quiver(axes[2], grid, MixtureOfGaussians().score(grid), r"mixture: true score $\nabla_x \log p(x)$")
    plt.show()


def divergence_report(train, runs: Sequence[tuple]) -> None:
    """Say, member by member, whether a live run had non-finite steps and whether it was frozen."""
    for (name, mode), n_bad, div in zip(runs, train.member_nonfinite, train.diverged_at):
        if div is not None:
            say(
                f"{name} / {mode}: DIVERGED, frozen at step {div} after {n_bad} non-finite steps; "
                "its later figures show the frozen model"
            )
        elif n_bad:
            say(f"{name} / {mode}: {n_bad} non-finite steps skipped, but it recovered")
        else:
            say(f"{name} / {mode}: every step finite")


def plot_scores(final: dict, test, model_score, seed: int = 0) -> None:
    """Paper Fig. 1: test data and each mixture flow's samples (top); the true and estimated scores (bottom)."""
    from ..data import MixtureOfGaussians

    plt = _plt()
    grid, true = square_grid(21), MixtureOfGaussians().score(square_grid(21))
    fig, axes = plt.subplots(2, 3, figsize=(12, 8), constrained_layout=True)
    hist2d(axes[0, 0], test, "data (test set)")
    quiver(axes[1, 0], grid, true, "true score")
    for col, mode in enumerate(_PAIR, start=1):
        model = final[("mixture_of_gaussians", mode)]
        hist2d(axes[0, col], model_samples(model, 10_000, seed=seed), f"{mode}: 10k model samples")
        quiver(axes[1, col], grid, true, "", color="0.8")
        quiver(axes[1, col], grid, model_score(model, grid), f"{mode}: estimated score (black)")
    plt.show()


def score_cosines(final: dict, model_score) -> pd.DataFrame:
    """Mean cosine between each mixture flow's score and the true one, inside the band ``|x_2| < 1`` and outside."""
    from ..data import MixtureOfGaussians

    grid = square_grid(21)
    true, band = MixtureOfGaussians().score(grid), grid[:, 1].abs() < 1.0
    rows = []
    for mode in _PAIR:
        cos = torch.nn.functional.cosine_similarity(
            model_score(final[("mixture_of_gaussians", mode)], grid), true, dim=1
        )
        rows.append(
            {
                "mode": mode,
                "mean cosine, |x2| < 1": float(cos[band].nanmean()),
                "mean cosine, |x2| >= 1": float(cos[~band].nanmean()),
            }
        )
    return pd.DataFrame(rows).set_index("mode").round(3)


def plot_snapshots(name: str, snapshots: dict, runs: Sequence[tuple], train_x, mollifier) -> None:
    """Paper Fig. 4 and 6 for one toy: at each snapshot step, the data the mollified member sees (top), the
    mollified member's density (middle) and the vanilla member's (bottom)."""
    plt = _plt()
    steps = sorted(snapshots)
    i_van, i_mol = runs.index((name, "vanilla")), runs.index((name, "mollification"))
    fig, axes = plt.subplots(3, len(steps), figsize=(4 * len(steps), 12), constrained_layout=True)
    for col, step in enumerate(steps):
        level = mollifier.noise_level(step)
        hist2d(axes[0, col], mollifier(train_x, step), f"mollified data, it. {step:,} ($\\gamma_t$={level:.3f})")
        density_image(axes[1, col], snapshots[step][i_mol], f"mollified model, it. {step:,}")
        density_image(axes[2, col], snapshots[step][i_van], f"vanilla model, it. {step:,}")
    fig.suptitle(f"{TITLES[name]}: data seen by the mollified model (top), densities (middle, bottom)")
    plt.show()


def film(name: str, snapshots: dict, runs: Sequence[tuple], train_x, mollifier, frames: Sequence[int]):
    """The run as a film: :func:`plot_snapshots`' three panels at each of ``frames`` (an HTML player)."""
    from ..plotting import animate

    plt = _plt()
    i_van, i_mol = runs.index((name, "vanilla")), runs.index((name, "mollification"))
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.3), dpi=72, constrained_layout=True)

    def draw(step):
        for ax in axes:
            ax.clear()
        level = mollifier.noise_level(step)
        hist2d(axes[0], mollifier(train_x, step), f"data seen, it. {step:,} (γ={level:.2f})")
        density_image(axes[1], snapshots[step][i_mol], "mollified model")
        density_image(axes[2], snapshots[step][i_van], "vanilla model")

    return animate(fig, draw, frames)


def plot_curves(curve: dict, train, runs: Sequence[tuple]) -> None:
    """Paper Fig. 5: the callback's MMD² (top) and the training loss (bottom) of each live member."""
    plt = _plt()
    steps_eval, trace = np.array(curve["step"]), np.array(curve["mmd2"], dtype=float)
    loss = train.member_losses.numpy()
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    for col, name in enumerate(TITLES):
        members = [runs.index((name, m)) for m in _PAIR]
        for mode, i in zip(_PAIR, members):
            axes[0, col].plot(steps_eval, np.maximum(trace[:, i], FLOOR), marker=".", label=mode, color=color(mode))
            axes[1, col].plot(train.history["step"], loss[:, i], lw=0.8, label=mode, color=color(mode))
            if train.diverged_at[i] is not None:
                for ax in axes[:, col]:
                    ax.axvline(train.diverged_at[i], ls="--", color=color(mode), lw=1, label=f"{mode} frozen")
        axes[0, col].set(
            yscale="log",
            title=f"{TITLES[name]}: MMD$^2$ vs test data",
            xlabel="training step",
            ylabel=f"MMD$^2$ (log; below {FLOOR:g} drawn at {FLOOR:g})",
        )
        # one spike (a batch the sharpened ring cannot explain) would flatten the axis: show the 1st-99th
        # percentile range and count the points outside it
        window = loss[:, members]
        lo, hi = np.nanpercentile(window, [1, 99])
        pad = 0.1 * (hi - lo)
        outside = int(np.sum((window < lo - pad) | (window > hi + pad)))
        axes[1, col].set(
            ylim=(lo - pad, hi + pad),
            title=f"{TITLES[name]}: training loss",
            xlabel="training step",
            ylabel="mean NLL of the batch (nats)",
        )
        if outside:
            axes[1, col].text(
                0.98,
                0.95,
                f"{outside} points outside the axis (max {np.nanmax(window):.3g})",
                transform=axes[1, col].transAxes,
                ha="right",
                va="top",
                fontsize=8,
            )
        for ax in axes[:, col]:
            ax.legend(loc="lower left", fontsize=8)
    plt.show()


# --- the stored study -------------------------------------------------------------------------------------------


def default_grid(stored: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(all_runs, runs)`` of ``toy2d.csv``: the command's default grid (ReLU conditioners, the settings' seeds),
    every mode; and its vanilla and mollified runs, the paper's comparison."""
    from ..experiments import settings

    grid = (stored.activation == "relu") & stored.seed.isin(settings.SEEDS["toy2d"])
    all_runs = stored[grid].reset_index(drop=True)
    return all_runs, all_runs[all_runs["mode"].isin(_PAIR)].reset_index(drop=True)


def mmd_table(runs: pd.DataFrame):
    """MMD² per seed and its mean, the mean test log-likelihood, diverged runs and the paper's MMD² (its scale)."""
    from ..paper import TOY2D_MMD2

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
    from ..data import MixtureOfGaussians, load_toy2d

    test = load_toy2d("mixture_of_gaussians", n_test=10_000, seed=0)[1]
    return float(MixtureOfGaussians().log_prob(test).mean())


def single_gaussian_loglik() -> float:
    r"""Expected log-likelihood of the mixture under its moment-matched Gaussian, :math:`-\log(2\pi e) -
    \frac12 \log\det\Sigma`, with :math:`\mathrm{Var}\,x_1 = \sigma_{mix}^2 = 4/9` and
    :math:`\mathrm{Var}\,x_2 = \sigma_{mix}^2 + 4`: where a collapsed flow ends."""
    cov_det = (4 / 9) * (4 / 9 + 4)
    return -math.log(2 * math.pi * math.e) - 0.5 * math.log(cov_det)


def _wide(frame: pd.DataFrame, values: str) -> pd.DataFrame:
    return frame.pivot(index="seed", columns="mode", values=values)


def verdict_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per toy, the verdict of the book's one rule on the per-seed log MMD² ratios against the paper's ratio, the
    two ratios of means, seeds won and diverged runs; says the mixture's true and reached log-likelihoods."""
    from ..paper import TOY2D_MMD2

    rows = []
    for name in TOY2D_MMD2:
        sub = runs[runs.dataset == name]
        mmd, ll = _wide(sub, "mmd2"), _wide(sub, "test_loglik")
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
    for mode in _PAIR:
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
        wide = _wide(all_runs[all_runs.dataset == name], "mmd2_best_val")
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
    from ..data import load_toy2d
    from ..metrics import circle_scores, mmd2

    ring = load_toy2d("von_mises", n_test=10_000, seed=0)[1][:n]
    blurred = ring + sigma * torch.randn(ring.shape, generator=torch.Generator().manual_seed(seed))
    reference = circle_scores(blurred, ring)
    reference["mmd2"] = mmd2(blurred, ring)
    return reference


def _ring(all_runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    ring = all_runs[all_runs.dataset == "von_mises"]
    return ring, [m for m in MODE_ORDER if m in set(ring["mode"])]


def circle_table(all_runs: pd.DataFrame, reference: dict) -> pd.DataFrame:
    """Means over seeds of the circle measures per mode, and a last row for the blurred data (``reference``)."""
    ring, modes = _ring(all_runs)
    table = ring.groupby("mode")[list(MEASURES) + ["circle_dist_q90"]].mean().reindex(modes)
    table.loc["data + N(0, 0.1²)"] = [reference[c] for c in table.columns]
    return table


def plot_circle_measures(all_runs: pd.DataFrame, reference: Optional[dict] = None):
    """The von Mises runs under the four measures (dots: seeds, bars: means), the blurred data dashed, the angular
    TV of 10,000 true samples dotted; returns :func:`circle_table`, styled."""
    from ..metrics import angular_tv_floor

    plt = _plt()
    reference = blurred_ring_reference() if reference is None else reference
    ring, modes = _ring(all_runs)
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


def _collapsed(frame: pd.DataFrame) -> pd.Series:
    return (frame.test_loglik - single_gaussian_loglik()).abs() < COLLAPSE_TOL


def collapsed_by_mode(all_runs: pd.DataFrame) -> dict[str, list[int]]:
    """Mode -> the mixture seeds whose run ended as one Gaussian (every mode of ``all_runs``)."""
    mix = all_runs[all_runs.dataset == "mixture_of_gaussians"]
    return {mode: sorted(int(s) for s in g.seed[_collapsed(g)]) for mode, g in mix.groupby("mode")}


def collapse_table(all_runs: pd.DataFrame) -> pd.DataFrame:
    """Says which seeds of each mode collapsed; returns the mixture's test log-likelihood per seed and mode."""
    by_mode = collapsed_by_mode(all_runs)
    modes = [m for m in MODE_ORDER if m in by_mode]
    for mode in modes:
        say(f"{mode:14s} seeds ending as one Gaussian: {by_mode[mode]}")
    mix = all_runs[all_runs.dataset == "mixture_of_gaussians"]
    return _wide(mix, "test_loglik")[modes].round(3)


def ablation(stored: pd.DataFrame) -> pd.DataFrame:
    """The activation ablation: the mixture's vanilla and mollified runs, every activation and seed, with a
    ``collapsed`` column."""
    rows = stored[(stored.dataset == "mixture_of_gaussians") & stored["mode"].isin(_PAIR)].copy()
    rows["collapsed"] = _collapsed(rows)
    return rows


_KEYS = ["activation", "mode", "seed"]


def _second_layer(dead: pd.DataFrame) -> pd.DataFrame:
    return dead[(dead.dataset == "mixture_of_gaussians") & (dead.hidden_layer == 2)]


def dead_table(dead: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """% of each coupling's second-layer units dead at the last step, per ablation run (one column per coupling,
    1 to 5), and whether the run collapsed."""
    dead = _second_layer(dead)
    end = dead[dead.step == dead.iterations].pivot_table(index=_KEYS, columns="coupling", values="dead_fraction")
    end = (100 * end).round().astype(int)
    end.columns = pd.Index([int(c) for c in end.columns], name="% dead, coupling")
    return end.join(ablation(stored).set_index(_KEYS).collapsed)


def plot_dead_units(dead: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The dead fraction of each coupling's second hidden layer over training (ReLU solid, LeakyReLU dotted; mode
    colours of the palette); returns :func:`dead_table`."""
    plt = _plt()
    dead = _second_layer(dead)
    line = {"relu": dict(ls="-", lw=1.3), "leaky_relu": dict(ls=":", lw=1)}
    couplings = sorted(dead.coupling.unique())
    fig, axes = plt.subplots(1, len(couplings), figsize=(13, 3.4), sharey=True, constrained_layout=True)
    for ax, k in zip(axes, couplings):
        for (act, mode, _), g in dead[dead.coupling == k].groupby(_KEYS):
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


# --- the numbers of the prose, checked ------------------------------------------------------------------------


def _span(values) -> str:
    values = np.asarray(values, dtype=float).ravel()
    return f"{values.min():.0f}-{values.max():.0f}%"


def learned(
    stored: Optional[pd.DataFrame] = None,
    *,
    dead: Optional[pd.DataFrame] = None,
    floors: Optional[pd.DataFrame] = None,
    other: Optional[pd.DataFrame] = None,
    reference: Optional[dict] = None,
) -> dict:
    """Every number of chapter 3's prose, computed from the stored results, glued, and checked.

    ``stored`` (``toy2d.csv``), ``dead`` (``toy2d_dead_units.csv``), ``floors`` (``toy2d_noise_floor.csv``) and
    ``other`` (``toy2d_other_cpu.csv``, the same runs on another CPU) default to the shipped files; ``reference``
    to :func:`blurred_ring_reference`. Each statement of the chapter's prose is a :class:`Findings` item with the
    condition that makes it true; :meth:`Findings.check` raises ``AssertionError`` naming those that no longer hold.
    Returns the glued values by key (``toy_...``).
    """
    from ..experiments import results
    from ..metrics import angular_tv_floor
    from ..paper import TOY2D_MMD2

    stored = results.load("toy2d.csv") if stored is None else stored
    dead = results.load("toy2d_dead_units.csv") if dead is None else dead
    floors = results.load("toy2d_noise_floor.csv") if floors is None else floors
    other = results.load("toy2d_other_cpu.csv") if other is None else other
    reference = blurred_ring_reference() if reference is None else reference
    all_runs, runs = default_grid(stored)
    found, facts = Findings(), {}

    def put(key, value):
        facts[key] = glue(key, value)

    # the mixture, the paper's comparison
    single_ll, true_ll = single_gaussian_loglik(), true_loglik()
    mix = runs[runs.dataset == "mixture_of_gaussians"]
    mixw = _wide(mix, "mmd2")
    van_ll = mix[mix["mode"] == "vanilla"].test_loglik.mean()
    put("toy_mix_seeds", len(mixw))
    put("toy_mix_van_mmd", f"{mixw['vanilla'].mean():.1e}")
    put("toy_mix_mol_mmd", f"{mixw['mollification'].mean():.1e}")
    put("toy_mix_van_ll", f"{van_ll:.3f}")
    put("toy_true_ll", f"{true_ll:.3f}")
    found.add(
        "mixture: the vanilla flow has the lower MMD² on every seed, its test log-likelihood the true one's",
        holds=bool((mixw["vanilla"] < mixw["mollification"]).all()) and abs(van_ll - true_ll) < 0.02,
    )

    # the collapse with ReLU conditioners (the activation ablation)
    abl = ablation(stored)
    n_collapsed = abl.groupby(["activation", "mode"]).collapsed.sum()
    n_seeds = int(abl.groupby(["activation", "mode"]).seed.count().min())
    relu_mol, relu_van = int(n_collapsed["relu", "mollification"]), int(n_collapsed["relu", "vanilla"])
    put("toy_single_ll", f"{single_ll:.3f}")
    put("toy_last_seed", int(abl.seed.max()))
    put("toy_n_seeds", n_seeds)
    put("toy_relu_mol_collapsed", relu_mol)
    put("toy_relu_van_collapsed", relu_van)
    found.add(
        "with ReLU conditioners most mollified mixture runs collapse to one Gaussian, no vanilla run",
        holds=relu_mol > n_seeds / 2 and relu_van == 0,
    )

    # the dead units
    table = dead_table(dead, stored)
    couplings = [c for c in table.columns if c != "collapsed"]
    relu_end = table.loc["relu"]
    dead_collapsed = relu_end[relu_end.collapsed][couplings]
    dead_van = relu_end.loc["vanilla"][couplings]
    second = _second_layer(dead)
    at_2k = second[(second["mode"] == "mollification") & (second.step == 2000)]
    at_2k = 100 * at_2k.groupby(_KEYS).dead_fraction.mean()
    put("toy_dead_relu_mol_end", _span(dead_collapsed))
    put("toy_dead_relu_van_end", _span(dead_van))
    put("toy_dead_mol_2k", _span(at_2k))
    found.add(
        "in the collapsed runs more than 80% of the second layers are dead at the end, more than in any vanilla run",
        holds=len(dead_collapsed) > 0
        and float(dead_collapsed.min().min()) > float(dead_van.max().max())
        and float(dead_collapsed.min().min()) > 80,
    )

    # the clean half cannot repair it; half does not collapse
    by_mode = collapsed_by_mode(all_runs)
    collapsed = by_mode.get("mollification", [])
    put("toy_collapsed_seeds", ", ".join(map(str, collapsed)))
    put("toy_clean_half_seeds", ", ".join(map(str, by_mode.get("clean-half", []))))
    found.add(
        "clean-half collapses on exactly the seeds where mollification does; half on none",
        holds=bool(collapsed) and by_mode.get("clean-half") == collapsed and not by_mode.get("half"),
    )

    # LeakyReLU and the noise floor
    floor = noise_floor(floors)
    floor_q95 = floor.quantile(0.95)
    put("toy_floor_n", len(floor))
    put("toy_floor_mean", f"{floor.mean():.1e}")
    put("toy_floor_q95", f"{floor_q95:.1e}")
    leaky = abl[abl.activation == "leaky_relu"]
    lw_mmd, lw_ll = _wide(leaky, "mmd2"), _wide(leaky, "test_loglik").mean()
    leaky_wins = int((lw_mmd["mollification"] < lw_mmd["vanilla"]).sum())
    put("toy_ablation_minutes", f"{leaky.wall_seconds_all_runs.max() / 60:.0f}")
    put("toy_ablation_new", len(abl) - int(((abl.activation == "relu") & abl.seed.isin(range(3))).sum()))
    put("toy_leaky_runs", len(leaky))
    put("toy_leaky_collapsed", int(leaky.collapsed.sum()))
    put("toy_leaky_van_mmd", f"{lw_mmd['vanilla'].mean():.1e}")
    put("toy_leaky_mol_mmd", f"{lw_mmd['mollification'].mean():.1e}")
    put("toy_leaky_mol_wins", leaky_wins)
    put("toy_leaky_worst", f"{leaky.mmd2.max() / floor_q95:.0f}")
    put("toy_collapsed_times", f"{abl[abl.collapsed].mmd2.min() / floor_q95:.0f}")
    put("toy_leaky_ll_gap", f"{abs(lw_ll['mollification'] - lw_ll['vanilla']):.3f}")
    found.add(
        "with LeakyReLU no run collapses, every run within 10x the noise floor's 95th percentile, "
        "mollification lower on some seeds but not all",
        holds=len(leaky) > 0
        and not leaky.collapsed.any()
        and leaky.mmd2.max() < 10 * floor_q95
        and 0 < leaky_wins < n_seeds,
    )
    found.add(
        "the collapsed runs' MMD² lies far above the noise floor",
        holds=bool(abl.collapsed.any()) and abl[abl.collapsed].mmd2.min() > 10 * floor_q95,
    )

    # the circle at lengthscale 1
    ring, modes = _ring(all_runs)
    ringw = {c: _wide(ring, c) for c in ("mmd2", "mmd2_ls0.1", "circle_dist_q50", "circle_dist_q90")}
    van, mol = ringw["mmd2"]["vanilla"], ringw["mmd2"]["mollification"]
    geo = float(np.exp((np.log(van) - np.log(mol)).mean()))
    paper = TOY2D_MMD2["von_mises"]
    paper_ratio = paper["vanilla"] / paper["mollification"]
    wins = int((mol < van).sum())
    put("toy_ring_geo", f"{geo:.1f}")
    put("toy_paper_ratio", f"{paper_ratio:.0f}")
    put("toy_ring_wins", wins)
    put("toy_ring_seeds", len(van))
    found.add(
        "circle: mollification lowers MMD² at lengthscale 1 on average and on most seeds, by less than a "
        "fifth of the paper's ratio",
        holds=1 < geo < paper_ratio / 5 and wins > len(van) / 2,
    )

    # what lengthscale 1 cannot see
    c = ring.groupby("mode")[list(MEASURES) + ["circle_dist_q90"]].mean().reindex(modes)
    const_q50, mol_q50 = c.loc["constant", "circle_dist_q50"], c.loc["mollification", "circle_dist_q50"]
    put("toy_const_mmd", f"{c.loc['constant', 'mmd2']:.1e}")
    put("toy_const_q50", f"{const_q50:.3f}")
    put("toy_blur_q50", f"{reference['circle_dist_q50']:.3f}")
    put("toy_blur_mmd", f"{reference['mmd2']:.0e}")
    found.add(
        "constant noise has the lowest MMD² at lengthscale 1 and the blurred data's median distance",
        holds=c["mmd2"].idxmin() == "constant" and abs(const_q50 / reference["circle_dist_q50"] - 1) < 0.2,
    )
    q50w, sharp = ringw["circle_dist_q50"], ringw["mmd2_ls0.1"]
    put("toy_mol_q50_max", f"{q50w['mollification'].max():.3f}")
    put("toy_mol_q50", f"{mol_q50:.3f}")
    put("toy_const_closer", f"{const_q50 / mol_q50:.1f}")
    put("toy_van_closer", f"{c.loc['vanilla', 'circle_dist_q50'] / mol_q50:.1f}")
    put("toy_n_modes", len(modes))
    put("toy_mol_mmd01", f"{c.loc['mollification', 'mmd2_ls0.1']:.4f}")
    put("toy_sharp_wins", int((sharp.idxmin(axis=1) == "mollification").sum()))
    found.add(
        "annealing puts half the mass nearer the circle than constant noise on every seed, at least twice "
        "as near as vanilla, with the lowest mean MMD² at lengthscale 0.1",
        holds=q50w["mollification"].max() < q50w["constant"].min()
        and c["mmd2_ls0.1"].idxmin() == "mollification"
        and mol_q50 < c.loc["vanilla", "circle_dist_q50"] / 2,
    )
    tv = c["angle_tv"]
    put("toy_tv_const", f"{tv['constant']:.3f}")
    put("toy_tv_floor", f"{angular_tv_floor(10_000):.3f}")
    put("toy_tv_mol", f"{tv['mollification']:.3f}")
    put("toy_tv_van", f"{tv['vanilla']:.3f}")
    found.add(
        "along the circle constant noise has the lowest angular TV, annealing lower than vanilla",
        holds=tv.idxmin() == "constant" and tv["mollification"] < tv["vanilla"],
    )
    q90 = ringw["circle_dist_q90"]
    put("toy_van_q90_min", f"{q90['vanilla'].min():.2f}")
    put("toy_mol_q90_max", f"{q90['mollification'].max():.2f}")
    found.add(
        "vanilla's 90th percentile of the distance from the circle is more than 4x the annealed flows'",
        holds=bool(q90["vanilla"].min() > 4 * q90["mollification"].max()),
    )

    # rounding alone moves the seeds
    o_mix = other[(other.dataset == "mixture_of_gaussians") & (other["mode"] == "mollification")]
    o_collapsed = sorted(int(s) for s in o_mix.seed[_collapsed(o_mix)])
    o_ring = _wide(other[other.dataset == "von_mises"], "mmd2")
    put("toy_other_collapsed", ", ".join(map(str, o_collapsed)))
    put("toy_other_wins", int((o_ring["mollification"] < o_ring["vanilla"]).sum()))
    put("toy_other_seeds", len(o_ring))
    found.add(
        "on another CPU the same seeds collapse as often, but on other seeds",
        holds=o_collapsed != collapsed and len(o_collapsed) == len(collapsed),
    )
    found.check()
    return facts
