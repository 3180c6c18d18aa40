"""The report's findings and its count of every claim: :func:`learned` (chapter 5's "What we learned",
computed, glued and checked) and :func:`summary` (the table of chapter 8)."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd

from ...findings import Findings, glue_all
from ...paper import UCI_TEST_LOGLIK
from .. import NOISE, OPPOSITE, SIMILAR, SMALLER, paired_differences, say, uci_verdicts, verdict
from .tables import LABEL, TOY_MEASURES, constant_table, paper_log_ratio, tally, toy_claims, toy_diffs

__all__ = ["learned", "summary"]


def learned(stored: dict, mean_digit_fd: float, *, show: bool = True) -> dict:
    """The numbers of chapter 5's "What we learned", from the stored results (``stored``: :func:`load`'s frames),
    each glued for the prose (myst-nb) under its key; returns ``{key: value}``.

    Checks every condition the prose states (:class:`~molli_utils.findings.Findings`) and raises
    ``AssertionError`` naming the findings that no longer hold, so that the build fails the day a re-run stops
    supporting one. With ``show``, says each finding's short name and that it holds."""
    from ...experiments import images

    toy, uci, digits, overhead = (stored[n] for n in ("toy2d.csv", "uci.csv", "images_digits.csv", "overhead.csv"))
    v: dict = {}
    check = Findings()
    v["uci_runs_official"] = int((uci["variant"] == "official").sum())
    v["uci_runs_paper_text"] = int((uci["variant"] == "paper-text").sum())
    v["uci_seeds"] = f"{uci['seed'].min()}-{uci['seed'].max()}"

    # UCI, paper-text flows, final models
    pt = uci_verdicts(uci, UCI_TEST_LOGLIK, variant="paper-text")
    annealed = pt[pt["comparison"] == "mollification - vanilla"]
    final = annealed[annealed["view"] == "final"]
    smaller = final[final["mean"] < final["paper"]]
    v.update(
        pt_cells=len(final),
        pt_smaller=len(smaller),
        pt_gain_min=final["mean"].min(),
        pt_gain_max=final["mean"].max(),
        pt_paper_min=final["paper"].min(),
        pt_paper_max=final["paper"].max(),
        pt_verdicts=tally(final["verdict"]),
    )
    check.add(
        "UCI paper-text: gains in all 9 cells, smaller than the paper's in most",
        len(final) == 9 and bool((final["mean"] > 0).all()) and len(smaller) > len(final) / 2,
    )
    # early stopping
    early = annealed[annealed["view"] == "early-stopped"]
    park, rest = early[early["data set"] == "parkinsons"], early[early["data set"] != "parkinsons"]
    v.update(
        park_flows=len(park),
        park_better=", ".join(park["better on"]),
        park_min=park["mean"].min(),
        park_max=park["mean"].max(),
        es_rest_cells=len(rest),
        es_rest_max=rest["mean"].max(),
        es_rest_noise=int((rest["verdict"] == NOISE).sum()),
    )
    check.add(
        "UCI paper-text, early-stopped: vanilla wins on Parkinsons on every seed; elsewhere under 1 nat",
        len(park) == 3
        and bool((park["mean"] < 0).all())
        and bool((park["better on"] == "0/4").all())
        and rest["mean"].max() < 1.0,
    )
    # constant noise
    const = pt[pt["comparison"] == "constant - vanilla"]
    helps = const[const["verdict"] == OPPOSITE]
    _, wins = constant_table(toy, uci)
    anneal_wins, anneal_pairs = wins[("UCI paper-text", "annealed − constant")]
    v.update(
        const_helps=len(helps),
        const_cells=len(const),
        const_min=helps["mean"].min(),
        const_max=helps["mean"].max(),
        anneal_wins=anneal_wins,
        anneal_pairs=anneal_pairs,
    )
    check.add(
        "UCI paper-text: constant noise beats vanilla beyond noise in most cells; annealing beats constant",
        len(helps) > len(const) / 2 and anneal_wins > anneal_pairs / 2,
    )
    # UCI, official flows
    of = uci_verdicts(uci, UCI_TEST_LOGLIK, variant="official")
    of = of[of["comparison"] == "mollification - vanilla"]
    of_fin, of_early = of[of["view"] == "final"], of[of["view"] == "early-stopped"]
    seeds = uci[uci["variant"] == "official"].groupby("dataset")["seed"].nunique()
    v.update(
        of_gains=int((of_fin["mean"] > 0).sum()),
        of_cells=len(of_fin),
        of_min=of_fin["mean"].min(),
        of_max=of_fin["mean"].max(),
        of_ratio=(of_fin["mean"] / of_fin["paper"]).median(),
        of_es_max=of_early["mean"].max(),
        of_es_losses=int((of_early["mean"] < 0).sum()),
        of_seeds=int(seeds.min()) if len(seeds) else 0,
    )
    check.add(
        "UCI official: final gains in all 9 cells at about the paper's size; early-stopped at most 0.5 nats",
        len(of_fin) == 9
        and bool((seeds == 4).all())
        and bool((of_fin["mean"] > 0).all())
        and 0.5 < v["of_ratio"] < 2
        and v["of_es_max"] < 0.5,
    )
    # the toys
    mix = toy_diffs(toy, "mixture_of_gaussians", "mmd2")
    claims = toy_claims(toy)
    v.update(
        mix_ratio=math.exp(mix.mean()),
        mix_higher=int((mix > 0).sum()),
        mix_seeds=len(mix),
        mix_paper_ratio=math.exp(paper_log_ratio("mixture_of_gaussians")),
    )
    check.add(
        "mixture: mollification opposite to the paper",
        claims.loc[("mixture, MMD² (ℓ = 1)", "annealed, final"), "verdict"] == OPPOSITE,
    )
    short = {"mmd2": "mmd2", "mmd2_ls0.1": "mmd2_fine", "angle_tv": "tv", "circle_dist_q50": "dist"}
    ring = {m: toy_diffs(toy, "von_mises", m) for m in TOY_MEASURES}
    cring = {m: toy_diffs(toy, "von_mises", m, "constant") for m in TOY_MEASURES}
    said = {m: claims.loc[(f"circle, {TOY_MEASURES[m]}", "annealed, final"), "verdict"] for m in TOY_MEASURES}
    for m, s in short.items():
        v.update(
            {
                f"circle_{s}_ratio": math.exp(ring[m].mean()),
                f"circle_{s}_lower": int((ring[m] < 0).sum()),
                f"circle_{s}_verdict": said[m],
            }
        )
    q50 = cring["circle_dist_q50"]
    v.update(
        circle_seeds=len(ring["mmd2"]),
        circle_measures=len(said),
        circle_clear=sum(s != NOISE for s in said.values()),
        const_circle_mmd2=math.exp(cring["mmd2"].mean()),
        const_circle_dist=math.exp(q50.mean()),
    )
    check.add(
        "circle: every measure lower on average, on at least 2 seeds, beyond noise not on all; constant noise "
        "lowers MMD² more but not the distance from the circle",
        all(v[f"circle_{s}_ratio"] < 1 and v[f"circle_{s}_lower"] >= 2 for s in short.values())
        and v["circle_clear"] < len(said)
        and v["const_circle_mmd2"] < v["circle_mmd2_ratio"]
        and abs(q50.mean()) < q50.std(),
    )
    # the digits miniature
    mini = images.miniature_table(digits).set_index(["model", "mollifier"])
    V, change = mini["verdict (miniature)"], mini["change %"]
    learns = mini.groupby("model")["FD vanilla"].first() < mean_digit_fd / 2
    paper_change = [-mini["paper change % (FID, CIFAR-10)"][m, "gaussian"] for m in images.VAES]
    vae_g = [V[m, "gaussian"] for m in images.VAES]
    blur = [V[m, "blur"] for m in images.MODELS]
    v.update(
        fd_vanilla_max=mini["FD vanilla"].max(),
        mean_digit_fd=float(mean_digit_fd),
        realnvp_change=change["realnvp", "gaussian"],
        realnvp_verdict=V["realnvp", "gaussian"],
        glow_change=change["glow", "gaussian"],
        glow_verdict=V["glow", "gaussian"],
        vae_change_min=min(change[m, "gaussian"] for m in images.VAES),
        vae_change_max=max(change[m, "gaussian"] for m in images.VAES),
        vae_verdicts=tally(vae_g),
        paper_vae_min=min(paper_change),
        paper_vae_max=max(paper_change),
        blur_verdicts=tally(blur),
    )
    toward = (SIMILAR, SMALLER)
    check.add(
        "digits: every model learns; Gaussian helps the flows, not the VAEs; blurring helps none",
        bool(learns.all())
        and all(V[m, "gaussian"] in toward for m in images.FLOWS)
        and not any(x in toward for x in vae_g)
        and not any(x in toward for x in blur),
    )
    # the cost
    bench = overhead.iloc[-1]
    v.update(
        overhead_pct=100 * bench["overhead_ratio"],
        mollifier_us=bench["mollifier_call_s"] * 1e6,
        step_ratio=bench["end_to_end_ratio"],
    )
    check.add(
        "cost: the mollifier under 1% of a step, a mollified step under 1.1 times a vanilla one",
        bench["overhead_ratio"] < 0.01 and bench["end_to_end_ratio"] < 1.1,
    )
    check.check()
    v = glue_all(v)
    if show:
        say(*(f"holds: {s}" for s, _ in check.items))
    return v


# --- every claim, counted (the table of chapter 8) -----------------------------------------------------------------


def summary(
    toy: pd.DataFrame, uci: pd.DataFrame, digits: pd.DataFrame, floor: Optional[pd.DataFrame] = None
) -> pd.DataFrame:
    """Every claim the book tests with the verdicts of its cells counted (:func:`tally`): UCI per variant and
    comparison, the toys' MMD² per conditioner activation (a score below the estimator's noise floor, the 95th
    percentile of ``floor`` = ``toy2d_noise_floor.csv``, counts as the floor), the digits miniature per family."""
    from ...experiments import images

    rows = []
    for variant in ("official", "paper-text"):
        t = uci_verdicts(uci, UCI_TEST_LOGLIK, variant=variant)
        t = t.assign(order=t["comparison"].str.startswith("const") * 2 + (t["view"] != "final"))
        for (_, view, comparison), g in t.groupby(["order", "view", "comparison"]):
            what = "annealed" if comparison.startswith("moll") else "constant"
            rows.append((f"UCI, {variant} flows", f"{what} − vanilla, {view}", len(g), tally(g["verdict"])))
    q95 = floor.groupby("dataset")["mmd2"].quantile(0.95) if floor is not None else {}
    for name in ("von_mises", "mixture_of_gaussians"):
        for act in ("relu", "leaky_relu"):
            runs = toy[(toy["dataset"] == name) & (toy["activation"] == act)]
            if runs.empty:
                continue
            runs = runs.assign(log_m=np.log(runs["mmd2"].clip(lower=q95.get(name, 1e-12))))
            d = paired_differences(runs, ["dataset"], "log_m")
            said = verdict(d, paper_log_ratio(name), higher_is_better=False)
            rows.append((f"2D toy, {LABEL[name]}", f"annealed − vanilla, MMD², {act}", 1, said))
    mini = images.miniature_table(digits)
    for mode, g in mini.groupby("mollifier"):
        for family, models in (("VAEs", images.VAES), ("flows", images.FLOWS)):
            sub = g[g["model"].isin(models)]
            rows.append(
                (f"digits miniature, {family}", f"{mode} − vanilla, FD", len(sub), tally(sub["verdict (miniature)"]))
            )
    return pd.DataFrame(rows, columns=["experiment", "claim", "cells", "verdicts"]).set_index(["experiment", "claim"])
