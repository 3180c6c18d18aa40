"""The findings ("What we learned") of chapters 1 and 2: their numbers, computed, checked and glued.

:func:`one_line_numbers` and :func:`why_numbers` gather what each chapter's prose states;
:func:`one_line_learned` and :func:`why_learned` check every statement on them and glue the numbers.
Each raises ``AssertionError`` (through :meth:`molli_utils.findings.Findings.check`) the day a sentence of
the chapter's prose stops holding, so the build fails rather than print a wrong statement.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np
import pandas as pd

from molli_utils import paper
from molli_utils.findings import Findings, glue_all

from .one_line import SCHEDULES, schedule_table

__all__ = ["one_line_numbers", "one_line_learned", "stored_divergence", "why_numbers", "why_learned"]


def one_line_numbers(
    by_tau: pd.DataFrame, near: Mapping[float, float], track: Mapping, blur_table: pd.DataFrame, toy_steps: int
) -> dict:
    """The numbers chapter 1's "What we learned" states (schedules and the paper's tables are recomputed here)."""
    sched = schedule_table()
    cross = by_tau["t/T where gamma = 1/2"]
    t2 = paper.SCHEDULES_FID[("cifar10", "realnvp")]
    t1 = paper.IMAGES_FID[("cifar10", "realnvp")]["vanilla"]
    fids = [t2[s] for s in SCHEDULES]
    glow = paper.SCHEDULES_FID[("cifar10", "glow")]
    std0 = blur_table["pixel std, blurred"]
    return {
        "cross_07": cross[0.7],
        "cross_02": cross[0.2],
        "cross_09": cross[0.9],
        "crossings_rise": bool(cross.is_monotonic_increasing),
        "snr_half_02": by_tau.loc[0.2, "log-SNR at t/T = 0.5"],
        "sigmoid_half": sched.loc[0.5, "gamma sigmoid"],
        "cosine_half": sched.loc[0.5, "gamma cosine"],
        "t2_realnvp": t2["vanilla"],
        "t1_realnvp": t1,
        "t1_vae": paper.IMAGES_FID[("cifar10", "vae")]["vanilla"],
        "fid_best": min(fids),
        "fid_worst": max(fids),
        "gain_low": t1 - max(fids),
        "gain_high": t1 - min(fids),
        "n_disagreements": len(paper.table2_disagreements()),
        "glow_vanilla": glow["vanilla"],
        "glow_linear": glow["linear"],
        "near_0": near[0.0],
        "near_half": near[0.5],
        "near_09": near[0.9],
        "near_end": near[1.0],
        "gap_mu": track["gap_mu"],
        "gap_std": track["gap_std"],
        "toy_steps": int(toy_steps),
        "mu_end": track["learned_mu"][-1][0],
        "mu_data": track["mean_x"][0],
        "blur_std0": std0[0.0],
        "blur_std_clean": std0[1.0],
        "blur_share": std0[0.0] / std0[1.0],
        "blur_std_rises": bool(std0.is_monotonic_increasing),
    }


def one_line_learned(n: Mapping[str, object]) -> Findings:
    """Check every statement of chapter 1's "What we learned" on ``n`` (:func:`one_line_numbers`) and glue
    its numbers as ``ol_<key>``. Raises ``AssertionError`` naming a statement that no longer holds."""
    learned = Findings()
    learned.add(
        "the sigmoid schedule (τ = 0.7) reaches SNR = 1 between t/T = 0.2 and 0.3, the cosine one "
        "halfway; at t/T = 0.5 the sigmoid leaves less than a quarter of the variance to noise",
        0.2 < n["cross_07"] < 0.3 and abs(n["cosine_half"] - 0.5) < 1e-3 and n["sigmoid_half"] < 0.25,
    )
    learned.add(
        "lower temperatures cross SNR = 1 sooner: before t/T = 0.1 at τ = 0.2, after 0.3 at τ = 0.9",
        n["crossings_rise"] and n["cross_02"] < 0.1 and n["cross_09"] > 0.3,
    )
    learned.add(
        "Table 2 prints the VAE's vanilla FID for REAL-NVP, the only disagreement with Table 1; every "
        "schedule beats Table 1's vanilla REAL-NVP; Glow's linear schedule gains less than half a point",
        n["t2_realnvp"] == n["t1_vae"] != n["t1_realnvp"]
        and n["fid_worst"] < n["t1_realnvp"]
        and n["n_disagreements"] == 1
        and n["glow_vanilla"] - n["glow_linear"] < 0.5,
    )
    learned.add(
        "the share of mollified points near the circle rises from under 30% at t = 0 to all at t = T",
        n["near_0"] < n["near_half"] < n["near_09"] < n["near_end"] == 1.0 and n["near_0"] < 0.3,
    )
    learned.add(
        "the toy Gaussian stays within 0.1 of the moving optimum and ends within 0.05 of the data's mean",
        n["gap_mu"] < 0.1 and n["gap_std"] < 0.1 and abs(n["mu_end"] - n["mu_data"]) < 0.05,
    )
    learned.add(
        "the most blurred photo keeps between 10% and 40% of the clean pixel std, and the std rises along the schedule",
        0.1 < n["blur_share"] < 0.4 and n["blur_std_rises"],
    )
    learned.check()
    glue_all({k: v for k, v in n.items() if not isinstance(v, bool)}, "ol_")
    return learned


def stored_divergence(stored: Optional[pd.DataFrame] = None) -> dict:
    """The stored vanilla runs on the circle (``toy2d.csv``, von Mises, ReLU): how many, and the earliest step
    at which one diverged; glued as ``n_vanilla_circle`` and ``diverged_step``. Raises ``AssertionError``
    if none diverged (the chapter says one did)."""
    if stored is None:
        from molli_utils.experiments import results

        stored = results.load("toy2d.csv")
    circle = stored[(stored.dataset == "von_mises") & (stored.activation == "relu")]
    vanilla = circle[circle["mode"] == "vanilla"]
    gone = vanilla.dropna(subset=["diverged_at"])
    assert len(gone), "the chapter says a stored vanilla run on the circle diverged; none did in toy2d.csv"
    out = {"n_vanilla_circle": len(vanilla), "diverged_step": f"{int(gone.diverged_at.min()):,}"}
    return glue_all(out)


def why_numbers(
    deltas,
    train_ll: Mapping,
    test_ll: Mapping,
    mmd: pd.DataFrame,
    summary: pd.DataFrame,
    floor_tv: float,
    scores: pd.DataFrame,
    best_fit: pd.DataFrame,
    gamma: float,
    continuation: Mapping[str, float],
) -> dict:
    """The numbers chapter 2's "What we learned" states. ``continuation`` holds ``theta0``, ``total``,
    ``theta_plain``, ``theta_cont``, ``theta_star``, ``f_plain``, ``f_cont``."""
    deltas = np.asarray(deltas)
    i_big = int(np.argmin(np.abs(deltas - 0.1)))
    tail = slice(-5, None)
    slopes = [np.polyfit(np.log(deltas[tail]), np.asarray(v)[tail], 1)[0] for v in train_ll.values()]
    true_ll, flip_ll = train_ll["true von Mises"], train_ll["flipped von Mises"]
    v, m = summary.loc["vanilla"], summary.loc["mollified"]
    d, noisy = scores.loc["data"], scores.loc["data + N(0, 0.1^2)"]
    true_fit = best_fit.loc["true von Mises"]
    return {
        "slope_min": min(slopes),
        "slope_max": max(slopes),
        "delta_small": deltas[-1],
        "delta_big": deltas[i_big],
        "flip_ll_small": flip_ll[-1],
        "flip_test_ll_small": test_ll["flipped von Mises"][-1],
        "true_ll_big": true_ll[i_big],
        "mmd_wrong_min": min(mmd["uniform"].min(), mmd["flipped von Mises"].min()),
        "mmd_true_small": mmd["true von Mises"].iloc[-1],
        "van_ll_max": v["highest train LL"],
        "mol_ll_noisy": m["highest LL, noise std > 0.1"],
        "van_collapses": int(v["collapses"]),
        "mol_collapses": int(m["collapses"]),
        "van_off_min": v["lowest off-circle"],
        "mol_off_noisy": m["lowest off-circle, noise std > 0.1"],
        "van_tv_min": v["lowest angle TV"],
        "mol_tv_min": m["lowest angle TV"],
        "floor_tv": floor_tv,
        "tv_wins": int(m["lower angle TV"]),
        "n_evals": int(m["evaluations"]),
        "van_tv_final": v["final angle TV"],
        "mol_tv_final": m["final angle TV"],
        "noisy_mmd_ls1": noisy["mmd2_ls1"],
        "data_mmd_ls1": d["mmd2_ls1"],
        "noisy_dist": noisy["circle_dist_mean"],
        "noisy_mmd_ls01": noisy["mmd2_ls0.1"],
        "data_mmd_ls01": d["mmd2_ls0.1"],
        "noise_std": math.sqrt(gamma),
        "fit_delta": true_fit["best bandwidth"],
        "fit_ll": true_fit["max mean log-lik."],
        "fit_wrong_ll": best_fit.drop("true von Mises")["max mean log-lik."].max(),
        "fit_ll_small": true_fit["log-lik. at smallest bandwidth"],
        **{
            k: continuation[k]
            for k in ("theta0", "total", "theta_plain", "theta_cont", "theta_star", "f_plain", "f_cont")
        },
    }


def why_learned(n: Mapping[str, object]) -> Findings:
    """Check every statement of chapter 2's "What we learned" on ``n`` (:func:`why_numbers`) and glue its
    numbers as ``why_<key>``. Raises ``AssertionError`` naming a statement that no longer holds."""
    learned = Findings()
    learned.add(
        "the training log-likelihood of every blurred candidate grows like −log δ (slopes within 0.05 "
        "of −1), and the flipped candidate at the smallest δ beats the true one at δ = 0.1",
        n["slope_max"] < -0.95 and n["slope_min"] > -1.05 and n["flip_ll_small"] > n["true_ll_big"],
    )
    learned.add(
        "MMD² of the wrong candidates stays more than ten times above the true one's at the smallest δ",
        n["mmd_wrong_min"] > 10 * max(abs(n["mmd_true_small"]), 1e-3),
    )
    learned.add(
        "vanilla REAL-NVP's training log-likelihood rises above the mollified run's noisy-phase best, "
        "collapses more often, and its samples come closer to the circle",
        n["van_ll_max"] > n["mol_ll_noisy"]
        and n["van_collapses"] > n["mol_collapses"]
        and n["van_off_min"] < n["mol_off_noisy"],
    )
    learned.add(
        "the mollified run's angular error is lower at its best, at most evaluations and at the end",
        n["mol_tv_min"] < n["van_tv_min"] and n["tv_wins"] > n["n_evals"] / 2 and n["mol_tv_final"] < n["van_tv_final"],
    )
    learned.add(
        "MMD² at lengthscale 1 cannot tell data plus noise of std 0.1 from the data, MMD² at 0.1 can",
        abs(n["noisy_mmd_ls1"]) < 1e-3
        and n["noisy_dist"] > 0.05
        and n["noisy_mmd_ls01"] > 10 * abs(n["data_mmd_ls01"]),
    )
    learned.add(
        "on mollified data the true candidate's likelihood peaks at a bandwidth near the noise std, "
        "above the wrong candidates' best, and falls far below it at the smallest bandwidth",
        0.05 < n["fit_delta"] < 0.2 and n["fit_ll"] > n["fit_wrong_ll"] and n["fit_ll_small"] < -10,
    )
    learned.add(
        "continuation ends at the global minimum, plain gradient descent more than 1 above it",
        abs(n["theta_cont"] - n["theta_star"]) < 0.01 and n["f_plain"] > n["f_cont"] + 1,
    )
    learned.check()
    glue_all(n, "why_")
    return learned
