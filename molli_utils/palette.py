"""The book's colours: one per kind of training, the same in every figure, chapter and diagram.

matplotlib's default cycle, so that a reader's own plots in the notebooks match::

    from molli_utils.palette import color
    ax.plot(steps, loss, color=color("vanilla"), label="vanilla")

=================  =========  ====================================================================
mode               colour     what it is
=================  =========  ====================================================================
``vanilla``        red        clean data throughout (``Mollifier("none")``)
``mollification``  blue       Gaussian mollification, the annealed schedule (the paper's recipe);
                              ``gaussian`` (the image recipe, over the first half) is the same colour
``half``           orange     the schedule over the first half, then clean
``clean-half``     brown      the whole run's schedule for the first half, then clean
``constant``       green      noise of fixed variance (Sec. 2.2's baseline)
``blur``           purple     heat-equation blurring (Appendix B)
``indm``           pink       INDM: a flow and a diffusion trained together (chapter 7)
``diffusion``      grey       a plain diffusion model (chapter 7)
``data``           black      the data, or the target density
=================  =========  ====================================================================

:func:`color` raises ``KeyError`` with the known modes for any other name.
"""

from __future__ import annotations

__all__ = ["PALETTE", "color"]

#: Mode -> colour (hex). ``gaussian`` shares ``mollification``'s colour: both are annealed Gaussian noise.
PALETTE: dict[str, str] = {
    "vanilla": "#d62728",  # C3
    "mollification": "#1f77b4",  # C0
    "gaussian": "#1f77b4",  # C0
    "half": "#ff7f0e",  # C1
    "clean-half": "#8c564b",  # C5
    "constant": "#2ca02c",  # C2
    "blur": "#9467bd",  # C4
    "indm": "#e377c2",  # C6
    "diffusion": "#7f7f7f",  # C7
    "data": "#000000",
}


def color(mode: str) -> str:
    """The colour of ``mode`` (a key of :data:`PALETTE`, case-insensitive)."""
    try:
        return PALETTE[mode.lower()]
    except (KeyError, AttributeError):
        raise KeyError(f"no colour for {mode!r}; the book's modes are {sorted(PALETTE)}") from None
