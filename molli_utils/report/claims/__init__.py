"""The reproduction report's claim tables (chapter 5): every claim of the paper that the book checks.

Each table reads the stored results (:func:`molli_utils.experiments.results.load`) and judges every
claim by the one rule, :func:`molli_utils.report.verdict`, on paired differences per seed
(:func:`molli_utils.report.paired_differences`). A chapter calls each in one line::

    stored = claims.load()                       # the five results files the report reads
    claims.toy_claims(stored["toy2d.csv"])       # Sec. 4.1: MMD² and the measures that see the circle
    claims.uci_tables(stored["uci.csv"])         # Table 4, one table per variant of the flows
    claims.image_claims(stored["images_digits.csv"], mean_fd)   # Table 1 in miniature
    claims.other_claims(stored["images_digits.csv"], stored["overhead.csv"])  # Table 2, cost, not run
    claims.constant_table(stored["toy2d.csv"], stored["uci.csv"])  # Sec. 2.2's constant noise
    claims.learned(stored, mean_fd)              # the findings: computed, glued, checked

:func:`learned` glues the numbers of the chapter's "What we learned" (myst-nb) and raises
``AssertionError`` (:meth:`molli_utils.findings.Findings.check`) the day a stated finding stops
holding. :func:`summary` counts the verdicts of each claim's cells (the table of chapter 8).

Every public name is importable from here; the code lives in :mod:`.tables` (the claim tables and
:func:`load`), :mod:`.figures` (the UCI figures) and :mod:`.prose` (:func:`learned`, :func:`summary`).
"""

from ...paper import UCI_TEST_LOGLIK as UCI_TEST_LOGLIK  # the paper's Table 4, which the UCI claims are judged by
from .figures import plot_uci_curves, plot_uci_gains
from .prose import learned, summary
from .tables import (
    LABEL,
    STORED,
    TOY_MEASURES,
    UCI_CELLS,
    constant_table,
    image_claims,
    load,
    other_claims,
    paper_log_ratio,
    tally,
    toy_claims,
    toy_diffs,
    uci_claims,
    uci_tables,
)

__all__ = [
    "STORED",
    "LABEL",
    "TOY_MEASURES",
    "UCI_CELLS",
    "load",
    "tally",
    "paper_log_ratio",
    "toy_diffs",
    "toy_claims",
    "uci_claims",
    "uci_tables",
    "image_claims",
    "other_claims",
    "constant_table",
    "plot_uci_gains",
    "plot_uci_curves",
    "learned",
    "summary",
]
