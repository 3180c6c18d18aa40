"""Chapter 3's figures of the live runs: data, scores, snapshots, the film, the training curves.

Each is one call of ``book/03_toys.ipynb``; colours from :mod:`molli_utils.palette`. The drawing helpers
(:func:`square_grid`, :func:`hist2d`, :func:`quiver`, :func:`density_image`, :func:`model_samples`) are public
for the chapter's own cells and for :mod:`.stored`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ...palette import color
from .. import say
from .names import FLOOR, LIM, PAIR, TITLES

__all__ = [
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
]

_EDGES = np.linspace(-LIM, LIM, 81)


def _plt():
    import matplotlib.pyplot as plt

    return plt


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
    from ...models import flow_log_prob

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
    from ...data import MixtureOfGaussians

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
    from ...data import MixtureOfGaussians

    plt = _plt()
    grid, true = square_grid(21), MixtureOfGaussians().score(square_grid(21))
    fig, axes = plt.subplots(2, 3, figsize=(12, 8), constrained_layout=True)
    hist2d(axes[0, 0], test, "data (test set)")
    quiver(axes[1, 0], grid, true, "true score")
    for col, mode in enumerate(PAIR, start=1):
        model = final[("mixture_of_gaussians", mode)]
        hist2d(axes[0, col], model_samples(model, 10_000, seed=seed), f"{mode}: 10k model samples")
        quiver(axes[1, col], grid, true, "", color="0.8")
        quiver(axes[1, col], grid, model_score(model, grid), f"{mode}: estimated score (black)")
    plt.show()


def score_cosines(final: dict, model_score) -> pd.DataFrame:
    """Mean cosine between each mixture flow's score and the true one, inside the band ``|x_2| < 1`` and outside."""
    from ...data import MixtureOfGaussians

    grid = square_grid(21)
    true, band = MixtureOfGaussians().score(grid), grid[:, 1].abs() < 1.0
    rows = []
    for mode in PAIR:
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
    from ...plotting import animate

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
        members = [runs.index((name, m)) for m in PAIR]
        for mode, i in zip(PAIR, members):
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
