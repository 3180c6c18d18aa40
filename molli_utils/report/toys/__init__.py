"""Chapter 3's plumbing: the toys' figures, tables and checked numbers.

The chapter (``book/03_toys.ipynb``) keeps in view what it teaches: the data, the flow, the
training with the one line, the MMD² callback and the model's score. Everything else lives
here, each called in one line:

* figures: :func:`plot_data`, :func:`plot_scores`, :func:`plot_snapshots`, :func:`film`,
  :func:`plot_curves`, :func:`plot_circle_measures`, :func:`plot_dead_units`,
  :func:`plot_ablation` (colours from :mod:`molli_utils.palette`);
* tables of the stored study (``toy2d.csv``): :func:`default_grid`, :func:`mmd_table`,
  :func:`verdict_table` (the book's one rule, :func:`molli_utils.report.verdict`),
  :func:`fair_table`, :func:`circle_table`, :func:`collapsed_by_mode`, :func:`dead_table`,
  :func:`ablation_table`;
* :func:`learned`: every number of the chapter's prose from the stored results, glued for
  ``{glue:text}`` and checked: it raises ``AssertionError`` naming each statement of the prose
  that the numbers no longer support, so the build fails the day a finding stops holding.

Every public name is importable from here; the code lives in :mod:`.names` (data-set names and
constants), :mod:`.live` (figures of the live runs), :mod:`.stored` (tables and figures of the stored
study) and :mod:`.prose` (:func:`learned`).
"""

from .live import (
    density_image,
    divergence_report,
    film,
    hist2d,
    model_samples,
    plot_curves,
    plot_data,
    plot_scores,
    plot_snapshots,
    quiver,
    score_cosines,
    square_grid,
)
from .names import COLLAPSE_TOL, FLOOR, LIM, MODE_ORDER, SHORT, TITLES, short
from .prose import learned
from .stored import (
    MEASURES,
    ablation,
    ablation_table,
    blurred_ring_reference,
    circle_table,
    collapse_table,
    collapsed_by_mode,
    dead_table,
    default_grid,
    fair_table,
    mmd_table,
    mode_weights,
    noise_floor,
    plot_ablation,
    plot_circle_measures,
    plot_dead_units,
    single_gaussian_loglik,
    true_loglik,
    verdict_table,
)

__all__ = [
    "SHORT",
    "TITLES",
    "MODE_ORDER",
    "LIM",
    "FLOOR",
    "COLLAPSE_TOL",
    "MEASURES",
    "short",
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
    "default_grid",
    "mmd_table",
    "true_loglik",
    "single_gaussian_loglik",
    "verdict_table",
    "mode_weights",
    "fair_table",
    "blurred_ring_reference",
    "circle_table",
    "plot_circle_measures",
    "collapsed_by_mode",
    "collapse_table",
    "ablation",
    "dead_table",
    "plot_dead_units",
    "noise_floor",
    "ablation_table",
    "plot_ablation",
    "learned",
]
