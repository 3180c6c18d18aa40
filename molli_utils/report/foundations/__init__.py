"""Chapters 1 and 2, *The one line* and *Why likelihood training struggles*: their figures, tables and findings.

The chapters keep in view the code that teaches (the training loops with the one line, the
Theorem-1 construction, the continuation method); what only draws, tabulates or checks lives
here, one call per use. Every figure takes its colours from :mod:`molli_utils.palette`.

The findings ("What we learned") are computed, checked and glued by :func:`one_line_learned`
and :func:`why_learned`: each raises ``AssertionError`` (through
:meth:`molli_utils.findings.Findings.check`) the day a sentence of the chapter's prose stops
holding, so the build fails rather than print a wrong statement.

Every public name is importable from here; the code lives in :mod:`.one_line` (chapter 1's figures and
tables), :mod:`.why` (chapter 2's figures, tables and its two trained flows) and :mod:`.prose` (the
numbers and checked findings of both chapters).
"""

from .one_line import (
    SCHEDULES,
    blur_and_noise,
    draw_cloud,
    moving_optimum,
    paper_schedule_tables,
    photo,
    plot_moving_optimum,
    plot_schedules,
    plot_tau_schedules,
    schedule_table,
    tau_animation,
    tau_table,
)
from .prose import one_line_learned, one_line_numbers, stored_divergence, why_learned, why_numbers
from .why import (
    best_bandwidths,
    candidate_mmd,
    flow_summary,
    plot_circle_data,
    plot_continuation,
    plot_final_models,
    plot_flow_likelihood,
    plot_flow_measures,
    plot_mollified_fit,
    plot_theorem1,
    reference_scores,
    train_vanilla_and_mollified,
)

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
