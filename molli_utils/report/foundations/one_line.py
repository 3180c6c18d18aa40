"""Chapter 1, *The one line*: its figures and tables (the noise schedules, the moving optimum, the blurred photo).

Every figure takes its colours from :mod:`molli_utils.palette`; each function is one call of the chapter.
:data:`SCHEDULES` and :func:`blue_shades` are shared with chapter 2's figures (:mod:`.why`).
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional

import numpy as np
import pandas as pd
import torch

from molli_utils import paper
from molli_utils.palette import color
from molli_utils.schedules import cosine_schedule, linear_schedule, log_snr, sigmoid_schedule

__all__ = [
    "SCHEDULES",
    "blue_shades",
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


def blue_shades(n: int):
    """``(cmap, shades)``: a white-to-mollification-blue colormap and ``n`` of its colours, from light to full."""
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
    cmap, shades = blue_shades(len(taus))
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
