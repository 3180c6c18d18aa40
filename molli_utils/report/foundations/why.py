"""Chapter 2, *Why likelihood training struggles*: its figures, tables and the two flows it trains.

The chapter keeps in view the Theorem-1 construction and the continuation method; what only draws,
tabulates or trains the REAL-NVP pair lives here, one call per use. Colours from :mod:`molli_utils.palette`.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch

from molli_utils.palette import color

from .one_line import blue_shades

__all__ = [
    "plot_circle_data",
    "candidate_mmd",
    "plot_theorem1",
    "train_vanilla_and_mollified",
    "plot_flow_likelihood",
    "plot_flow_measures",
    "flow_summary",
    "plot_final_models",
    "reference_scores",
    "plot_continuation",
    "best_bandwidths",
    "plot_mollified_fit",
]


def _plt():
    import matplotlib.pyplot as plt

    return plt


def plot_circle_data(x_train: torch.Tensor, circle) -> None:
    """Left: the training points in the plane; right: their angles against the von Mises density."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), constrained_layout=True)
    axes[0].scatter(x_train[:, 0], x_train[:, 1], s=2, alpha=0.4, color=color("data"))
    axes[0].set_aspect("equal")
    axes[0].set(xlabel="$x_1$", ylabel="$x_2$", title="training data: a 1D curve in $\\mathbb{R}^2$")
    grid = torch.linspace(-math.pi, math.pi, 400, dtype=torch.float64)
    axes[1].hist(
        circle.angle(x_train).numpy(), bins=60, density=True, alpha=0.3, color=color("data"), label="training angles"
    )
    axes[1].plot(grid, circle.log_prob_angle(grid).exp(), color=color("data"), label="true von Mises density")
    axes[1].set(
        xlabel="angle $\\vartheta$ (rad)",
        ylabel="density along the circle",
        title="few samples near $\\vartheta = \\pm\\pi$",
    )
    axes[1].legend(fontsize=8, loc="upper left")
    plt.show()


#: The three candidates of the Theorem-1 sweep: the true one in the data's black, the wrong ones greyer.
_CANDIDATE_STYLE = {
    "true von Mises": dict(color=color("data"), ls="-"),
    "uniform": dict(color=color("diffusion"), ls="--"),
    "flipped von Mises": dict(color=color("vanilla"), ls="-."),
}


def _uniform_angles(n, gen):
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    return (2 * u - 1) * math.pi


def _samplers(circle) -> dict:
    from molli_utils.data import VonMisesCircle

    return {
        "true von Mises": circle.sample_angles,
        "uniform": _uniform_angles,
        "flipped von Mises": VonMisesCircle(mu=math.pi).sample_angles,
    }


def _sample_blurred(sample_angles, delta, n, seed):
    """n samples of a blurred candidate: an angle, its point on the circle, plus noise of std delta."""
    gen = torch.Generator().manual_seed(seed)
    a = sample_angles(n, gen)
    on_circle = torch.stack([a.cos(), a.sin()], dim=-1)
    return on_circle + delta * torch.randn(on_circle.shape, generator=gen, dtype=torch.float64)


def candidate_mmd(circle, x_test, deltas, n_samples: int, seed: int = 0) -> pd.DataFrame:
    """MMD² (RBF, lengthscale 1) between samples of each blurred candidate and the test set, per bandwidth."""
    from molli_utils.metrics import mmd2

    rows = {"bandwidth": np.asarray(deltas)}
    for name, draw in _samplers(circle).items():
        rows[name] = [mmd2(_sample_blurred(draw, d, n_samples, seed + j), x_test) for j, d in enumerate(deltas)]
    return pd.DataFrame(rows).set_index("bandwidth")


def plot_theorem1(deltas, train_ll: Mapping, mmd: pd.DataFrame, circle, n_samples: int, seed: int = 0):
    """Theorem 1 on the screen: likelihood vs bandwidth, MMD² vs bandwidth, sample angles at the smallest."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), layout="constrained")
    for name, ll in train_ll.items():
        axes[0].semilogx(deltas, ll, label=name, **_CANDIDATE_STYLE[name])
        axes[1].semilogx(mmd.index, mmd[name], marker="o", **_CANDIDATE_STYLE[name])
    shrinks = "bandwidth $\\delta$ (shrinks to the right)"
    axes[0].set(xlabel=shrinks, ylabel="mean train log-likelihood (nats)", title="likelihood grows without bound")
    axes[1].set(xlabel=shrinks, ylabel="MMD$^2$ to test data", title="...but the wrong models stay wrong")
    for ax in axes[:2]:
        ax.invert_xaxis()
    bins = np.linspace(-math.pi, math.pi, 41)
    for name, draw in _samplers(circle).items():
        x = _sample_blurred(draw, deltas[-1], 20 * n_samples, seed)
        axes[2].hist(
            circle.angle(x).numpy(),
            bins=bins,
            density=True,
            histtype="step",
            color=_CANDIDATE_STYLE[name]["color"],
            ls=_CANDIDATE_STYLE[name]["ls"],
        )
    grid = torch.linspace(-math.pi, math.pi, 400, dtype=torch.float64)
    axes[2].plot(grid, circle.log_prob_angle(grid).exp(), color=color("data"), ls=":", lw=2, label="data (von Mises)")
    axes[2].set(
        xlabel="angle $\\vartheta$ of samples (rad)",
        ylabel="density along the circle",
        title=f"samples at $\\delta$ = {deltas[-1]:.3f}",
    )
    fig.legend(loc="outside lower center", ncol=4, fontsize=9)
    plt.show()


def _sample_measures(x):
    from molli_utils.metrics import angular_tv, circle_distance

    finite = torch.isfinite(x).all(1)
    x = x[finite].double()
    return {
        "off_circle": circle_distance(x).median().item(),
        "angle_tv": angular_tv(x),
        "nonfinite_samples": int((~finite).sum()),
    }


def train_vanilla_and_mollified(
    x_flow: torch.Tensor,
    steps: int,
    mollifier,
    seed: int = 0,
    *,
    batch_size: int = 256,
    lr: float = 5e-4,
    n_samples: int = 2000,
) -> dict:
    """Train ``realnvp_2d(seed)`` twice on ``x_flow`` with ``molli_utils.train``: on clean batches, and with
    ``mollifier``. Records the clean training log-likelihood (about 400 times) and, about 30 times, the
    median distance of ``n_samples`` samples from the circle and their angular error (the same draws for
    both runs at a step, without touching the training's random state). A ``DivergenceError`` is caught
    and reported: the run keeps its model and stops there."""
    import time

    from molli_utils import DivergenceError, TrainConfig, train
    from molli_utils.models import realnvp_2d

    ll_every, eval_every = max(1, steps // 400), max(1, steps // 30)
    runs = {}
    for name, moll in [("vanilla", None), ("mollified", mollifier)]:
        model = realnvp_2d(seed=seed)  # the same initial weights for both
        log = {"ll_step": [], "ll": [], "evals": []}

        def record(step, model, force=False, log=log):
            with torch.no_grad():
                if force or step % ll_every == 0:
                    log["ll_step"].append(step)
                    log["ll"].append(model.log_prob(x_flow).mean().item())
                if force or step % eval_every == 0:
                    with torch.random.fork_rng():
                        torch.manual_seed(seed + step)
                        x, _ = model.sample(n_samples)
                    log["evals"].append({"step": step, **_sample_measures(x)})

        record(0, model)
        config = TrainConfig(batch_size=batch_size, lr=lr, steps=steps, seed=seed, progress=False, desc=name)
        start = time.perf_counter()
        try:
            result = train(model, x_flow, config, mollifier=moll, callback=record)
            end_step, note = result.final_step, f"finished, {result.num_nonfinite} non-finite steps skipped"
        except DivergenceError as err:  # the blow-up: show it, keep the model
            end_step, note = err.step, f"STOPPED: {err}"
        if log["ll_step"][-1] != end_step:
            record(end_step, model, force=True)
        runs[name] = {
            "model": model,
            "ll_step": np.array(log["ll_step"]),
            "ll": np.array(log["ll"]),
            "end_step": end_step,
            "evals": pd.DataFrame(log["evals"]),
        }
        print(f"{name:9s}: {time.perf_counter() - start:5.1f} s, {note}")
    return runs


def _noise_std(mollifier, steps):
    return np.sqrt([mollifier.noise_level(int(s)) for s in steps])


def plot_flow_likelihood(runs: Mapping, mollifier, steps: int):
    """Clean training log-likelihood of both runs, and the mollified run's noise std (right axis)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.4), layout="constrained")
    for name in ("vanilla", "mollified"):
        ax.plot(
            runs[name]["ll_step"],
            runs[name]["ll"],
            color=color("mollification" if name == "mollified" else "vanilla"),
            lw=1.2,
            label=f"{name}: mean train log-likelihood",
        )
    ax.set(
        xlabel="training step",
        ylabel="mean log-likelihood of the clean\ntraining points (nats)",
        title="vanilla chases the infinite likelihood;\nmollified stays bounded while there is noise",
    )
    ax2 = ax.twinx()
    grid = np.arange(steps)
    ax2.semilogy(
        grid,
        _noise_std(mollifier, grid),
        color=color("data"),
        ls=":",
        lw=1,
        label="noise std $\\sqrt{\\gamma}$ (mollified run)",
    )
    ax2.set_ylabel("noise std $\\sqrt{\\gamma}$ of the mollified batches")
    ax2.set_ylim(1e-2, 1.5)
    fig.legend(loc="outside lower center", ncol=3, fontsize=8)
    plt.show()


def plot_flow_measures(runs: Mapping, mollifier, steps: int, floor_tv: float, n_samples: int = 2000):
    """Distance of the samples from the circle (left) and their angular error (right) during training."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for name in ("vanilla", "mollified"):
        ev, c = runs[name]["evals"], color("mollification" if name == "mollified" else "vanilla")
        axes[0].semilogy(ev["step"], ev["off_circle"], color=c, marker="o", ms=3, label=name)
        axes[1].plot(ev["step"], ev["angle_tv"], color=c, marker="o", ms=3)
    grid = np.arange(steps)
    axes[0].semilogy(
        grid, _noise_std(mollifier, grid), color=color("data"), ls=":", lw=1, label="noise std (mollified run)"
    )
    lowest = min(runs[n]["evals"]["off_circle"].min() for n in runs)
    axes[0].set_ylim(0.5 * lowest, 1.5)
    axes[0].set(
        xlabel="training step", ylabel="median $|\\,\\|x\\| - 1|$ of model samples", title="mass pulled onto the circle"
    )
    axes[1].axhline(floor_tv, color=color("data"), ls="--", lw=0.8, label=f"{n_samples} true samples: the floor")
    axes[1].set(
        xlabel="training step",
        ylabel="total variation, sample angles vs von Mises",
        title="error of the density along the circle",
    )
    fig.legend(loc="outside lower center", ncol=4, fontsize=9)
    plt.show()


def _collapses(ll, drop: float = 1.0) -> int:
    """How often the log-likelihood fell more than ``drop`` nats below its best so far (non-finite counts)."""
    count, below, best = 0, False, -np.inf
    for v in ll:
        best = max(best, v) if np.isfinite(v) else best
        now_below = not np.isfinite(v) or v < best - drop
        count += now_below and not below
        below = now_below
    return count


def flow_summary(runs: Mapping, mollifier, steps: int) -> pd.DataFrame:
    """One row per run: steps done, final and highest training log-likelihood, the highest while the noise
    std was above 0.1, collapses (falls of more than a nat below the best), sample measures, and how often
    the mollified run's angular error was the lower one."""
    ev_v, ev_m = runs["vanilla"]["evals"], runs["mollified"]["evals"]
    both = ev_v.merge(ev_m, on="step", suffixes=("_v", "_m"))
    both = both[both["step"] > 0]
    wins = int((both["angle_tv_m"] < both["angle_tv_v"]).sum())
    rows = []
    for name, r in runs.items():
        ev = r["evals"]
        # "noise std > 0.1": the mollified run's noisy phase (not defined for vanilla)
        mollified = name == "mollified"
        noisy_ll = np.array([mollified and mollifier.noise_level(int(s)) > 0.1**2 for s in r["ll_step"]])
        noisy_ev = np.array([mollified and mollifier.noise_level(int(s)) > 0.1**2 for s in ev["step"]])
        late = ev[ev["step"] >= steps // 2]
        rows.append(
            {
                "run": name,
                "steps done": r["end_step"],
                "final train LL": r["ll"][-1],
                "highest train LL": r["ll"].max(),
                "highest LL, noise std > 0.1": r["ll"][noisy_ll].max() if noisy_ll.any() else np.nan,
                "collapses": _collapses(r["ll"]),
                "final off-circle": ev["off_circle"].iloc[-1],
                "lowest off-circle": ev["off_circle"].min(),
                "lowest off-circle, noise std > 0.1": ev["off_circle"][noisy_ev].min() if noisy_ev.any() else np.nan,
                "final angle TV": ev["angle_tv"].iloc[-1],
                "lowest angle TV": ev["angle_tv"].min(),
                "mean angle TV, 2nd half": late["angle_tv"].mean(),
                "evaluations": len(both),
                "lower angle TV": wins if name == "mollified" else len(both) - wins,
            }
        )
    return pd.DataFrame(rows).set_index("run")


def plot_final_models(runs: Mapping, circle, n_samples: int = 2000, seed: int = 0) -> dict:
    """Samples of the two final flows (left, middle) and the angles of 20 times as many (right).
    Returns the ``n_samples`` samples of each, in float64, for scoring."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.6), layout="constrained")
    ring = np.linspace(0, 2 * np.pi, 400)
    bins = np.linspace(-math.pi, math.pi, 37)
    final = {}
    for ax, name in zip(axes[:2], ("vanilla", "mollified")):
        c = color("mollification" if name == "mollified" else "vanilla")
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            x, _ = runs[name]["model"].sample(n_samples)
        final[name] = x.double()
        x = x[torch.isfinite(x).all(1)].numpy()
        outside = int((np.abs(x) > 1.6).any(1).sum())
        ax.plot(np.cos(ring), np.sin(ring), color=color("data"), lw=0.8, ls="--")
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, color=c)
        ax.set(
            xlim=(-1.6, 1.6),
            ylim=(-1.6, 1.6),
            aspect="equal",
            xlabel="$x_1$",
            ylabel="$x_2$",
            title=f"{name}, after {runs[name]['end_step']} steps\n({outside} of {n_samples} outside the window)",
        )
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            many, _ = runs[name]["model"].sample(20 * n_samples)
        many = many[torch.isfinite(many).all(1)].double()
        axes[2].hist(circle.angle(many).numpy(), bins=bins, density=True, histtype="step", color=c, lw=1.5, label=name)
    grid = torch.linspace(-math.pi, math.pi, 400, dtype=torch.float64)
    axes[2].plot(grid, circle.log_prob_angle(grid).exp(), color=color("data"), ls=":", label="data (von Mises)")
    axes[2].set(
        xlabel="angle $\\vartheta$ of model samples (rad)",
        ylabel="density along the circle",
        title="final models:\ndensity along the circle",
    )
    fig.legend(*axes[2].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=9)
    plt.show()
    return final


def reference_scores(circle, x_test, final: Mapping, n_samples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``circle_scores`` (lengthscales 1 and 0.1) of exact data, data plus N(0, 0.1²), and ``final``'s samples."""
    from molli_utils.metrics import circle_scores

    exact = circle.sample(n_samples, seed=seed + 7).double()
    noise = torch.randn(exact.shape, generator=torch.Generator().manual_seed(seed + 8), dtype=torch.float64)
    scored = {"data": exact, "data + N(0, 0.1^2)": exact + 0.1 * noise, **final}
    return pd.DataFrame({name: circle_scores(x, x_test, lengthscales=(1.0, 0.1)) for name, x in scored.items()}).T


def plot_continuation(
    f_smooth: Callable, theta0: float, path, theta_plain: float, theta_cont: float, levels=(3.0, 1.0, 0.6, 0.3, 0.0)
):
    """Left: f_ρ for a few ρ (darker blue: smoother) and their minimisers; right: where plain gradient descent
    (vanilla red) and continuation (mollification blue) end on f."""
    plt = _plt()
    dense = np.linspace(-8, 8, 32001)
    _, shades = blue_shades(len(levels))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for rho, shade in zip(levels, shades[::-1]):
        y = f_smooth(dense, rho)
        axes[0].plot(dense, y, color=shade, label=f"$\\rho$ = {rho}")
        i = np.argmin(y)
        axes[0].plot(dense[i], y[i], "o", color=shade)
    axes[0].axvline(theta0, color=color("diffusion"), ls=":", label="start $\\theta_0$")
    axes[0].set(xlabel="$\\theta$", ylabel="$f_\\rho(\\theta)$", title="smoothed objectives and their minimisers")
    axes[0].legend(fontsize=8, loc="upper center", ncol=2)
    blue, red = color("mollification"), color("vanilla")
    axes[1].plot(dense, f_smooth(dense, 0.0), color=color("data"), lw=1, label="$f$ (no smoothing)")
    axes[1].plot(path, f_smooth(np.array(path), 0.0), "o-", color=blue, ms=4, label="continuation path")
    axes[1].plot(theta_plain, f_smooth(theta_plain, 0.0), "s", color=red, ms=9, label="plain GD ends here")
    axes[1].plot(theta_cont, f_smooth(theta_cont, 0.0), "*", color=blue, ms=14, label="continuation ends here")
    axes[1].set(xlabel="$\\theta$", ylabel="$f(\\theta)$", title="following the minimiser as $\\rho \\to 0$")
    axes[1].legend(fontsize=8, loc="upper center")
    plt.show()


def best_bandwidths(deltas, lls: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per candidate: the bandwidth of the highest mean log-likelihood, that value, and the value at the smallest."""
    rows = []
    for name, ll in lls.items():
        i = int(np.argmax(ll))
        rows.append(
            {
                "candidate": name,
                "best bandwidth": deltas[i],
                "max mean log-lik.": ll[i],
                "log-lik. at smallest bandwidth": ll[-1],
            }
        )
    return pd.DataFrame(rows).set_index("candidate")


def plot_mollified_fit(deltas, lls: Mapping[str, np.ndarray], gamma: float):
    """Mean log-likelihood of mollified data per bandwidth: a finite maximum near sqrt(γ)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.4), layout="constrained")
    for name, ll in lls.items():
        ax.semilogx(deltas, ll, label=name, **_CANDIDATE_STYLE[name])
    ax.axvline(math.sqrt(gamma), color=color("mollification"), ls=":", label="noise std $\\sqrt{\\gamma}$")
    ax.invert_xaxis()
    ax.set(
        xlabel="bandwidth $\\delta$ (shrinks to the right)",
        ylabel="mean log-likelihood of mollified data",
        title="with noise, the likelihood has a finite maximum",
    )
    ax.legend(fontsize=8, loc="lower left")
    plt.show()
