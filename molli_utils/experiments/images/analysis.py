"""Table 1 and Table 2 in miniature from the rows of ``images_digits.csv``: the runs (:func:`miniature_runs`),
per-seed pairs against vanilla (:func:`paired`), and the tables (:func:`miniature_table`, :func:`ablation_table`)
with the book's verdict."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ... import paper as paper_numbers
from ...report import verdict
from .config import ABLATION, MODEL_BUDGETS, MODELS, ImageRun, grid, schedule_label

__all__ = ["miniature_runs", "paired", "miniature_variance", "at_variance", "miniature_table", "ablation_table"]


def miniature_runs(ablation: bool = False) -> list[ImageRun]:
    """The runs of Table 1 in miniature (the quick profile's grid: 7 models x 3 modes x the seeds of
    :data:`~molli_utils.experiments.images.config.SEEDS_DIGITS`), or with ``ablation`` those of Table 2 in
    miniature (:data:`~molli_utils.experiments.images.config.ABLATION`, the Gaussian
    mode only)."""
    if not ablation:
        return grid("quick")
    spec = ABLATION
    return grid("quick", models=spec["models"], modes=["gaussian"], schedules=spec["schedules"], taus=spec["taus"])


def _signs(values: Sequence[float]) -> str:
    return "".join("-" if v < 0 else "+" if v > 0 else "0" for v in values)


def paired(frame, model: str, mode: str, schedule: str, metric: str = "fd"):
    """Per seed: ``metric`` of (model, mode, schedule) and of the vanilla run of the same seed."""
    base = frame[(frame["model"] == model) & (frame["mode"] == "vanilla")].set_index("seed")[metric]
    treated = frame[(frame["model"] == model) & (frame["mode"] == mode) & (frame["schedule"] == schedule)]
    treated = treated.set_index("seed")[metric]
    seeds = sorted(set(base.index) & set(treated.index))
    return base.loc[seeds].astype(float), treated.loc[seeds].astype(float)


def miniature_variance() -> float:
    """The decoder variance of the miniature's VAEs (the quick profile's, :data:`MODEL_BUDGETS`)."""
    return float(MODEL_BUDGETS["quick"]["vae"]["decoder_variance"])


def at_variance(frame, decoder_variance: Optional[float] = None):
    """The rows of ``frame`` (``images_digits.csv``) of the flows and of the VAEs trained with ``decoder_variance``
    (default: :func:`miniature_variance`); a frame without the column is returned as it is."""
    if "decoder_variance" not in frame.columns:
        return frame
    value = miniature_variance() if decoder_variance is None else decoder_variance
    column = frame["decoder_variance"].astype(float)
    return frame[column.isna() | np.isclose(column, value)]


def _log_changes(van, mol) -> list[float]:
    """Per seed, ``log FD(mollified) - log FD(vanilla)``: the quantity every verdict on the images reads."""
    return (np.log(mol.to_numpy()) - np.log(van.to_numpy())).tolist()


def _change_columns(diffs: Sequence[float], paper_diff: float) -> dict[str, Any]:
    """The columns shared by both tables: our mean and sd of ``log FD`` differences, the same as a percentage
    (``100 (exp(mean) - 1)``, the geometric mean change), the signs per seed, and the paper's."""
    mean = float(np.mean(diffs)) if diffs else math.nan
    sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else math.nan
    return {
        "Δ log FD": mean,
        "Δ log FD sd": sd,
        "change %": 100 * math.expm1(mean),
        "signs per seed": _signs(diffs),
        "paper Δ log FID (CIFAR-10)": paper_diff,
        "paper change % (FID, CIFAR-10)": 100 * math.expm1(paper_diff),
    }


def miniature_table(frame, paper: Optional[dict] = None, decoder_variance: Optional[float] = None):
    """Table 1 in miniature from the rows of ``images_digits.csv`` (a DataFrame): per model and mollifier, the
    mean and standard deviation over seeds of the Fréchet distance (and of KID, and the flows' bits/dim), and
    the change against vanilla training of the same seed as a paired difference of **log FD**,
    ``log FD(mollified) - log FD(vanilla)`` per seed (mean ``Δ log FD``, its sd, the same as a percentage,
    its sign per seed), beside the paper's ``log(FID_mollified / FID_vanilla)`` on CIFAR-10 (Table 1).
    The verdict is the book's one rule, :func:`molli_utils.report.verdict` of the per-seed log
    differences against the paper's, lower is better. The VAE rows are those of ``decoder_variance``
    (:func:`at_variance`; default: the miniature's)."""
    paper = paper_numbers.IMAGES_FID if paper is None else paper
    frame = at_variance(frame, decoder_variance)
    rows = []
    for model in MODELS:
        for mode, schedule in (("gaussian", "sigmoid"), ("blur", "heat")):
            van, mol = paired(frame, model, mode, schedule)
            diffs = _log_changes(van, mol)
            p = paper[("cifar10", model)]
            p_diff = math.log(p[mode] / p["vanilla"])
            row = {
                "model": model,
                "mollifier": mode,
                "seeds": len(diffs),
                "FD vanilla": van.mean(),
                "FD vanilla sd": van.std(),
                "FD mollified": mol.mean(),
                "FD mollified sd": mol.std(),
                **_change_columns(diffs, p_diff),
                "verdict (miniature)": verdict(diffs, p_diff, higher_is_better=False),
            }
            for metric in ("kid", "bpd"):
                v, m = paired(frame, model, mode, schedule, metric)
                row[f"{metric} vanilla"], row[f"{metric} mollified"] = v.mean(), m.mean()
            rows.append(row)
    return pd.DataFrame(rows)


def ablation_table(frame, paper: Optional[dict] = None, decoder_variance: Optional[float] = None):
    """Table 2 in miniature: per ablated model and Gaussian schedule (and sigmoid temperature), the mean FD over
    seeds and its paired change against vanilla as in :func:`miniature_table` (``Δ log FD`` per seed), the
    paper's ``log(FID_schedule / FID_vanilla)`` on CIFAR-10 (Table 2, :data:`molli_utils.paper.SCHEDULES_FID`)
    and the verdict of :func:`molli_utils.report.verdict`. Table 2 has no temperatures: for ``sigmoid-tau0.2``
    and ``sigmoid-tau0.9`` the paper's number is empty (``paper number`` says so) and the verdict compares
    with the direction of the paper's sigmoid (tau 0.7) only (``sized=False``). The VAE rows are those of
    ``decoder_variance`` (:func:`at_variance`)."""
    table2 = paper_numbers.SCHEDULES_FID if paper is None else paper
    frame = at_variance(frame, decoder_variance)
    rows = []
    for model in ABLATION["models"]:
        labels = [
            schedule_label(s, t)
            for s in ABLATION["schedules"]
            for t in (ABLATION["taus"] if s == "sigmoid" else (None,))
        ]
        p = table2[("cifar10", model)]
        for label in labels:
            van, mol = paired(frame, model, "gaussian", label)
            diffs = _log_changes(van, mol)
            if label in p:
                p_diff, sized, note = math.log(p[label] / p["vanilla"]), True, "Table 2"
            else:  # a temperature of the sigmoid: Table 2 has none; the sigmoid's direction
                p_diff, sized, note = (
                    math.log(p["sigmoid"] / p["vanilla"]),
                    False,
                    "none (Table 2 has no temperatures): the direction of its sigmoid",
                )
            verdict_ = verdict(diffs, p_diff, higher_is_better=False, sized=sized)
            if not sized:
                p_diff = math.nan
            rows.append(
                {
                    "model": model,
                    "schedule": label,
                    "seeds": len(diffs),
                    "FD": mol.mean(),
                    "FD sd": mol.std(),
                    "FD vanilla": van.mean(),
                    **_change_columns(diffs, p_diff),
                    "paper number": note,
                    "verdict (miniature)": verdict_,
                }
            )
    return pd.DataFrame(rows)
