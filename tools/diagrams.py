"""The book's diagrams of its ideas, drawn as SVG: ``python -m tools.diagrams [--out DIR]``.

Writes four figures into ``book/figures/`` (or ``--out``), which the pages include with MyST's
``{figure}`` directive:

* ``loop.svg`` -- the training loop with the one line (chapter 1);
* ``schedule.svg`` -- the sigmoid schedule from noise to data, with the mollified circle at five
  points of training (chapter 1);
* ``manifold_overfitting.svg`` -- a density collapsing onto the circle vs. the mollified target
  (chapter 2);
* ``book_map.svg`` -- how the chapters build on each other (the introduction).

The output is byte-reproducible: text is drawn as paths (``svg.fonttype = "path"``, so a browser
shows the same glyphs without the fonts installed), element ids are salted with a fixed string,
the date is left out, and every random draw comes from a fixed seed. Each file records the
SHA-256 of this script and the Matplotlib and FreeType versions that drew it;
``tests/test_diagrams.py`` re-runs the script and fails when the committed files differ, so a
change here must be followed by ``python -m tools.diagrams`` and a commit of the new SVGs.

Colours: vanilla (plain maximum likelihood) red ``C3``, mollified blue ``C0``, as in the chapters.
Notation as in ``book/notation.md``: gamma the noise level, t/T the progress, epsilon the noise,
tau the temperature of the sigmoid schedule.
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
from typing import Callable

import matplotlib
import matplotlib.colors as mcolors
import numpy as np
from matplotlib import ft2font
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from molli_utils.palette import color
from molli_utils.schedules import sigmoid_schedule

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "book" / "figures"
SOURCE = pathlib.Path(__file__).resolve()

#: one colour per kind of training: the book's palette (molli_utils.palette)
VANILLA = color("vanilla")
MOLLIFIED = color("mollification")
INK = "#222222"
GREY = "#777777"
TAU = 0.7  # the paper's temperature of the sigmoid schedule
SEED = 0

RC = {
    "svg.fonttype": "path",  # glyphs as paths: the same picture without the fonts
    "svg.hashsalt": "molli-diagrams",  # fixed element ids
    "font.family": "DejaVu Sans",  # ships with matplotlib
    "mathtext.fontset": "dejavusans",
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": True,
}


def source_digest() -> str:
    """SHA-256 of this script: recorded in every SVG, checked by the test."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()


def creator() -> str:
    """What drew the files; byte-identical output is expected only from the same versions."""
    return f"tools/diagrams.py with Matplotlib v{matplotlib.__version__}, FreeType {ft2font.__freetype_version__}"


# ----------------------------------------------------------------------------- drawing helpers


def box(ax, x, y, w, h, text, *, face="white", edge=INK, lw=1.2, size=10, weight="normal", style="-", color=INK):
    """A rounded box centred at (x, y), of width w and height h (data units), with centred text."""
    patch = FancyBboxPatch(
        (x - w / 2, y - h / 2),
        w,
        h,
        boxstyle="round,pad=0,rounding_size=0.12",
        facecolor=face,
        edgecolor=edge,
        linewidth=lw,
        linestyle=style,
    )
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=size, fontweight=weight, color=color, linespacing=1.5)
    return patch


def arrow(ax, start, end, *, color=INK, lw=1.3, style="-|>", connection="arc3", ls="-", shrink=0.0, mutation=12):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=mutation,
            color=color,
            linewidth=lw,
            linestyle=ls,
            connectionstyle=connection,
            shrinkA=shrink,
            shrinkB=shrink,
        )
    )


def canvas(width, height):
    """A figure of width x height inches with one axes that fills it, in inch units, axis off."""
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_axis_off()
    return fig, ax


def circle_data(n: int, seed: int) -> np.ndarray:
    """n points on the unit circle, angles von Mises (mu 0, kappa 1): the book's circle."""
    angles = np.random.default_rng(seed).vonmises(0.0, 1.0, size=n)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


# ----------------------------------------------------------------------------- 1. the loop


def draw_loop() -> Figure:
    """The training loop of Algorithm 1, with the one line highlighted and the schedule feeding it."""
    fig, ax = canvas(8.0, 4.9)
    top, bottom = 3.75, 0.7
    pale = mcolors.to_hex(mcolors.to_rgb(MOLLIFIED) + (0.12,), keep_alpha=True)

    box(ax, 1.05, top, 1.6, 0.95, "data batch\n$x \\sim p_{\\mathrm{data}}$")
    box(ax, 4.0, top, 3.5, 1.15, "", face=pale, edge=MOLLIFIED, lw=2.2)
    ax.text(4.0, top + 0.3, "the one line", ha="center", va="center", fontsize=9.5, fontweight="bold", color=MOLLIFIED)
    ax.text(
        4.0,
        top - 0.13,
        "$\\tilde{x} = \\sqrt{1 - \\gamma(t/T)}\\,x + \\sqrt{\\gamma(t/T)}\\,\\varepsilon$",
        ha="center",
        va="center",
        fontsize=11.5,
        color=INK,
    )
    box(ax, 6.95, top, 1.5, 0.95, "model\n$p_\\theta$ (flow or VAE)", size=9.5)
    box(ax, 6.95, bottom, 1.6, 0.95, "loss\n$-\\log p_\\theta(\\tilde{x})$")
    box(ax, 4.0, bottom, 2.3, 0.95, "optimizer step\nupdate $\\theta$ along $-\\nabla_\\theta$ loss", size=9.5)

    arrow(ax, (1.85, top), (2.25, top))
    arrow(ax, (5.75, top), (6.2, top))
    arrow(ax, (6.95, top - 0.475), (6.95, bottom + 0.475))
    ax.text(7.05, (top + bottom) / 2, "$\\log p_\\theta(\\tilde{x})$", ha="left", va="center", fontsize=9.5)
    arrow(ax, (6.15, bottom), (5.15, bottom))
    # back to the next batch: t -> t + 1
    arrow(ax, (2.85, bottom), (1.05, top - 0.475), connection="angle,angleA=180,angleB=-90,rad=0")
    ax.text(
        1.2,
        2.2,
        "$t \\to t + 1$:\nthe next batch,\nless noise",
        ha="left",
        va="center",
        fontsize=9.5,
        color=INK,
        linespacing=1.4,
    )

    # the noise, into the one line from above
    ax.text(3.1, 4.7, "$\\varepsilon \\sim \\mathcal{N}(0, I)$", ha="center", va="center", fontsize=10)
    arrow(ax, (3.1, 4.57), (3.1, top + 0.58), lw=1.0)

    # the schedule, into the one line from below
    sched = fig.add_axes((3.55 / 8.0, 1.55 / 4.9, 1.9 / 8.0, 1.05 / 4.9))
    u = np.linspace(0.0, 1.0, 201)
    sched.plot(u, sigmoid_schedule(u, 1.0, tau=TAU), color=MOLLIFIED, lw=1.8)
    u_now = 0.3
    sched.plot([u_now], [sigmoid_schedule(u_now, 1.0, tau=TAU)], "o", color=MOLLIFIED, ms=4.5)
    sched.set_xlim(-0.03, 1.03)
    sched.set_ylim(-0.06, 1.1)
    sched.set_xticks([0, u_now, 1], ["0", "$t$", "$T$"])
    sched.set_yticks([0, 1])
    sched.set_ylabel("$\\gamma$", rotation=0, labelpad=6, va="center")
    sched.tick_params(length=2.5, pad=1.5)
    ax.text(
        5.6,
        2.2,
        "noise level $\\gamma(t/T)$:\nfrom 1 (pure noise)\nto 0 (the data)\n"
        "over the horizon $T$;\nafter $T$: $\\tilde{x} = x$",
        ha="left",
        va="center",
        fontsize=8.5,
        color=GREY,
        linespacing=1.4,
    )
    arrow(ax, (4.0, 2.72), (4.0, top - 0.6), lw=1.0, color=MOLLIFIED)
    return fig


# ----------------------------------------------------------------------------- 2. manifold overfitting


def ring_density(grid_x, grid_y, angle_pdf: Callable[[np.ndarray], np.ndarray], radius, width, nodes=720):
    """Density of radius * (cos a, sin a) + width * eps, a ~ angle_pdf, on a grid (Riemann sum over a)."""
    a = np.linspace(-np.pi, np.pi, nodes, endpoint=False)
    w = angle_pdf(a)
    w = w / w.sum()
    cx, cy = radius * np.cos(a), radius * np.sin(a)
    out = np.zeros_like(grid_x)
    for k in range(nodes):
        d2 = (grid_x - cx[k]) ** 2 + (grid_y - cy[k]) ** 2
        out += w[k] * np.exp(-0.5 * d2 / width**2)
    return out / (2 * np.pi * width**2)


def von_mises_pdf(mu: float, kappa: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: np.exp(kappa * np.cos(a - mu)) / (2 * np.pi * np.i0(kappa))


def draw_manifold_overfitting() -> Figure:
    """Left: a density collapsing onto the circle with the wrong mass along it; right: the mollified target."""
    fig = Figure(figsize=(8.0, 5.6))
    grid = fig.add_gridspec(
        2, 2, height_ratios=(3.3, 1.35), left=0.04, right=0.96, top=0.9, bottom=0.1, hspace=0.42, wspace=0.16
    )
    lim = 1.55
    n = 400
    xs = np.linspace(-lim, lim, n)
    gx, gy = np.meshgrid(xs, xs)
    data = circle_data(150, SEED)
    gamma = 0.02  # the mollified target's noise level
    sigma = float(np.sqrt(gamma))
    panels = [
        (
            VANILLA,
            "maximum likelihood on the data",
            ring_density(gx, gy, von_mises_pdf(np.pi, 1.5), 1.0, 0.035),
            "a ring thinner and thinner: $\\log p \\to \\infty$ on the circle,\n"
            "yet the mass sits where the data are rare",
        ),
        (
            MOLLIFIED,
            "maximum likelihood on mollified data",
            ring_density(gx, gy, von_mises_pdf(0.0, 1.0), np.sqrt(1 - gamma), sigma),
            "the target $p_\\gamma$: the ring blurred by $\\sigma = \\sqrt{\\gamma}$,\n"
            "a bounded likelihood, the mass where the data are",
        ),
    ]
    ring = np.linspace(0, 2 * np.pi, 300)
    for col, (shade, title, dens, note) in enumerate(panels):
        dark = tuple(0.45 * c for c in mcolors.to_rgb(shade))
        cmap = mcolors.LinearSegmentedColormap.from_list(title, ["#ffffff", shade, dark], N=256)
        ax = fig.add_subplot(grid[0, col])
        # a raster of the density (interpolation "none": the array itself, scaled by the browser)
        ax.imshow(
            dens,
            extent=(-lim, lim, -lim, lim),
            origin="lower",
            cmap=cmap,
            norm=mcolors.PowerNorm(0.5, vmin=0.0, vmax=1.25 * float(dens.max())),
            interpolation="none",
        )
        ax.plot(np.cos(ring), np.sin(ring), color=GREY, lw=0.6, ls=(0, (3, 3)))
        ax.scatter(data[:, 0], data[:, 1], s=5, color="black", zorder=3, linewidths=0)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(title, color=shade, fontweight="bold", fontsize=10.5, pad=4)
        ax.text(0.5, -0.02, note, transform=ax.transAxes, ha="center", va="top", fontsize=9, linespacing=1.4)
        if col == 1:  # the width of the ring, drawn across it on the right-hand side
            r0, r1 = np.sqrt(1 - gamma) - sigma, np.sqrt(1 - gamma) + sigma
            a = np.deg2rad(135)
            ax.annotate(
                "",
                xy=(r1 * np.cos(a), r1 * np.sin(a)),
                xytext=(r0 * np.cos(a), r0 * np.sin(a)),
                arrowprops=dict(arrowstyle="<->", color=INK, lw=1.0, shrinkA=0, shrinkB=0),
            )
            ax.text(
                1.17 * np.cos(a) - 0.02, 1.17 * np.sin(a) + 0.02, "$2\\sigma$", fontsize=9.5, ha="right", va="bottom"
            )
        else:
            ax.text(
                0.98,
                0.02,
                "data on the circle\n(black dots)",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize=8.5,
                color=GREY,
            )

    # the density across the circle, along a radius: spikes without a top vs. one bump
    r = np.linspace(0.4, 1.6, 600)
    ax = fig.add_subplot(grid[1, 0])
    for k, width in enumerate([0.16, 0.08, 0.04, 0.02]):
        ax.plot(
            r,
            np.exp(-0.5 * ((r - 1) / width) ** 2) / (np.sqrt(2 * np.pi) * width),
            color=VANILLA,
            lw=1.4,
            alpha=0.35 + 0.2 * k,
        )
    ax.annotate("", xy=(1.12, 17.5), xytext=(1.32, 5.0), arrowprops=dict(arrowstyle="-|>", color=INK, lw=1.0))
    ax.text(1.34, 6.0, "training goes on:\nno maximum", fontsize=8.5, va="bottom")
    ax.set_ylim(0, 21)
    ax2 = fig.add_subplot(grid[1, 1], sharey=ax)
    ax2.plot(
        r,
        np.exp(-0.5 * ((r - np.sqrt(1 - gamma)) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma),
        color=MOLLIFIED,
        lw=1.8,
    )
    ax2.text(1.2, 6.0, "the best fit keeps\nits width: $\\sigma$", fontsize=8.5, va="bottom")
    for a in (ax, ax2):
        a.set_xlim(0.4, 1.6)
        a.set_xticks([0.5, 1.0, 1.5], ["0.5", "1 (the circle)", "1.5"])
        a.set_yticks([])
        a.spines["left"].set_visible(False)
        a.set_xlabel("distance from the centre", fontsize=9, labelpad=2)
        a.set_title("density across the circle", fontsize=9, color=GREY, pad=2)
    fig.text(
        0.5,
        0.975,
        "Manifold overfitting, and what mollification does about it",
        ha="center",
        va="center",
        fontsize=11.5,
        fontweight="bold",
        color=INK,
    )
    return fig


# ----------------------------------------------------------------------------- 3. the schedule


def draw_schedule() -> Figure:
    """gamma(t/T) of the sigmoid schedule (tau 0.7), with the mollified circle at five points of training."""
    fig = Figure(figsize=(8.0, 4.9))
    left, right = 0.09, 0.97
    main = fig.add_axes((left, 0.1, right - left, 0.42))
    u = np.linspace(0.0, 1.0, 401)
    main.plot(u, sigmoid_schedule(u, 1.0, tau=TAU), color=MOLLIFIED, lw=2.2)
    main.axhline(0.5, color=GREY, lw=0.7, ls=":")
    main.text(
        0.995, 0.52, "$\\gamma = 1/2$: signal and noise break even", ha="right", va="bottom", fontsize=8.5, color=GREY
    )
    main.set_xlim(-0.04, 1.04)
    main.set_ylim(-0.05, 1.13)
    main.set_xlabel("progress of training $t/T$", labelpad=2)
    main.set_ylabel("noise level $\\gamma(t/T)$")
    main.text(0.36, 0.83, f"sigmoid schedule, $\\tau = {TAU}$", fontsize=9.5, color=MOLLIFIED, transform=main.transAxes)

    stops = [0.0, 0.25, 0.5, 0.75, 1.0]
    data = circle_data(400, SEED)
    eps = np.random.default_rng(SEED + 1).standard_normal(data.shape)
    size = 0.145
    ring = np.linspace(0, 2 * np.pi, 200)
    to_fig = main.transData + fig.transFigure.inverted()
    for k, stop in enumerate(stops):
        gamma = float(sigmoid_schedule(stop, 1.0, tau=TAU))
        if stop == 1.0:
            gamma = 0.0  # the package clips to 1e-9; at t = T the line returns the data
        points = np.sqrt(1 - gamma) * data + np.sqrt(gamma) * eps
        cx, cy = to_fig.transform((stop, gamma))
        x0 = left + 0.01 + k * (right - left - size - 0.02) / (len(stops) - 1)
        inset = fig.add_axes((x0, 0.64, size, size * 8.0 / 4.9))
        inset.scatter(points[:, 0], points[:, 1], s=2.5, color=MOLLIFIED, linewidths=0)
        inset.plot(np.cos(ring), np.sin(ring), color=GREY, lw=0.6, ls=(0, (3, 3)))
        inset.set_xlim(-2.6, 2.6)
        inset.set_ylim(-2.6, 2.6)
        inset.set_aspect("equal")
        inset.set_xticks([])
        inset.set_yticks([])
        for spine in inset.spines.values():
            spine.set_visible(True)
            spine.set_color("#bbbbbb")
        label = f"$t/T = {stop:g}$\n$\\gamma = {gamma:.2f}$"
        inset.set_title(label, fontsize=8.5, pad=3, linespacing=1.3)
        main.plot([stop], [gamma], "o", color=MOLLIFIED, ms=5, zorder=3)
        fig.add_artist(
            FancyArrowPatch(
                (x0 + size / 2, 0.635),
                (cx, cy + 0.012),
                arrowstyle="-",
                color="#999999",
                lw=0.7,
                linestyle=(0, (2, 2)),
                transform=fig.transFigure,
            )
        )
    main.text(
        0.035,
        1.0,
        "pure noise: $\\tilde{x} = \\varepsilon \\sim \\mathcal{N}(0, I)$",
        ha="left",
        va="bottom",
        fontsize=9,
        color=GREY,
    )
    main.text(0.975, 0.06, "the data: $\\tilde{x} = x$", ha="right", va="bottom", fontsize=9, color=GREY)
    fig.text(
        0.5,
        0.968,
        "$\\tilde{x} = \\sqrt{1 - \\gamma}\\,x + \\sqrt{\\gamma}\\,\\varepsilon$, $x$ on the circle",
        ha="center",
        fontsize=9.5,
        color=INK,
    )
    return fig


# ----------------------------------------------------------------------------- 4. the map


#: (label, title, column, row, part); columns 0 (teaching, related), 1 (the spine), 2 (images)
CHAPTERS = {
    "primer": ("Primer", "flows, VAEs and their likelihoods", 1, 0, "before"),
    "1": ("1  The one line", "the objective, the schedule", 1, 1, "foundations"),
    "2": ("2  Why likelihood struggles", "manifold overfitting, continuation", 1, 2, "foundations"),
    "3": ("3  Two toys", "a mixture of Gaussians and a circle", 1, 3, "reproducing"),
    "4": ("4  UCI", "density estimation on tables", 1, 4, "reproducing"),
    "5": ("5  Reproduction report", "which claims hold, by how much", 1, 5, "reproducing"),
    "8": ("8  What to take away", "where mollification helps", 1, 6, "conclusions"),
    "6": ("6  Image VAEs", "Gaussian and blurring mollification", 2, 2, "reproducing"),
    "6b": ("6b  Image flows", "Table 1 in miniature, Table 2", 2, 3, "reproducing"),
    "7": ("7  INDM", "mollification and diffusion", 0, 4, "related"),
    "A2": ("Assignment 2", "blurring mollification", 0, 2, "teaching"),
    "A1": ("Assignment 1", "Gaussian mollification", 0, 3, "teaching"),
}
PARTS = {  # part of the table of contents: (caption, fill)
    "before": ("Before you start", "#e6e6e6"),
    "foundations": ("Foundations", "#d9efd3"),
    "reproducing": ("Reproducing the paper", "#fde3c8"),
    "related": ("Related methods", "#e6dcef"),
    "conclusions": ("Conclusions", "#f5f0c2"),
    "teaching": ("Teaching", "#ffffff"),
}


def draw_map() -> Figure:
    """Boxes for the chapters, arrows for which chapter builds on which."""
    width, height = 8.8, 6.6
    fig, ax = canvas(width, height)
    cols = [1.45, 4.4, 7.35]
    rows = [6.2 - 0.93 * i for i in range(7)]
    bw, bh = 2.6, 0.7

    def at(key):
        _, _, c, r, _ = CHAPTERS[key]
        return cols[c], rows[r]

    for key, (label, title, c, r, part) in CHAPTERS.items():
        x, y = at(key)
        box(
            ax,
            x,
            y,
            bw,
            bh,
            "",
            face=PARTS[part][1],
            edge=INK if part != "teaching" else GREY,
            lw=1.0,
            style="-" if part != "teaching" else (0, (3, 2)),
        )
        ax.text(x, y + 0.14, label, ha="center", va="center", fontsize=11, fontweight="bold", color=INK)
        ax.text(x, y - 0.16, title, ha="center", va="center", fontsize=9, color="#444444")

    def side(key, where):
        x, y = at(key)
        return {"top": (x, y + bh / 2), "bottom": (x, y - bh / 2), "left": (x - bw / 2, y), "right": (x + bw / 2, y)}[
            where
        ]

    for a, b in [("primer", "1"), ("1", "2"), ("2", "3"), ("3", "4"), ("4", "5"), ("5", "8"), ("6", "6b")]:
        arrow(ax, side(a, "bottom"), side(b, "top"))
    arrow(ax, side("1", "right"), side("6", "top"), connection="angle,angleA=0,angleB=90,rad=0")
    x6b, y6b = at("6b")
    arrow(ax, (x6b - bw / 2 + 0.3, y6b - bh / 2), side("5", "right"), connection="angle,angleA=-90,angleB=0,rad=0")
    arrow(ax, side("3", "left"), side("A1", "right"), color=GREY, ls=(0, (3, 2)))
    arrow(
        ax,
        side("1", "left"),
        side("A2", "top"),
        color=GREY,
        ls=(0, (3, 2)),
        connection="angle,angleA=180,angleB=90,rad=0",
    )
    x3, y3 = at("3")
    x7, y7 = at("7")
    arrow(ax, (x3 - bw / 2 + 0.25, y3 - bh / 2), (x7 + bw / 2 - 0.25, y7 + bh / 2))
    arrow(ax, side("7", "bottom"), side("8", "left"), connection="angle,angleA=-90,angleB=0,rad=0")

    # the legend, in the empty corner: the parts of the table of contents, and the arrows
    x, y, step = cols[2] - bw / 2 + 0.5, rows[4] + 0.15, 0.27
    ax.text(x, y, "parts of the book", ha="left", va="center", fontsize=9.5, color=GREY)
    for part in ["before", "foundations", "reproducing", "related", "conclusions", "teaching"]:
        y -= step
        caption, face = PARTS[part]
        teaching = part == "teaching"
        ax.add_patch(
            FancyBboxPatch(
                (x, y - 0.09),
                0.3,
                0.18,
                boxstyle="round,pad=0,rounding_size=0.05",
                facecolor=face,
                edgecolor=GREY if teaching else INK,
                linewidth=0.8,
                linestyle=(0, (3, 2)) if teaching else "-",
            )
        )
        ax.text(x + 0.42, y, caption, ha="left", va="center", fontsize=9.5, color="#444444")
    y -= step + 0.1
    arrow(ax, (x, y), (x + 0.3, y), lw=1.0)
    ax.text(x + 0.42, y, "builds on", ha="left", va="center", fontsize=9.5, color="#444444")
    y -= step
    arrow(ax, (x, y), (x + 0.3, y), lw=1.0, color=GREY, ls=(0, (3, 2)))
    ax.text(x + 0.42, y, "practises", ha="left", va="center", fontsize=9.5, color="#444444")
    return fig


# ----------------------------------------------------------------------------- writing


DIAGRAMS: dict[str, tuple[Callable[[], Figure], str]] = {
    "loop": (draw_loop, "The training loop with the one line"),
    "schedule": (draw_schedule, "The sigmoid schedule, from noise to data"),
    "manifold_overfitting": (draw_manifold_overfitting, "Manifold overfitting and the mollified target"),
    "book_map": (draw_map, "How the chapters connect"),
}


def write(out: pathlib.Path = OUT) -> list[pathlib.Path]:
    """Draw every diagram into ``out`` as ``<name>.svg``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    digest = source_digest()
    paths = []
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(RC)
        for name, (draw, title) in DIAGRAMS.items():
            fig = draw()
            path = out / f"{name}.svg"
            fig.savefig(
                path,
                format="svg",
                facecolor="white",
                metadata={
                    "Date": None,
                    "Title": title,
                    "Creator": creator(),
                    "Description": f"drawn by tools/diagrams.py, sha256 {digest}",
                },
            )
            paths.append(path)
    return paths


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=OUT, help="folder to write (default: book/figures)")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path)


if __name__ == "__main__":
    main()
