"""Chapter 3's prose, checked: :func:`learned` computes every number the chapter states from the stored
results, glues it for ``{glue:text}``, and raises ``AssertionError`` naming each statement that the numbers
no longer support."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from ...findings import Findings, glue
from .stored import (
    MEASURES,
    RUN_KEYS,
    ablation,
    blurred_ring_reference,
    by_seed,
    circle_runs,
    collapsed_by_mode,
    collapsed_mask,
    dead_table,
    default_grid,
    noise_floor,
    second_layer,
    single_gaussian_loglik,
    true_loglik,
)

__all__ = ["learned"]


def _span(values) -> str:
    values = np.asarray(values, dtype=float).ravel()
    return f"{values.min():.0f}-{values.max():.0f}%"


def learned(
    stored: Optional[pd.DataFrame] = None,
    *,
    dead: Optional[pd.DataFrame] = None,
    floors: Optional[pd.DataFrame] = None,
    other: Optional[pd.DataFrame] = None,
    reference: Optional[dict] = None,
) -> dict:
    """Every number of chapter 3's prose, computed from the stored results, glued, and checked.

    ``stored`` (``toy2d.csv``), ``dead`` (``toy2d_dead_units.csv``), ``floors`` (``toy2d_noise_floor.csv``) and
    ``other`` (``toy2d_other_cpu.csv``, the same runs on another CPU) default to the shipped files; ``reference``
    to :func:`blurred_ring_reference`. Each statement of the chapter's prose is a :class:`Findings` item with the
    condition that makes it true; :meth:`Findings.check` raises ``AssertionError`` naming those that no longer hold.
    Returns the glued values by key (``toy_...``).
    """
    from ...experiments import results
    from ...metrics import angular_tv_floor
    from ...paper import TOY2D_MMD2

    stored = results.load("toy2d.csv") if stored is None else stored
    dead = results.load("toy2d_dead_units.csv") if dead is None else dead
    floors = results.load("toy2d_noise_floor.csv") if floors is None else floors
    other = results.load("toy2d_other_cpu.csv") if other is None else other
    reference = blurred_ring_reference() if reference is None else reference
    all_runs, runs = default_grid(stored)
    found, facts = Findings(), {}

    def put(key, value):
        facts[key] = glue(key, value)

    # the mixture, the paper's comparison
    single_ll, true_ll = single_gaussian_loglik(), true_loglik()
    mix = runs[runs.dataset == "mixture_of_gaussians"]
    mixw = by_seed(mix, "mmd2")
    van_ll = mix[mix["mode"] == "vanilla"].test_loglik.mean()
    put("toy_mix_seeds", len(mixw))
    put("toy_mix_van_mmd", f"{mixw['vanilla'].mean():.1e}")
    put("toy_mix_mol_mmd", f"{mixw['mollification'].mean():.1e}")
    put("toy_mix_van_ll", f"{van_ll:.3f}")
    put("toy_true_ll", f"{true_ll:.3f}")
    found.add(
        "mixture: the vanilla flow has the lower MMD² on every seed, its test log-likelihood the true one's",
        holds=bool((mixw["vanilla"] < mixw["mollification"]).all()) and abs(van_ll - true_ll) < 0.02,
    )

    # the collapse with ReLU conditioners (the activation ablation)
    abl = ablation(stored)
    n_collapsed = abl.groupby(["activation", "mode"]).collapsed.sum()
    n_seeds = int(abl.groupby(["activation", "mode"]).seed.count().min())
    relu_mol, relu_van = int(n_collapsed["relu", "mollification"]), int(n_collapsed["relu", "vanilla"])
    put("toy_single_ll", f"{single_ll:.3f}")
    put("toy_last_seed", int(abl.seed.max()))
    put("toy_n_seeds", n_seeds)
    put("toy_relu_mol_collapsed", relu_mol)
    put("toy_relu_van_collapsed", relu_van)
    found.add(
        "with ReLU conditioners most mollified mixture runs collapse to one Gaussian, no vanilla run",
        holds=relu_mol > n_seeds / 2 and relu_van == 0,
    )

    # the dead units
    table = dead_table(dead, stored)
    couplings = [c for c in table.columns if c != "collapsed"]
    relu_end = table.loc["relu"]
    dead_collapsed = relu_end[relu_end.collapsed][couplings]
    dead_van = relu_end.loc["vanilla"][couplings]
    second = second_layer(dead)
    at_2k = second[(second["mode"] == "mollification") & (second.step == 2000)]
    at_2k = 100 * at_2k.groupby(RUN_KEYS).dead_fraction.mean()
    put("toy_dead_relu_mol_end", _span(dead_collapsed))
    put("toy_dead_relu_van_end", _span(dead_van))
    put("toy_dead_mol_2k", _span(at_2k))
    found.add(
        "in the collapsed runs more than 80% of the second layers are dead at the end, more than in any vanilla run",
        holds=len(dead_collapsed) > 0
        and float(dead_collapsed.min().min()) > float(dead_van.max().max())
        and float(dead_collapsed.min().min()) > 80,
    )

    # the clean half cannot repair it; half does not collapse
    by_mode = collapsed_by_mode(all_runs)
    collapsed = by_mode.get("mollification", [])
    put("toy_collapsed_seeds", ", ".join(map(str, collapsed)))
    put("toy_clean_half_seeds", ", ".join(map(str, by_mode.get("clean-half", []))))
    found.add(
        "clean-half collapses on exactly the seeds where mollification does; half on none",
        holds=bool(collapsed) and by_mode.get("clean-half") == collapsed and not by_mode.get("half"),
    )

    # LeakyReLU and the noise floor
    floor = noise_floor(floors)
    floor_q95 = floor.quantile(0.95)
    put("toy_floor_n", len(floor))
    put("toy_floor_mean", f"{floor.mean():.1e}")
    put("toy_floor_q95", f"{floor_q95:.1e}")
    leaky = abl[abl.activation == "leaky_relu"]
    lw_mmd, lw_ll = by_seed(leaky, "mmd2"), by_seed(leaky, "test_loglik").mean()
    leaky_wins = int((lw_mmd["mollification"] < lw_mmd["vanilla"]).sum())
    put("toy_ablation_minutes", f"{leaky.wall_seconds_all_runs.max() / 60:.0f}")
    put("toy_ablation_new", len(abl) - int(((abl.activation == "relu") & abl.seed.isin(range(3))).sum()))
    put("toy_leaky_runs", len(leaky))
    put("toy_leaky_collapsed", int(leaky.collapsed.sum()))
    put("toy_leaky_van_mmd", f"{lw_mmd['vanilla'].mean():.1e}")
    put("toy_leaky_mol_mmd", f"{lw_mmd['mollification'].mean():.1e}")
    put("toy_leaky_mol_wins", leaky_wins)
    put("toy_leaky_worst", f"{leaky.mmd2.max() / floor_q95:.0f}")
    put("toy_collapsed_times", f"{abl[abl.collapsed].mmd2.min() / floor_q95:.0f}")
    put("toy_leaky_ll_gap", f"{abs(lw_ll['mollification'] - lw_ll['vanilla']):.3f}")
    found.add(
        "with LeakyReLU no run collapses, every run within 10x the noise floor's 95th percentile, "
        "mollification lower on some seeds but not all",
        holds=len(leaky) > 0
        and not leaky.collapsed.any()
        and leaky.mmd2.max() < 10 * floor_q95
        and 0 < leaky_wins < n_seeds,
    )
    found.add(
        "the collapsed runs' MMD² lies far above the noise floor",
        holds=bool(abl.collapsed.any()) and abl[abl.collapsed].mmd2.min() > 10 * floor_q95,
    )

    # the circle at lengthscale 1
    ring, modes = circle_runs(all_runs)
    ringw = {c: by_seed(ring, c) for c in ("mmd2", "mmd2_ls0.1", "circle_dist_q50", "circle_dist_q90")}
    van, mol = ringw["mmd2"]["vanilla"], ringw["mmd2"]["mollification"]
    geo = float(np.exp((np.log(van) - np.log(mol)).mean()))
    paper = TOY2D_MMD2["von_mises"]
    paper_ratio = paper["vanilla"] / paper["mollification"]
    wins = int((mol < van).sum())
    put("toy_ring_geo", f"{geo:.1f}")
    put("toy_paper_ratio", f"{paper_ratio:.0f}")
    put("toy_ring_wins", wins)
    put("toy_ring_seeds", len(van))
    found.add(
        "circle: mollification lowers MMD² at lengthscale 1 on average and on most seeds, by less than a "
        "fifth of the paper's ratio",
        holds=1 < geo < paper_ratio / 5 and wins > len(van) / 2,
    )

    # what lengthscale 1 cannot see
    c = ring.groupby("mode")[list(MEASURES) + ["circle_dist_q90"]].mean().reindex(modes)
    const_q50, mol_q50 = c.loc["constant", "circle_dist_q50"], c.loc["mollification", "circle_dist_q50"]
    put("toy_const_mmd", f"{c.loc['constant', 'mmd2']:.1e}")
    put("toy_const_q50", f"{const_q50:.3f}")
    put("toy_blur_q50", f"{reference['circle_dist_q50']:.3f}")
    put("toy_blur_mmd", f"{reference['mmd2']:.0e}")
    found.add(
        "constant noise has the lowest MMD² at lengthscale 1 and the blurred data's median distance",
        holds=c["mmd2"].idxmin() == "constant" and abs(const_q50 / reference["circle_dist_q50"] - 1) < 0.2,
    )
    q50w, sharp = ringw["circle_dist_q50"], ringw["mmd2_ls0.1"]
    put("toy_mol_q50_max", f"{q50w['mollification'].max():.3f}")
    put("toy_mol_q50", f"{mol_q50:.3f}")
    put("toy_const_closer", f"{const_q50 / mol_q50:.1f}")
    put("toy_van_closer", f"{c.loc['vanilla', 'circle_dist_q50'] / mol_q50:.1f}")
    put("toy_n_modes", len(modes))
    put("toy_mol_mmd01", f"{c.loc['mollification', 'mmd2_ls0.1']:.4f}")
    put("toy_sharp_wins", int((sharp.idxmin(axis=1) == "mollification").sum()))
    found.add(
        "annealing puts half the mass nearer the circle than constant noise on every seed, at least twice "
        "as near as vanilla, with the lowest mean MMD² at lengthscale 0.1",
        holds=q50w["mollification"].max() < q50w["constant"].min()
        and c["mmd2_ls0.1"].idxmin() == "mollification"
        and mol_q50 < c.loc["vanilla", "circle_dist_q50"] / 2,
    )
    tv = c["angle_tv"]
    put("toy_tv_const", f"{tv['constant']:.3f}")
    put("toy_tv_floor", f"{angular_tv_floor(10_000):.3f}")
    put("toy_tv_mol", f"{tv['mollification']:.3f}")
    put("toy_tv_van", f"{tv['vanilla']:.3f}")
    found.add(
        "along the circle constant noise has the lowest angular TV, annealing lower than vanilla",
        holds=tv.idxmin() == "constant" and tv["mollification"] < tv["vanilla"],
    )
    q90 = ringw["circle_dist_q90"]
    put("toy_van_q90_min", f"{q90['vanilla'].min():.2f}")
    put("toy_mol_q90_max", f"{q90['mollification'].max():.2f}")
    found.add(
        "vanilla's 90th percentile of the distance from the circle is more than 4x the annealed flows'",
        holds=bool(q90["vanilla"].min() > 4 * q90["mollification"].max()),
    )

    # rounding alone moves the seeds
    o_mix = other[(other.dataset == "mixture_of_gaussians") & (other["mode"] == "mollification")]
    o_collapsed = sorted(int(s) for s in o_mix.seed[collapsed_mask(o_mix)])
    o_ring = by_seed(other[other.dataset == "von_mises"], "mmd2")
    put("toy_other_collapsed", ", ".join(map(str, o_collapsed)))
    put("toy_other_wins", int((o_ring["mollification"] < o_ring["vanilla"]).sum()))
    put("toy_other_seeds", len(o_ring))
    found.add(
        "on another CPU the same seeds collapse as often, but on other seeds",
        holds=o_collapsed != collapsed and len(o_collapsed) == len(collapsed),
    )
    found.check()
    return facts
