"""Pictures that move in a static page: matplotlib's JavaScript animation, with a cap on frames and size.

``matplotlib.animation.Animation.to_jshtml()`` turns an animation into one HTML block: the
frames as embedded PNG images and a small player (a slider, play and step buttons) written in
plain JavaScript. It needs no kernel, so it works in the built book, offline, and in Colab.
Every frame is a full image, so an uncapped animation can weigh megabytes; the helpers here
keep at most ``max_frames`` frames (evenly spaced, first and last always kept) and refuse an
animation whose HTML exceeds ``max_kb``.

* :func:`animate` -- any figure: ``update(frame)`` redraws it for one item of ``frames``;
* :func:`animate_images` -- the common case, a list of 2D arrays (densities on a grid,
  images) shown one after the other with ``imshow``;
* :func:`select_frames` -- the indices that the cap keeps.

Example (a slider over the temperature of the sigmoid schedule)::

    fig, ax = plt.subplots()
    (line,) = ax.plot(u, sigmoid_schedule(u, 1.0, tau=0.7))
    def update(tau):
        line.set_ydata(sigmoid_schedule(u, 1.0, tau=tau))
        ax.set_title(f"tau = {tau:.2f}")
    animate(fig, update, np.linspace(0.1, 2.0, 20))      # the cell's last expression: the player
"""

from __future__ import annotations

import html as _html
from typing import Any, Callable, Optional, Sequence

import numpy as np

__all__ = ["MAX_FRAMES", "MAX_KB", "AnimationHTML", "select_frames", "animate", "animate_images"]

#: Frames kept at most by default: enough for a smooth slider, few enough for a light page.
MAX_FRAMES = 40
#: Largest HTML of one animation by default, in kB (a 40-frame figure at 72 dpi is ~1-2 MB).
MAX_KB = 3_000


class AnimationHTML:
    """The HTML of an animation; shown as the player by Jupyter (``_repr_html_``) and the book."""

    def __init__(self, html: str, frames: Sequence[int], total: int) -> None:
        self.html = html
        #: indices (into the ``frames`` given) of the frames kept
        self.frames = list(frames)
        #: how many frames were given
        self.total = total

    def _repr_html_(self) -> str:
        return self.html

    @property
    def kilobytes(self) -> float:
        return len(self.html.encode()) / 1024

    def __repr__(self) -> str:
        return f"<AnimationHTML: {len(self.frames)} of {self.total} frames, {self.kilobytes:.0f} kB>"


def select_frames(n: int, max_frames: int = MAX_FRAMES) -> list[int]:
    """Indices of at most ``max_frames`` of ``n`` frames, evenly spaced, always keeping the first and the last."""
    if n < 1:
        raise ValueError(f"an animation needs at least one frame, got {n}")
    if max_frames < 2:
        raise ValueError(f"max_frames must be >= 2 (the first and the last frame), got {max_frames}")
    if n <= max_frames:
        return list(range(n))
    return sorted(set(np.round(np.linspace(0, n - 1, max_frames)).astype(int).tolist()))


def animate(
    fig: Any,
    update: Callable[[Any], Any],
    frames: Sequence[Any],
    *,
    max_frames: int = MAX_FRAMES,
    interval_ms: int = 250,
    max_kb: float = MAX_KB,
    loop: bool = True,
    close: bool = True,
) -> AnimationHTML:
    """An HTML player of ``fig`` redrawn by ``update(frame)`` for (at most ``max_frames`` of) ``frames``.

    ``update`` changes the figure's artists in place (``set_data``, ``set_title``...). The figure is
    closed afterwards (``close=True``), so a notebook shows the player only, not also the last
    frame. Raises ``ValueError`` when the HTML exceeds ``max_kb`` kilobytes: lower the figure's dpi or
    size, or ``max_frames``.
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation

    frames = list(frames)
    keep = select_frames(len(frames), max_frames)
    try:
        anim = animation.FuncAnimation(
            fig,
            lambda i: update(frames[i]),
            frames=keep,
            interval=interval_ms,
            repeat=loop,
            blit=False,
            cache_frame_data=False,
        )
        # matplotlib's own limit (animation.embed_limit, 20 MB by default) silently drops frames; ours raises
        html = anim.to_jshtml(default_mode="loop" if loop else "once", embed_frames=True)
    finally:
        if close:
            plt.close(fig)
    size_kb = len(html.encode()) / 1024
    if size_kb > max_kb:
        raise ValueError(
            f"the animation is {size_kb:.0f} kB, above max_kb={max_kb:g}: lower the figure's dpi "
            f"or size, or max_frames (now {len(keep)} frames)"
        )
    return AnimationHTML(html, keep, len(frames))


def animate_images(
    images: Sequence[Any],
    *,
    titles: Optional[Sequence[str]] = None,
    figsize: tuple[float, float] = (4.0, 4.0),
    dpi: int = 72,
    cmap: str = "viridis",
    extent: Optional[Sequence[float]] = None,
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    origin: str = "upper",
    caption: Optional[str] = None,
    **kwargs: Any,
) -> AnimationHTML:
    """An HTML player of a list of 2D arrays (or ``[H, W, 3]`` images), one per frame, with ``imshow``.

    The colour scale is shared by all frames (``vmin``/``vmax``, by default the 1st and 99th
    percentiles over the frames kept), so that brightness means the same thing in every frame.
    ``titles`` gives one title per image; ``caption`` is a line of text under the player. For a density
    evaluated on a grid whose first axis is ``y``, pass ``origin="lower"`` and the grid's ``extent``.
    Other keyword arguments go to :func:`animate` (``max_frames``, ``interval_ms``, ``max_kb``...).
    """
    import matplotlib.pyplot as plt

    images = [np.asarray(im) for im in images]
    if not images:
        raise ValueError("animate_images needs at least one image")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"got {len(titles)} titles for {len(images)} images")
    keep = select_frames(len(images), kwargs.get("max_frames", MAX_FRAMES))
    finite = np.concatenate([images[i][np.isfinite(images[i])].ravel() for i in keep])
    if finite.size and images[0].ndim == 2:
        vmin = float(np.percentile(finite, 1)) if vmin is None else vmin
        vmax = float(np.percentile(finite, 99)) if vmax is None else vmax
    fig, ax = plt.subplots(figsize=figsize, dpi=dpi, constrained_layout=True)
    shown = ax.imshow(images[0], cmap=cmap, extent=extent, vmin=vmin, vmax=vmax, origin=origin)
    if extent is None:
        ax.set_xticks([])
        ax.set_yticks([])

    def update(i: int) -> None:
        shown.set_data(images[i])
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)

    out = animate(fig, update, range(len(images)), **kwargs)
    if caption:
        out.html += f'<p style="font-size:0.9em;margin-top:0.3em">{_html.escape(caption)}</p>'
    return out
