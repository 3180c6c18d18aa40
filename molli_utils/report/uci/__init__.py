"""Chapter 4 (density estimation on UCI data, the paper's Table 4): its tables, figures, checks and findings.

The chapter trains and explains; everything that only formats, judges or checks lives here and is
called from it in one line. Every function reads frames of the stored results
(``molli_utils/results/uci*.csv*``, loaded with :func:`molli_utils.experiments.results.load`), so a
test can hand it the shipped files or a tampered copy:

* names: :data:`SHORT` (data sets as the page spells them), :data:`BRIEF` (verdicts shortened for a
  table), :data:`RED_WINE_VARIABLES`;
* tables: :func:`data_table`, :func:`model_table`, :func:`live_table`, :func:`table4`, :func:`brief`,
  :func:`peaks`, :func:`vanilla_gap`, :func:`bf16_tables`;
* checks that raise when the stored runs stop saying what the chapter says: :func:`check_live` (live against
  stored), :func:`stored_runs`,
  :func:`peaks`, :func:`code_check`, :func:`learned`;
* figures, in the book's palette: :func:`skew_figure`, :func:`curves_figure`, :func:`rounding_figure`,
  :func:`paired_figure`, :func:`code_figure`;
* :func:`learned`: the numbers of "What we learned", computed, checked (:class:`~molli_utils.findings.Findings`)
  and glued for the chapter's prose.

Verdicts are :func:`molli_utils.report.verdict`'s, through :func:`molli_utils.report.uci_verdicts`; nothing
here judges by another rule.

Every public name is importable from here; the code lives in :mod:`.names` (names and constants),
:mod:`.live` (the data, the models, the live runs and rounding alone), :mod:`.stored` (the stored
table, the official code, bf16) and :mod:`.prose` (:func:`learned`).
"""

from .live import (
    check_live,
    curves_figure,
    data_table,
    live_sentences,
    live_table,
    model_table,
    rounding_changes,
    rounding_figure,
    rounding_sentences,
    skew_figure,
    skewness,
)
from .names import BRIEF, DATASETS, FLOWS, GRID, MOL, RED_WINE_VARIABLES, SHORT, VARIANTS
from .prose import learned
from .stored import (
    bf16_tables,
    brief,
    code_check,
    code_figure,
    paired_figure,
    peaks,
    stored_runs,
    table4,
    vanilla_gap,
    verdicts,
)

__all__ = [
    "SHORT",
    "BRIEF",
    "RED_WINE_VARIABLES",
    "DATASETS",
    "FLOWS",
    "VARIANTS",
    "GRID",
    "MOL",
    "data_table",
    "skewness",
    "skew_figure",
    "model_table",
    "live_table",
    "curves_figure",
    "live_sentences",
    "rounding_changes",
    "rounding_figure",
    "stored_runs",
    "table4",
    "paired_figure",
    "verdicts",
    "brief",
    "peaks",
    "vanilla_gap",
    "code_check",
    "code_figure",
    "bf16_tables",
    "learned",
    "check_live",
    "rounding_sentences",
]
