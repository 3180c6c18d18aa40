"""A chapter's "What we learned", written from its own numbers and checked when the book is built.

A chapter collects its findings as sentences with the numbers it computed, each with the
condition that makes it true::

    learned = Findings()
    learned.add(f"The sigmoid schedule crosses SNR = 1 at t/T = {cross:.2f}, the cosine one at {c:.2f}.",
                holds=cross < c)
    learned.check()      # AssertionError naming every finding that no longer holds
    learned              # the cell's last expression: rendered as a Markdown list in the book

:meth:`Findings.check` raises, so a build (which fails on any cell error) stops the day a
stated finding stops holding, and the message says which sentence to rewrite. The list is
rendered from the same strings the checks were run on, so the text cannot drift from the
numbers. Markdown (``**bold**``, ``` `code` ```) is allowed; the book renders these outputs as
CommonMark, so write symbols in Unicode (τ, γ, σ) rather than ``$...$``.
"""

from __future__ import annotations

__all__ = ["Findings", "glue", "glue_all"]


def glue(name: str, value):
    """Hand ``value`` to the book's prose as ``{glue:text}`name``` (myst-nb's ``glue``, not displayed here).

    A number in a Markdown cell is then computed, not typed. Without myst-nb (a chapter opened
    alone on Colab) nothing is stored. Returns ``value``, so a cell can glue and use it at once.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"glue name {name!r}: use a Python identifier (letters, digits, underscores)")
    try:
        from myst_nb import glue as _glue
    except ImportError:
        return value
    _glue(name, value, display=False)
    return value


def glue_all(values, prefix: str = "") -> dict:
    """:func:`glue` every value of the mapping ``values`` as ``prefix + key``, a 0-d NumPy or torch value as the
    Python number it holds (myst-nb formats ``{glue:text}`key:.2f``` from the value's repr); returns ``values``
    with those conversions (keys without the prefix)."""
    out = {}
    for key, value in values.items():
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            value = value.item()
        out[key] = glue(prefix + key, value)
    return out


class Findings:
    """An ordered list of ``(statement, holds)``; shown as a Markdown bullet list."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bool]] = []

    def add(self, statement: str, holds: bool) -> "Findings":
        """Add one finding: the ``statement`` as the reader will see it, and whether the chapter's numbers support it."""
        if not isinstance(statement, str) or not statement.strip():
            raise ValueError("a finding needs a non-empty statement")
        self.items.append((statement.strip(), bool(holds)))
        return self

    @property
    def failing(self) -> list[str]:
        """The statements whose condition is false."""
        return [s for s, ok in self.items if not ok]

    def check(self) -> "Findings":
        """Raise ``AssertionError`` listing every statement that no longer holds; return ``self`` otherwise."""
        if not self.items:
            raise AssertionError("no findings were stated")
        if self.failing:
            raise AssertionError(
                "these findings no longer hold, rewrite them from the numbers: " + " | ".join(self.failing)
            )
        return self

    def markdown(self) -> str:
        """The findings as a Markdown bullet list (one paragraph per finding)."""
        return "\n".join(f"- {s}" for s, _ in self.items) + "\n"

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __repr__(self) -> str:
        status = "all hold" if not self.failing else f"{len(self.failing)} do not hold"
        return f"Findings: {len(self.items)} ({status})\n" + self.markdown()
