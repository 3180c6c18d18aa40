"""Chapter 8, "What to take away": what holds, what does not and why, from the stored runs.

:func:`learned` computes every number the chapter's prose quotes, checks the condition each of
its statements rests on (:class:`~molli_utils.findings.Findings`: an ``AssertionError`` naming the
statement when one stops holding) and glues the numbers (``tk_*`` keys) for the Markdown.
:func:`~molli_utils.report.claims.summary` builds the chapter's table of claims.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..data import load_toy2d
from ..findings import Findings, glue_all
from ..paper import UCI_TEST_LOGLIK
from . import NOISE, OPPOSITE, SIMILAR, SMALLER, paired_differences, uci_verdicts, verdict
from .claims import paper_log_ratio, tally

__all__ = ["learned", "single_gaussian_loglik"]

#: verdicts in the paper's direction
TOWARD = (SIMILAR, SMALLER)
RING_MEASURES = {
    "mmd2": "MMD² (ℓ = 1)",
    "mmd2_ls0.1": "MMD² (ℓ = 0.1)",
    "angle_tv": "angular TV",
    "circle_dist_q50": "median distance",
}


def single_gaussian_loglik() -> float:
    """Mean test log-likelihood of the moment-matched Gaussian on the mixture's test set (10,000 points):
    ``-log(2 pi e) - log(det Sigma) / 2`` in 2-D, the value a collapsed flow reaches."""
    x = load_toy2d("mixture_of_gaussians", n_test=10_000, seed=0)[1].numpy()
    return -math.log(2 * math.pi * math.e) - 0.5 * math.log(np.linalg.det(np.cov(x.T)))


def _log_verdict(runs: pd.DataFrame, column: str, paper: float, floor: float = 1e-12, sized: bool = True) -> str:
    """:func:`~molli_utils.report.verdict` of the per-seed paired differences of ``log(column)`` (lower is better),
    mollification minus vanilla; a value below ``floor`` counts as the floor."""
    d = paired_differences(runs.assign(log_m=np.log(runs[column].clip(lower=floor))), ["dataset"], "log_m")
    return verdict(d, paper, higher_is_better=False, sized=sized)


def learned(
    toy: pd.DataFrame,
    uci: pd.DataFrame,
    digits: pd.DataFrame,
    floor: pd.DataFrame,
    bench: pd.Series,
    *,
    gaussian_loglik: float | None = None,
) -> dict:
    """The chapter's numbers (a dict, also glued with the ``tk_`` prefix), after checking its findings.

    ``toy``, ``uci``, ``digits``, ``floor``: the stored ``toy2d.csv``, ``uci.csv``, ``images_digits.csv``,
    ``toy2d_noise_floor.csv``; ``bench``: the last row of ``overhead.csv``. Raises ``AssertionError`` naming
    every finding that no longer holds.
    """
    from ..experiments import images

    v: dict = {}
    f = Findings()
    # UCI (chapter 4), official flows: the final model gains, early stopping takes it away
    of = uci_verdicts(uci, UCI_TEST_LOGLIK, variant="official")
    of = of[of["comparison"] == "mollification - vanilla"]
    fin, early = of[of["view"] == "final"], of[of["view"] == "early-stopped"]
    v["fin_pos"], v["fin_n"] = int((fin["mean"] > 0).sum()), len(fin)
    v["fin_ratio"], v["fin_tally"] = float((fin["mean"] / fin["paper"]).median()), tally(fin["verdict"])
    f.add(
        "annealing improves every final official UCI model, by 0.5-2 times the paper's gain",
        holds=v["fin_pos"] == v["fin_n"] and 0.5 < v["fin_ratio"] < 2,
    )
    v["early_max"], v["early_neg"] = float(early["mean"].max()), int((early["mean"] < 0).sum())
    v["early_n"], v["early_tally"] = len(early), tally(early["verdict"])
    f.add(
        "against early stopping the gain is under 0.5 nats everywhere and negative somewhere",
        holds=v["early_max"] < 0.5 and v["early_neg"] > 0,
    )
    # constant noise (paper-text flows, final models)
    pt = uci_verdicts(uci, UCI_TEST_LOGLIK, variant="paper-text")
    const = pt[pt["comparison"] == "constant - vanilla"]
    annealed = pt[(pt["comparison"] == "mollification - vanilla") & (pt["view"] == "final")]
    v["const_helps"], v["const_n"] = int((const["verdict"] == OPPOSITE).sum()), len(const)
    key = ["data set", "flow"]
    v["const_share"] = float((const.set_index(key)["mean"] / annealed.set_index(key)["mean"]).median())
    f.add(
        "constant noise beats vanilla beyond seed noise in most UCI cells and recovers most of the annealed gain",
        holds=v["const_helps"] > v["const_n"] / 2 and v["const_share"] > 0.5,
    )
    # the mixture (chapter 3): ReLU conditioners collapse under noise, LeakyReLU ones do not
    q95 = floor.groupby("dataset")["mmd2"].quantile(0.95)
    gauss = single_gaussian_loglik() if gaussian_loglik is None else gaussian_loglik
    mix = toy[(toy["dataset"] == "mixture_of_gaussians") & toy["mode"].isin(["vanilla", "mollification"])]
    mix = mix.assign(collapsed=(mix["test_loglik"] - gauss).abs() < 0.01)
    n_col = mix.groupby(["activation", "mode"])["collapsed"].sum()
    n_run = mix.groupby(["activation", "mode"]).size()
    said = {
        act: _log_verdict(
            mix[mix["activation"] == act],
            "mmd2",
            paper_log_ratio("mixture_of_gaussians"),
            floor=q95["mixture_of_gaussians"],
        )
        for act in ("relu", "leaky_relu")
    }
    leaky = mix[mix["activation"] == "leaky_relu"]
    v.update(
        gauss_ll=gauss,
        mix_col_mol=int(n_col["relu", "mollification"]),
        mix_n_mol=int(n_run["relu", "mollification"]),
        mix_col_van=int(n_col["relu", "vanilla"]),
        mix_n_van=int(n_run["relu", "vanilla"]),
        mix_relu_verdict=said["relu"],
        leaky_col=int(n_col["leaky_relu"].sum()),
        leaky_n=int(n_run["leaky_relu"].sum()),
        leaky_verdict=said["leaky_relu"],
        leaky_max=float(leaky["mmd2"].max()),
        floor_q95=float(q95["mixture_of_gaussians"]),
    )
    f.add(
        "most mollified ReLU flows on the mixture end as one Gaussian, no vanilla one does (opposite to the paper); "
        "no LeakyReLU run collapses and the two modes are within seed noise",
        holds=v["mix_col_mol"] > v["mix_n_mol"] / 2
        and v["mix_col_van"] == 0
        and v["leaky_col"] == 0
        and said["relu"] == OPPOSITE
        and said["leaky_relu"] == NOISE,
    )
    # the circle (chapter 2's mechanism)
    ring = toy[(toy["dataset"] == "von_mises") & (toy["activation"] == "relu")]
    ring_said = {m: _log_verdict(ring, m, -1.0, sized=False) for m in RING_MEASURES}
    lower = {m: paired_differences(ring.assign(x=np.log(ring[m])), ["dataset"], "x") for m in RING_MEASURES}
    v["ring_changes"] = ", ".join(f"{RING_MEASURES[m]} {d.mean():+.2f}" for m, d in lower.items())
    v["ring_seeds"] = len(lower["mmd2"])
    v["ring_verdicts"] = "; ".join(f"{RING_MEASURES[m]}: {s}" for m, s in ring_said.items())
    f.add(
        "on the circle mollification lowers every distance to the data on average, and no measure goes the "
        "other way beyond seed noise",
        holds=all(d.mean() < 0 for d in lower.values()) and OPPOSITE not in ring_said.values(),
    )
    # the digits miniature (chapters 6 and 6b)
    mini = images.miniature_table(digits)
    mean_digit = images.mean_image_fd()
    said_img = mini.set_index(["model", "mollifier"])["verdict (miniature)"]
    change = mini.set_index(["model", "mollifier"])["change %"]
    unit = images.at_variance(digits, 1.0)
    unit = unit[unit["model"].isin(images.VAES) & (unit["mode"] == "vanilla")].groupby("model")["fd"].mean()
    stuck = unit > mean_digit / 2
    vae_g = [said_img[m, "gaussian"] for m in images.VAES]
    blur = [said_img[m, "blur"] for m in images.MODELS]
    v.update(
        fd_vanilla_max=float(mini["FD vanilla"].max()),
        mean_digit=float(mean_digit),
        realnvp_drop=float(-change["realnvp", "gaussian"]),
        glow_drop=float(-change["glow", "gaussian"]),
        realnvp_verdict=said_img["realnvp", "gaussian"],
        glow_verdict=said_img["glow", "gaussian"],
        vae_tally=tally(vae_g),
        stuck=int(stuck.sum()),
        n_vae=len(stuck),
        stuck_min=float(unit[stuck].min()),
        stuck_max=float(unit[stuck].max()),
        beta_fd=float(unit["beta_vae"]),
        blur_tally=tally(blur),
        n_models=len(images.MODELS),
        blur_worse=int(sum(change[m, "blur"] > change[m, "gaussian"] for m in images.MODELS)),
    )
    f.add(
        "every digits model learns; both flows gain from Gaussian mollification in the paper's direction, no VAE "
        "does; at unit decoder variance every VAE but the beta-VAE learns nothing",
        holds=all(said_img[m, "gaussian"] in TOWARD for m in images.FLOWS)
        and not any(s in TOWARD for s in vae_g)
        and v["fd_vanilla_max"] < mean_digit / 2
        and list(stuck.index[~stuck]) == ["beta_vae"],
    )
    f.add("blurring moves no digits model the paper's way", holds=not any(s in TOWARD for s in blur))
    # cost (make bench)
    v["overhead_pct"], v["end_to_end"] = 100 * float(bench["overhead_ratio"]), float(bench["end_to_end_ratio"])
    f.add(
        "the mollifier costs under 1% of a MAF step and a whole step under 1.1 times a vanilla one",
        holds=v["overhead_pct"] < 1 and v["end_to_end"] < 1.1,
    )
    f.check()
    glue_all(v, "tk_")
    return v
