"""Chapters 1 and 2, *The one line* and *Why likelihood training struggles*: their figures, tables and findings.

The chapters keep in view the code that teaches (the training loops with the one line, the
Theorem-1 construction, the continuation method); what only draws, tabulates or checks lives
here, one call per use. Every figure takes its colours from :mod:`molli_utils.palette`.

The findings ("What we learned") are computed, checked and glued by :func:`one_line_learned`
and :func:`why_learned`: each raises ``AssertionError`` (through
:meth:`molli_utils.findings.Findings.check`) the day a sentence of the chapter's prose stops
holding, so the build fails rather than print a wrong statement.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Optional

import numpy as np
import pandas as pd
import torch

from molli_utils import paper
from molli_utils.findings import Findings, glue_all
from molli_utils.palette import color
from molli_utils.schedules import cosine_schedule, linear_schedule, log_snr, sigmoid_schedule

__all__ = [
    "SCHEDULES",
    "tau_table",
    "plot_tau_schedules",
    "schedule_table",
    "plot_schedules",
    "paper_schedule_tables",
    "draw_cloud",
    "tau_animation",
    "moving_optimum",
    "plot_moving_optimum",
    "photo",
    "blur_and_noise",
    "one_line_numbers",
    "one_line_learned",
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
    "stored_divergence",
    "why_numbers",
    "why_learned",
]

#: The three schedules of the paper's ablation (Table 2), by name.
SCHEDULES: dict[str, Callable] = {"sigmoid": sigmoid_schedule, "cosine": cosine_schedule, "linear": linear_schedule}
#: How each schedule is drawn: the paper's sigmoid in mollification blue; cosine and linear,
#: the diffusion models' schedules, in diffusion grey.
_SCHEDULE_STYLE = {
    "sigmoid": dict(color=color("mollification"), ls="-"),
    "cosine": dict(color=color("diffusion"), ls="--"),
    "linear": dict(color=color("diffusion"), ls=":"),
}


def _plt():
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------- chapter 1


def _blue_shades(n: int):
    import matplotlib as mpl

    cmap = mpl.colors.LinearSegmentedColormap.from_list("tau", ["#ffffff", color("mollification")])
    return cmap, [cmap(v) for v in np.linspace(0.35, 1.0, n)]


def tau_table(taus, u: Optional[np.ndarray] = None) -> pd.DataFrame:
    """Per temperature τ of the sigmoid schedule: where γ = 1/2 (SNR = 1), and γ and log-SNR halfway."""
    u = np.linspace(0.0, 1.0, 501) if u is None else np.asarray(u)
    rows = []
    for tau in taus:
        gamma = sigmoid_schedule(u, 1.0, tau=tau)
        half = float(sigmoid_schedule(0.5, 1.0, tau=tau))
        rows.append(
            {
                "tau": float(tau),
                "t/T where gamma = 1/2": u[np.argmax(gamma <= 0.5)],
                "gamma at t/T = 0.5": half,
                "log-SNR at t/T = 0.5": float(log_snr(half)),
            }
        )
    return pd.DataFrame(rows).set_index("tau")


def plot_tau_schedules(taus, u: Optional[np.ndarray] = None):
    """The paper's Fig. 3: the sigmoid schedule (left) and its log-SNR (right), one blue per τ."""
    import matplotlib as mpl

    plt = _plt()
    u = np.linspace(0.0, 1.0, 501) if u is None else np.asarray(u)
    cmap, shades = _blue_shades(len(taus))
    fig, (ax_g, ax_s) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for tau, shade in zip(taus, shades):
        gamma = sigmoid_schedule(u, 1.0, tau=tau)
        ax_g.plot(u, gamma, color=shade, lw=1.8)
        ax_s.plot(u[1:], log_snr(gamma[1:]), color=shade, lw=1.8)  # -inf at u = 0
    ax_g.set(
        xlabel="training progress $t/T$", ylabel=r"noise level $\sigma_t^2 = \gamma(t/T)$", title="sigmoid schedule"
    )
    ax_s.axhline(0.0, color=color("diffusion"), lw=0.8, ls=":")
    ax_s.set(
        xlabel="training progress $t/T$",
        ylabel=r"log-SNR $\lambda_t$",
        ylim=(-6, 16),
        title="log signal-to-noise ratio",
    )
    norm = mpl.colors.Normalize(min(taus), max(taus))
    sub = mpl.colors.LinearSegmentedColormap.from_list("tau_used", shades)
    fig.colorbar(mpl.cm.ScalarMappable(norm, sub), ax=[ax_g, ax_s], label=r"temperature $\tau$")
    plt.show()


def schedule_table(marks=(0.0, 0.25, 0.5, 0.75, 1.0)) -> pd.DataFrame:
    """γ and log-SNR of the three schedules at a few values of t/T."""
    marks = np.asarray(marks, dtype=float)
    gammas = {name: np.asarray(s(marks, 1.0), dtype=float) for name, s in SCHEDULES.items()}
    return pd.DataFrame(
        {f"gamma {k}": g for k, g in gammas.items()} | {f"log-SNR {k}": log_snr(g) for k, g in gammas.items()},
        index=pd.Index(marks, name="t/T"),
    )


def plot_schedules(u: Optional[np.ndarray] = None):
    """The three schedules (left) and their log-SNR (right)."""
    plt = _plt()
    u = np.linspace(0.0, 1.0, 501) if u is None else np.asarray(u)
    inner = u[1:-1]  # the linear schedule's log-SNR is infinite at the ends
    fig, (ax_g, ax_s) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for name, schedule in SCHEDULES.items():
        label = r"sigmoid ($\tau = 0.7$)" if name == "sigmoid" else name
        ax_g.plot(u, schedule(u, 1.0), lw=2, label=label, **_SCHEDULE_STYLE[name])
        ax_s.plot(inner, log_snr(schedule(inner, 1.0)), lw=2, **_SCHEDULE_STYLE[name])
    ax_g.set(xlabel="training progress $t/T$", ylabel=r"noise level $\gamma(t/T)$", title="noise schedules")
    ax_g.legend()
    ax_s.axhline(0.0, color=color("data"), lw=0.6, ls=":")
    ax_s.set(
        xlabel="training progress $t/T$",
        ylabel=r"log-SNR $\lambda_t$",
        ylim=(-8, 10),
        title="log signal-to-noise ratio",
    )
    plt.show()


def paper_schedule_tables(show: bool = True) -> pd.DataFrame:
    """The paper's Table 2 (FID by schedule) with Table 1's vanilla FID beside it; prints where they disagree."""
    rows = {m: row for (_, m), row in paper.SCHEDULES_FID.items()}
    table2 = pd.DataFrame(rows).T
    vanilla1 = {m: paper.IMAGES_FID[("cifar10", m)]["vanilla"] for m in table2.index}
    table2.insert(1, "vanilla in Table 1", pd.Series(vanilla1))
    table2.index.name = "FID on CIFAR-10"
    if show:
        for d in paper.table2_disagreements():
            same = ", ".join(d["table1_models_with_that_value"])
            print(
                f"{d['model']}, {d['column']}: Table 2 prints {d['table2']}, Table 1 "
                f"{d['table1']}\n  ({d['table2']} is the {d['column']} FID of {same} in Table 1)"
            )
    return table2


def draw_cloud(ax, points, title: str, lim: float = 4.0, size: float = 1.0) -> None:
    """Scatter 2D points in mollification blue over the unit circle (dashed, the data's colour)."""
    outline = np.linspace(0, 2 * np.pi, 200)
    pts = np.asarray(points)
    ax.scatter(pts[:, 0], pts[:, 1], s=size, alpha=0.3, color=color("mollification"), rasterized=True)
    ax.plot(np.cos(outline), np.sin(outline), color=color("data"), lw=0.9, ls="--", zorder=3)
    ax.set_title(title, fontsize=10)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")


def tau_animation(points: torch.Tensor, frames, seed: int = 0, marks=(0.25, 0.5)):
    """A slider over τ: the schedule (dashed: τ = 0.7) and the mollified circle at two points of the horizon.

    The same noise in every frame, so that only τ changes. Returns the player (the cell's last expression).
    """
    from molli_utils.plotting import animate

    plt = _plt()
    u = np.linspace(0.0, 1.0, 501)
    eps = torch.randn(points.shape, generator=torch.Generator().manual_seed(seed))
    fig, axes = plt.subplots(1, 3, figsize=(9.5, 3.3), dpi=72, constrained_layout=True)
    axes[0].plot(u, sigmoid_schedule(u, 1.0, tau=0.7), color=color("diffusion"), ls="--")
    (curve,) = axes[0].plot(u, sigmoid_schedule(u, 1.0), color=color("mollification"), lw=2)
    for m in marks:
        axes[0].axvline(m, color=color("data"), lw=0.8, ls=":")
    axes[0].set(xlabel="training progress $t/T$", ylabel=r"$\gamma(t/T)$")
    clouds = []
    for ax in axes[1:]:
        draw_cloud(ax, points, "", lim=3.0)
        clouds.append(ax.collections[0])
        ax.set(xticks=[], yticks=[])

    def draw(tau):
        curve.set_ydata(sigmoid_schedule(u, 1.0, tau=tau))
        axes[0].set_title(rf"sigmoid schedule, $\tau$ = {tau:.1f}", fontsize=10)
        for ax, cloud, m in zip(axes[1:], clouds, marks):
            g = float(sigmoid_schedule(m, 1.0, tau=tau))
            cloud.set_offsets(np.sqrt(1 - g) * points.numpy() + np.sqrt(g) * eps.numpy())
            ax.set_title(rf"$t/T$ = {m}: $\gamma$ = {g:.3f}", fontsize=10)

    return animate(fig, draw, frames)


def moving_optimum(history: Mapping[str, list], mollifier, data: torch.Tensor) -> dict:
    """The toy Gaussian's parameters against the minimiser of each step's objective.

    For ``N(mu, diag(v))`` the minimiser of the mollified objective at noise level γ is
    ``mu = sqrt(1 - γ) E[x]`` and ``v = (1 - γ) Var[x] + γ``. ``history`` holds the learned
    ``"mu"`` and ``"std"`` per step. Returns the arrays and the largest gaps.
    """
    learned_mu, learned_std = np.array(history["mu"]), np.array(history["std"])
    steps = np.arange(len(learned_mu))
    gamma = np.array([mollifier.noise_level(int(k)) for k in steps])[:, None]
    data = data.detach().cpu()
    mean_x, var_x = data.mean(0).numpy(), data.var(0).numpy()
    target_mu = np.sqrt(1 - gamma) * mean_x
    target_std = np.sqrt((1 - gamma) * var_x + gamma)
    return {
        "steps": steps,
        "learned_mu": learned_mu,
        "learned_std": learned_std,
        "target_mu": target_mu,
        "target_std": target_std,
        "mean_x": mean_x,
        "var_x": var_x,
        "gap_mu": float(np.abs(learned_mu - target_mu).max()),
        "gap_std": float(np.abs(learned_std - target_std).max()),
    }


def plot_moving_optimum(track: Mapping[str, np.ndarray]):
    """Learned mean and standard deviation (blue, one line style per coordinate) against the moving optimum (black)."""
    plt = _plt()
    fig, (ax_m, ax_s) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    steps = track["steps"]
    for i, ls in enumerate(["-", "--"]):
        ax_m.plot(
            steps,
            track["learned_mu"][:, i],
            color=color("mollification"),
            lw=1.5,
            ls=ls,
            label=f"learned $\\mu_{i + 1}$",
        )
        ax_m.plot(steps, track["target_mu"][:, i], color=color("data"), lw=0.8, ls=":")
        ax_s.plot(
            steps,
            track["learned_std"][:, i],
            color=color("mollification"),
            lw=1.5,
            ls=ls,
            label=f"learned $\\sqrt{{v_{i + 1}}}$",
        )
        ax_s.plot(steps, track["target_std"][:, i], color=color("data"), lw=0.8, ls=":")
    for ax in (ax_m, ax_s):
        ax.plot([], [], color=color("data"), ls=":", lw=0.8, label=r"optimum of $\mathcal{H}(\theta, \gamma_t)$")
        ax.legend(fontsize=8)
    ax_m.set(xlabel="training step $t$", ylabel="mean", title="model mean")
    ax_s.set(xlabel="training step $t$", ylabel="standard deviation", title="model standard deviation")
    plt.show()


def photo(size: int = 64) -> torch.Tensor:
    """scikit-learn's ``china.jpg`` (shipped with it, no download): the central square as ``[3, size, size]``
    in [0, 1]."""
    import torch.nn.functional as F
    from sklearn.datasets import load_sample_image

    picture = load_sample_image("china.jpg")  # uint8 [427, 640, 3]
    side = min(picture.shape[:2])
    left = (picture.shape[1] - side) // 2
    square = np.ascontiguousarray(picture[:, left : left + side])
    image = torch.from_numpy(square).permute(2, 0, 1).float() / 255.0
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0].clamp(
        0.0, 1.0
    )


def _show(ax, img, title, edge):
    ax.imshow(img.permute(1, 2, 0).clamp(0.0, 1.0).numpy())  # clipped for display only
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set(color=edge, lw=2)


def blur_and_noise(image: torch.Tensor, horizon: int, fractions, seed: int = 0) -> pd.DataFrame:
    """The photo as the model sees it at ``fractions`` of the horizon: blurring (top, purple frames) and
    Gaussian mollification (bottom, blue frames). Returns the table of heat time, σ_B and pixel std."""
    from molli_utils.mollifiers import Mollifier

    plt = _plt()
    blurrer = Mollifier("blur", horizon=horizon)
    noiser = Mollifier("gaussian", horizon=horizon, generator=torch.Generator().manual_seed(seed))
    centred = 2.0 * image - 1.0  # Gaussian mollification acts on data about 0
    size = image.shape[-1]
    fig, axes = plt.subplots(2, len(fractions), figsize=(10.5, 4.3), constrained_layout=True)
    rows = []
    for j, frac in enumerate(fractions):
        step = int(round(frac * horizon))
        heat_time = blurrer.blur_time(step, size)
        sigma_b = (2.0 * heat_time) ** 0.5
        blurred = blurrer(image, step)
        noised = (noiser(centred, step) + 1.0) / 2.0
        level = noiser.noise_level(step)
        head = f"t/T = {frac:.2f}\n"
        _show(
            axes[0, j],
            blurred,
            head + (rf"$\sigma_B$ = {sigma_b:.2f} px" if blurrer.active(step) else "clean"),
            color("blur"),
        )
        _show(
            axes[1, j],
            noised,
            head + (rf"$\gamma$ = {level:.3f}" if noiser.active(step) else "clean"),
            color("mollification"),
        )
        rows.append(
            {
                "t/T": frac,
                "step": step,
                "heat time h": heat_time,
                "sigma_B (px)": sigma_b,
                "pixel std, blurred": blurred.std(dim=(-2, -1)).mean().item(),
                "gamma": level,
            }
        )
    axes[0, 0].set_ylabel("blurring", fontsize=10)
    axes[1, 0].set_ylabel("Gaussian noise", fontsize=10)
    plt.show()
    return pd.DataFrame(rows).set_index("t/T")


def one_line_numbers(
    by_tau: pd.DataFrame, near: Mapping[float, float], track: Mapping, blur_table: pd.DataFrame, toy_steps: int
) -> dict:
    """The numbers chapter 1's "What we learned" states (schedules and the paper's tables are recomputed here)."""
    sched = schedule_table()
    cross = by_tau["t/T where gamma = 1/2"]
    t2 = paper.SCHEDULES_FID[("cifar10", "realnvp")]
    t1 = paper.IMAGES_FID[("cifar10", "realnvp")]["vanilla"]
    fids = [t2[s] for s in SCHEDULES]
    glow = paper.SCHEDULES_FID[("cifar10", "glow")]
    std0 = blur_table["pixel std, blurred"]
    return {
        "cross_07": cross[0.7],
        "cross_02": cross[0.2],
        "cross_09": cross[0.9],
        "crossings_rise": bool(cross.is_monotonic_increasing),
        "snr_half_02": by_tau.loc[0.2, "log-SNR at t/T = 0.5"],
        "sigmoid_half": sched.loc[0.5, "gamma sigmoid"],
        "cosine_half": sched.loc[0.5, "gamma cosine"],
        "t2_realnvp": t2["vanilla"],
        "t1_realnvp": t1,
        "t1_vae": paper.IMAGES_FID[("cifar10", "vae")]["vanilla"],
        "fid_best": min(fids),
        "fid_worst": max(fids),
        "gain_low": t1 - max(fids),
        "gain_high": t1 - min(fids),
        "n_disagreements": len(paper.table2_disagreements()),
        "glow_vanilla": glow["vanilla"],
        "glow_linear": glow["linear"],
        "near_0": near[0.0],
        "near_half": near[0.5],
        "near_09": near[0.9],
        "near_end": near[1.0],
        "gap_mu": track["gap_mu"],
        "gap_std": track["gap_std"],
        "toy_steps": int(toy_steps),
        "mu_end": track["learned_mu"][-1][0],
        "mu_data": track["mean_x"][0],
        "blur_std0": std0[0.0],
        "blur_std_clean": std0[1.0],
        "blur_share": std0[0.0] / std0[1.0],
        "blur_std_rises": bool(std0.is_monotonic_increasing),
    }


def one_line_learned(n: Mapping[str, object]) -> Findings:
    """Check every statement of chapter 1's "What we learned" on ``n`` (:func:`one_line_numbers`) and glue
    its numbers as ``ol_<key>``. Raises ``AssertionError`` naming a statement that no longer holds."""
    learned = Findings()
    learned.add(
        "the sigmoid schedule (τ = 0.7) reaches SNR = 1 between t/T = 0.2 and 0.3, the cosine one "
        "halfway; at t/T = 0.5 the sigmoid leaves less than a quarter of the variance to noise",
        0.2 < n["cross_07"] < 0.3 and abs(n["cosine_half"] - 0.5) < 1e-3 and n["sigmoid_half"] < 0.25,
    )
    learned.add(
        "lower temperatures cross SNR = 1 sooner: before t/T = 0.1 at τ = 0.2, after 0.3 at τ = 0.9",
        n["crossings_rise"] and n["cross_02"] < 0.1 and n["cross_09"] > 0.3,
    )
    learned.add(
        "Table 2 prints the VAE's vanilla FID for REAL-NVP, the only disagreement with Table 1; every "
        "schedule beats Table 1's vanilla REAL-NVP; Glow's linear schedule gains less than half a point",
        n["t2_realnvp"] == n["t1_vae"] != n["t1_realnvp"]
        and n["fid_worst"] < n["t1_realnvp"]
        and n["n_disagreements"] == 1
        and n["glow_vanilla"] - n["glow_linear"] < 0.5,
    )
    learned.add(
        "the share of mollified points near the circle rises from under 30% at t = 0 to all at t = T",
        n["near_0"] < n["near_half"] < n["near_09"] < n["near_end"] == 1.0 and n["near_0"] < 0.3,
    )
    learned.add(
        "the toy Gaussian stays within 0.1 of the moving optimum and ends within 0.05 of the data's mean",
        n["gap_mu"] < 0.1 and n["gap_std"] < 0.1 and abs(n["mu_end"] - n["mu_data"]) < 0.05,
    )
    learned.add(
        "the most blurred photo keeps between 10% and 40% of the clean pixel std, and the std rises along the schedule",
        0.1 < n["blur_share"] < 0.4 and n["blur_std_rises"],
    )
    learned.check()
    glue_all({k: v for k, v in n.items() if not isinstance(v, bool)}, "ol_")
    return learned


# --------------------------------------------------------------------------- chapter 2


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
    _, shades = _blue_shades(len(levels))
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


def stored_divergence(stored: Optional[pd.DataFrame] = None) -> dict:
    """The stored vanilla runs on the circle (``toy2d.csv``, von Mises, ReLU): how many, and the earliest step
    at which one diverged; glued as ``n_vanilla_circle`` and ``diverged_step``. Raises ``AssertionError``
    if none diverged (the chapter says one did)."""
    if stored is None:
        from molli_utils.experiments import results

        stored = results.load("toy2d.csv")
    circle = stored[(stored.dataset == "von_mises") & (stored.activation == "relu")]
    vanilla = circle[circle["mode"] == "vanilla"]
    gone = vanilla.dropna(subset=["diverged_at"])
    assert len(gone), "the chapter says a stored vanilla run on the circle diverged; none did in toy2d.csv"
    out = {"n_vanilla_circle": len(vanilla), "diverged_step": f"{int(gone.diverged_at.min()):,}"}
    return glue_all(out)


def why_numbers(
    deltas,
    train_ll: Mapping,
    test_ll: Mapping,
    mmd: pd.DataFrame,
    summary: pd.DataFrame,
    floor_tv: float,
    scores: pd.DataFrame,
    best_fit: pd.DataFrame,
    gamma: float,
    continuation: Mapping[str, float],
) -> dict:
    """The numbers chapter 2's "What we learned" states. ``continuation`` holds ``theta0``, ``total``,
    ``theta_plain``, ``theta_cont``, ``theta_star``, ``f_plain``, ``f_cont``."""
    deltas = np.asarray(deltas)
    i_big = int(np.argmin(np.abs(deltas - 0.1)))
    tail = slice(-5, None)
    slopes = [np.polyfit(np.log(deltas[tail]), np.asarray(v)[tail], 1)[0] for v in train_ll.values()]
    true_ll, flip_ll = train_ll["true von Mises"], train_ll["flipped von Mises"]
    v, m = summary.loc["vanilla"], summary.loc["mollified"]
    d, noisy = scores.loc["data"], scores.loc["data + N(0, 0.1^2)"]
    true_fit = best_fit.loc["true von Mises"]
    return {
        "slope_min": min(slopes),
        "slope_max": max(slopes),
        "delta_small": deltas[-1],
        "delta_big": deltas[i_big],
        "flip_ll_small": flip_ll[-1],
        "flip_test_ll_small": test_ll["flipped von Mises"][-1],
        "true_ll_big": true_ll[i_big],
        "mmd_wrong_min": min(mmd["uniform"].min(), mmd["flipped von Mises"].min()),
        "mmd_true_small": mmd["true von Mises"].iloc[-1],
        "van_ll_max": v["highest train LL"],
        "mol_ll_noisy": m["highest LL, noise std > 0.1"],
        "van_collapses": int(v["collapses"]),
        "mol_collapses": int(m["collapses"]),
        "van_off_min": v["lowest off-circle"],
        "mol_off_noisy": m["lowest off-circle, noise std > 0.1"],
        "van_tv_min": v["lowest angle TV"],
        "mol_tv_min": m["lowest angle TV"],
        "floor_tv": floor_tv,
        "tv_wins": int(m["lower angle TV"]),
        "n_evals": int(m["evaluations"]),
        "van_tv_final": v["final angle TV"],
        "mol_tv_final": m["final angle TV"],
        "noisy_mmd_ls1": noisy["mmd2_ls1"],
        "data_mmd_ls1": d["mmd2_ls1"],
        "noisy_dist": noisy["circle_dist_mean"],
        "noisy_mmd_ls01": noisy["mmd2_ls0.1"],
        "data_mmd_ls01": d["mmd2_ls0.1"],
        "noise_std": math.sqrt(gamma),
        "fit_delta": true_fit["best bandwidth"],
        "fit_ll": true_fit["max mean log-lik."],
        "fit_wrong_ll": best_fit.drop("true von Mises")["max mean log-lik."].max(),
        "fit_ll_small": true_fit["log-lik. at smallest bandwidth"],
        **{
            k: continuation[k]
            for k in ("theta0", "total", "theta_plain", "theta_cont", "theta_star", "f_plain", "f_cont")
        },
    }


def why_learned(n: Mapping[str, object]) -> Findings:
    """Check every statement of chapter 2's "What we learned" on ``n`` (:func:`why_numbers`) and glue its
    numbers as ``why_<key>``. Raises ``AssertionError`` naming a statement that no longer holds."""
    learned = Findings()
    learned.add(
        "the training log-likelihood of every blurred candidate grows like −log δ (slopes within 0.05 "
        "of −1), and the flipped candidate at the smallest δ beats the true one at δ = 0.1",
        n["slope_max"] < -0.95 and n["slope_min"] > -1.05 and n["flip_ll_small"] > n["true_ll_big"],
    )
    learned.add(
        "MMD² of the wrong candidates stays more than ten times above the true one's at the smallest δ",
        n["mmd_wrong_min"] > 10 * max(abs(n["mmd_true_small"]), 1e-3),
    )
    learned.add(
        "vanilla REAL-NVP's training log-likelihood rises above the mollified run's noisy-phase best, "
        "collapses more often, and its samples come closer to the circle",
        n["van_ll_max"] > n["mol_ll_noisy"]
        and n["van_collapses"] > n["mol_collapses"]
        and n["van_off_min"] < n["mol_off_noisy"],
    )
    learned.add(
        "the mollified run's angular error is lower at its best, at most evaluations and at the end",
        n["mol_tv_min"] < n["van_tv_min"] and n["tv_wins"] > n["n_evals"] / 2 and n["mol_tv_final"] < n["van_tv_final"],
    )
    learned.add(
        "MMD² at lengthscale 1 cannot tell data plus noise of std 0.1 from the data, MMD² at 0.1 can",
        abs(n["noisy_mmd_ls1"]) < 1e-3
        and n["noisy_dist"] > 0.05
        and n["noisy_mmd_ls01"] > 10 * abs(n["data_mmd_ls01"]),
    )
    learned.add(
        "on mollified data the true candidate's likelihood peaks at a bandwidth near the noise std, "
        "above the wrong candidates' best, and falls far below it at the smallest bandwidth",
        0.05 < n["fit_delta"] < 0.2 and n["fit_ll"] > n["fit_wrong_ll"] and n["fit_ll_small"] < -10,
    )
    learned.add(
        "continuation ends at the global minimum, plain gradient descent more than 1 above it",
        abs(n["theta_cont"] - n["theta_star"]) < 0.01 and n["f_plain"] > n["f_cont"] + 1,
    )
    learned.check()
    glue_all(n, "why_")
    return learned
