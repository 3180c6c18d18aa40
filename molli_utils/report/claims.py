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
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd

from ..findings import Findings, glue_all
from ..paper import NVAE_FID, TOY2D_MMD2, TWO_STEP_FID, UCI_TEST_LOGLIK
from . import (
    NOISE,
    NOT_RUN,
    OPPOSITE,
    SIMILAR,
    SMALLER,
    UCI_VIEWS,
    VERDICTS,
    paired_differences,
    say,
    uci_verdicts,
    verdict,
)

__all__ = [
    "STORED",
    "LABEL",
    "TOY_MEASURES",
    "UCI_CELLS",
    "load",
    "tally",
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

#: The results files the report reads.
STORED = ("toy2d.csv", "uci.csv", "uci_curves.csv.gz", "images_digits.csv", "overhead.csv")

#: Names as the report prints them.
LABEL = {
    "redwine": "red wine",
    "whitewine": "white wine",
    "parkinsons": "Parkinsons",
    "maf": "MAF",
    "realnvp": "REAL-NVP",
    "glow": "GLOW",
    "vae": "VAE",
    "beta_vae": "β-VAE",
    "iwae": "IWAE",
    "vae_iaf": "VAE-IAF",
    "hvae": "HVAE",
    "mixture_of_gaussians": "mixture",
    "von_mises": "circle",
}

#: The toys' measures (lower is better): the paper's MMD² and three that see the circle (chapter 3).
TOY_MEASURES = {
    "mmd2": "MMD² (ℓ = 1)",
    "mmd2_ls0.1": "MMD² (ℓ = 0.1)",
    "angle_tv": "angular TV",
    "circle_dist_q50": "median distance",
}

#: The Table 4 cells the book runs (MiniBooNE needs a download).
UCI_CELLS = tuple(k for k in UCI_TEST_LOGLIK if k[0] != "miniboone")

_NO_BENEFIT = "no benefit (Sec. 2.2)"
_WHAT = {
    ("final", "mollification - vanilla"): "annealed, final",
    ("early-stopped", "mollification - vanilla"): "annealed, early-stopped",
    ("final", "constant - vanilla"): "constant, final",
}


def load(verbose: bool = True) -> dict:
    """The results files of :data:`STORED`, by name; with ``verbose``, say for each its rows, commits and command."""
    from ..experiments import results

    stored = {name: results.load(name) for name in STORED}
    for name, frame in stored.items() if verbose else ():
        commits = ", ".join(sorted(frame["commit"].astype(str).unique())) if "commit" in frame else "-"
        say(f"{name}: {len(frame)} rows, commits {commits}\nmade by: {results.FILES[name].produced_by}")
    return stored


# --- formatting -----------------------------------------------------------------------------------------------------


def _keep(text: str) -> str:
    """Narrow no-break spaces: '1.2 ± 0.3' stays on one line of a table cell."""
    return text.replace(" ", "\u202f")


def _spread(d: pd.Series, digits: int = 2) -> str:
    """Mean ± sd of paired differences (the mean alone for one pair); one decimal fewer from 10 up, none from 100."""
    if len(d) == 0:
        return "—"
    size = max(abs(d.mean()), d.std() if len(d) > 1 else 0.0)
    if size >= 10:
        digits = min(digits, 1 if size < 100 else 0)
    sd = f" ± {d.std():.{digits}f}" if len(d) > 1 else ""
    return _keep(f"{d.mean():+.{digits}f}{sd}")


def _better(d: pd.Series, higher_is_better: bool) -> str:
    """On how many seeds the treatment is better, as '3/4'."""
    wins = (d > 0) if higher_is_better else (d < 0)
    return f"{int(wins.sum())}/{len(d)}"


def tally(labels) -> str:
    """The verdicts of a claim's cells, counted, strongest first: '2 paper's direction, similar size; 1 ...'."""
    counts = pd.Series(list(labels), dtype=object).value_counts()
    return "; ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)


# --- the toys (Sec. 4.1) --------------------------------------------------------------------------------------------


def _relu(toy: pd.DataFrame) -> pd.DataFrame:
    """The paper's conditioners are unstated; the book's default is ReLU (chapter 3 compares LeakyReLU)."""
    return toy[toy["activation"] == "relu"] if "activation" in toy else toy


def paper_log_ratio(name: str) -> float:
    """The paper's ``log(MMD² mollified / MMD² vanilla)`` on toy ``name``."""
    p = TOY2D_MMD2[name]
    return math.log(p["mollification"] / p["vanilla"])


def toy_diffs(
    toy: pd.DataFrame, name: str, measure: str, treated: str = "mollification", view: str = "final"
) -> pd.Series:
    """Per seed (ReLU runs): ``log(measure of treated) - log(measure of vanilla)``; ``view="early-stopped"``
    reads the model of the best validation loss."""
    column = measure if view == "final" else f"{measure}_best_val"
    runs = _relu(toy)
    runs = runs[runs["dataset"] == name]
    runs = runs.assign(log_m=np.log(runs[column].clip(lower=1e-12)))
    return paired_differences(runs, ["dataset"], "log_m", treated=treated)


def _toy_claim(toy, name, measure, treated="mollification", view="final") -> dict:
    d = toy_diffs(toy, name, measure, treated, view)
    paper = paper_log_ratio(name)
    if treated == "constant":
        said, judged = _NO_BENEFIT, verdict(list(d), 0.0, higher_is_better=False)
    elif measure != "mmd2":  # a measure the paper did not report: its direction only
        said, judged = "not reported", verdict(list(d), -1.0, higher_is_better=False, sized=False)
    else:
        said = f"ratio {math.exp(paper):.3f}" + (" (final models only)" if view != "final" else "")
        judged = verdict(list(d), paper, higher_is_better=False)
    what = "annealed" if treated == "mollification" else "constant"
    return {
        "toy, measure": f"{LABEL[name]}, {TOY_MEASURES[measure]}",
        "treatment": f"{what}, {view}",
        "ratio": f"{math.exp(d.mean()):.3g}" if len(d) else "—",
        "Δ log": _spread(d),
        "better": _better(d, False),
        "paper": said,
        "verdict": judged,
    }


def toy_claims(toy: pd.DataFrame) -> pd.DataFrame:
    """The toy claims (``toy2d.csv``): MMD² at ℓ = 1 on both toys (annealed final and early-stopped, constant),
    and on the circle the three measures that see the manifold (annealed and constant, final). "ratio" is
    treated/vanilla, the geometric mean over seeds; "Δ log" the paired log differences, mean ± sd."""
    rows = []
    for name in TOY2D_MMD2:
        rows += [
            _toy_claim(toy, name, "mmd2"),
            _toy_claim(toy, name, "mmd2", view="early-stopped"),
            _toy_claim(toy, name, "mmd2", treated="constant"),
        ]
    for measure in ("mmd2_ls0.1", "angle_tv", "circle_dist_q50"):
        rows += [_toy_claim(toy, "von_mises", measure), _toy_claim(toy, "von_mises", measure, treated="constant")]
    return pd.DataFrame(rows).set_index(["toy, measure", "treatment"])


# --- UCI (Table 4) --------------------------------------------------------------------------------------------------


def _cell(dataset: str, flow: str) -> str:
    return f"{LABEL[dataset]}, {LABEL[flow]}"


def uci_claims(uci: pd.DataFrame, variant: str) -> pd.DataFrame:
    """The Table 4 claims for one ``variant`` of the flows, one row per cell and comparison (annealed final and
    early-stopped, constant final), from :func:`molli_utils.report.uci_verdicts`; a cell without runs says
    'not run here'."""
    table = uci_verdicts(uci, UCI_TEST_LOGLIK, variant=variant)
    rows = []
    for dataset, flow in UCI_CELLS:
        here = table[(table["data set"] == dataset) & (table["flow"] == flow)]
        if here.empty:
            rows.append((_cell(dataset, flow), "—", "—", "0/0", "—", NOT_RUN))
        for r in here.to_dict("records"):
            sd = f" ± {r['sd']:.2f}" if r["seeds"] > 1 else ""
            mean = _keep(f"{r['mean']:+.2f}{sd}") if r["seeds"] else "—"
            paper = _NO_BENEFIT
            if r["comparison"].startswith("mollification"):
                paper = f"{r['paper']:+.2f}" + (" (final models only)" if r["view"] != "final" else "")
            rows.append(
                (_cell(dataset, flow), _WHAT[r["view"], r["comparison"]], mean, r["better on"], paper, r["verdict"])
            )
    frame = pd.DataFrame(rows, columns=["cell", "comparison", "Δ (nats)", "better", "paper", "verdict"])
    cell_order = {_cell(*k): i for i, k in enumerate(UCI_CELLS)}
    order = {label: i for i, label in enumerate(["—", *_WHAT.values()])}
    frame = frame.sort_values(
        ["cell", "comparison"], key=lambda c: c.map(order if c.name == "comparison" else cell_order)
    )
    return frame.set_index(["cell", "comparison"])


def uci_tables(uci: pd.DataFrame, verbose: bool = True) -> dict:
    """:func:`uci_claims` for every variant with stored runs (official first); with ``verbose``, say each variant's
    runs and seeds, and 'not run here' for a variant without runs."""
    from ..models.tabular import VARIANTS

    tables = {}
    for variant in VARIANTS:
        runs = uci[uci["variant"] == variant]
        if verbose:
            say(
                f"{variant} variant: {len(runs)} runs, seeds {sorted(runs['seed'].unique().tolist()) or '—'}"
                + ("" if len(runs) else "; not run here: no stored runs of this variant")
            )
        if len(runs):
            tables[variant] = uci_claims(uci, variant)
    return tables


# --- images (Table 1 and 2 in miniature), cost, what is not run -------------------------------------------------------


def image_claims(digits: pd.DataFrame, mean_digit_fd: float) -> pd.DataFrame:
    """Table 1 in miniature (``images_digits.csv``, :func:`molli_utils.experiments.images.miniature_table`): the
    digits FD, vanilla → mollified, the paired log FD differences, the paper's log FID ratio on CIFAR-10 and the
    verdict; ``learns``: the model's vanilla FD is below half that of copies of the mean digit (``mean_digit_fd``)."""
    from ..experiments import images

    mini = images.miniature_table(digits)
    return pd.DataFrame(
        {
            "model": mini["model"].map(LABEL),
            "mollifier": mini["mollifier"].map({"gaussian": "Gaussian", "blur": "blur"}),
            "FD (digits)": [_keep(f"{v:.1f} → {m:.1f}") for v, m in zip(mini["FD vanilla"], mini["FD mollified"])],
            "Δ log FD": [_keep(f"{d:+.3f} ± {s:.3f}") for d, s in zip(mini["Δ log FD"], mini["Δ log FD sd"])],
            "seeds": mini["seeds"],
            "paper Δ log FID": mini["paper Δ log FID (CIFAR-10)"].round(3),
            "learns": mini["FD vanilla"] < mean_digit_fd / 2,
            "verdict": mini["verdict (miniature)"],
        }
    ).set_index(["model", "mollifier"])


def _schedule_claim(ablation: pd.DataFrame, model: str) -> dict:
    runs = ablation[ablation["model"] == model]
    best = runs.loc[runs["FD"].idxmin()]
    return {
        "claim": f"every schedule beats vanilla (Table 2), {LABEL[model]}",
        "paper": "sigmoid, cosine, linear all below vanilla",
        "ours": f"digits miniature (FD), not CIFAR-10 FID: best {best['schedule']} (FD {best['FD']:.1f} against "
        f"vanilla {best['FD vanilla']:.1f}), {len(runs)} schedules",
        "verdict": tally(runs["verdict (miniature)"]),
    }


def other_claims(digits: pd.DataFrame, overhead: pd.DataFrame) -> pd.DataFrame:
    """The claims outside the three main tables: Table 2's schedules in miniature (per ablated model, the verdicts
    of its schedules against vanilla), the cost of mollification (``overhead.csv``, ``make bench``), and the
    claims not run here with the reason: images on CIFAR-10/CelebA, Table 3's two-step methods, NVAE, MiniBooNE."""
    from ..experiments import images, settings

    ablation = images.ablation_table(digits)
    bench = overhead.iloc[-1]
    rows = [_schedule_claim(ablation, m) for m in settings.IMAGE_ABLATION["models"]]
    rows += [
        {
            "claim": "no computational overhead",
            "paper": "none (qualitative)",
            "ours": f"the mollifier: {100 * bench.overhead_ratio:.2f}% of a MAF training step "
            f"({bench.mollifier_call_s * 1e6:.0f} µs against {bench.train_step_s * 1e3:.1f} ms); a whole "
            f"mollified step: {bench.end_to_end_ratio:.3f} times a vanilla one (benchmark make bench, "
            "benchmarks/bench_overhead.py)",
            "verdict": "one benchmark run, no seeds: see the numbers",
        },
        {
            "claim": "images on CIFAR-10 / CelebA (FID)",
            "paper": "Tables 1 and 2",
            "ours": "—",
            "verdict": f"{NOT_RUN}: needs a GPU with network access",
        },
        {
            "claim": "better than or comparable with the two-step methods (Table 3)",
            "paper": ", ".join(f"{k.upper()} {v:.2f}" for k, v in TWO_STEP_FID["cifar10"].items()),
            "ours": "—",
            "verdict": f"{NOT_RUN}: CIFAR-10 with the two-step method's own code (a generalised autoencoder and four "
            "density estimators on its codes), a GPU job",
        },
        {
            "claim": "NVAE on CIFAR-10 (Sec. 4.2)",
            "paper": f"FID {NVAE_FID['cifar10']['vanilla']:.2f} → {NVAE_FID['cifar10']['gaussian']:.2f}, one run each",
            "ours": "—",
            "verdict": f"{NOT_RUN}: 300 epochs of NVAE on two A100s (Appendix D.2-D.3)",
        },
        {
            "claim": "UCI, MiniBooNE",
            "paper": "Table 4",
            "ours": "—",
            "verdict": f"{NOT_RUN}: needs the MiniBooNE download",
        },
    ]
    return pd.DataFrame(rows).set_index("claim")


# --- the constant-noise baseline (Sec. 2.2) --------------------------------------------------------------------------

_PAIRS = (("constant − vanilla", "constant", "vanilla"), ("annealed − constant", "mollification", "constant"))
_VIEWS = (("final", ""), ("early-stopped", "_best_val"))


def _variants(uci: pd.DataFrame) -> list:
    from ..models.tabular import VARIANTS

    return [v for v in VARIANTS if (uci["variant"] == v).any()]


def constant_table(toy: pd.DataFrame, uci: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Constant noise against vanilla, and annealed against constant noise, final and early-stopped: per toy
    measure (log differences, lower better) and per UCI cell and variant (nats, higher better), 'mean ± sd (seeds
    on which the first-named mode is better)'. Also the UCI tally ``{(experiment, pair): (wins, pairs)}`` of the
    final models."""
    groups = []
    for name, measure in [("mixture_of_gaussians", "mmd2")] + [("von_mises", m) for m in TOY_MEASURES]:
        runs = _relu(toy)
        runs = runs[runs["dataset"] == name]
        logs = {m + s: np.log(runs[m + s].clip(lower=1e-12)) for m in TOY_MEASURES for s in ("", "_best_val")}
        groups.append(
            ("toys", f"{LABEL[name]}, {TOY_MEASURES[measure]}", runs.assign(**logs), ["dataset"], measure, False)
        )
    for variant in _variants(uci):
        runs = uci[uci["variant"] == variant]
        for dataset, flow in UCI_CELLS:
            sub = runs[(runs["dataset"] == dataset) & (runs["flow"] == flow)]
            groups.append((f"UCI {variant}", _cell(dataset, flow), sub, ["dataset", "flow"], "test_loglik", True))
    rows, wins = [], {}
    for experiment, cell, frame, keys, metric, higher in groups:
        row = {"experiment": experiment, "cell": cell}
        for label, treated, control in _PAIRS:
            for view, suffix in _VIEWS:
                d = paired_differences(frame, keys, metric + suffix, treated=treated, control=control)
                row[label, view] = f"{_spread(d)} ({_better(d, higher)})" if len(d) else "not yet run here"
                if view == "final" and higher:  # UCI
                    w = wins.setdefault((experiment, label), [0, 0])
                    w[0], w[1] = w[0] + int((d > 0).sum()), w[1] + len(d)
        rows.append(row)
    table = pd.DataFrame(rows).set_index(["experiment", "cell"])
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table, {k: tuple(v) for k, v in wins.items()}


# --- figures ----------------------------------------------------------------------------------------------------------


def plot_uci_gains(uci: pd.DataFrame):
    """Per-seed paired differences of the test log-likelihood, treatment − vanilla, one panel per variant with runs
    (symmetric-log axis): annealed final (blue dots), annealed early-stopped (blue open squares), constant final
    (green triangles), the paper's difference (black bar). Returns the figure."""
    import matplotlib.pyplot as plt

    from ..palette import color

    present = _variants(uci)
    kinds = (
        ("final", "mollification", "o", "annealed − vanilla, final"),
        ("early-stopped", "mollification", "s", "annealed − vanilla, early-stopped"),
        ("final", "constant", "^", "constant − vanilla, final"),
    )
    fig, axes = plt.subplots(len(present), 1, squeeze=False, figsize=(8, 3.4 * len(present)))
    for ax, variant in zip(axes[:, 0], present):
        runs = uci[uci["variant"] == variant]
        for i, (dataset, flow) in enumerate(UCI_CELLS):
            sub = runs[(runs["dataset"] == dataset) & (runs["flow"] == flow)]
            for j, (view, treated, marker, label) in enumerate(kinds):
                d = paired_differences(sub, ["dataset", "flow"], UCI_VIEWS[view], treated=treated)
                c = color(treated)
                ax.scatter(
                    np.full(len(d), i + (j - 1) * 0.22),
                    d,
                    s=22,
                    marker=marker,
                    label=label if i == 0 else None,
                    color=c if view == "final" else "none",
                    edgecolors=c,
                )
            p = UCI_TEST_LOGLIK[(dataset, flow)]
            ax.plot(
                [i - 0.35, i + 0.35],
                [p["mollification"][0] - p["vanilla"][0]] * 2,
                color=color("data"),
                lw=2,
                label="paper" if i == 0 else None,
            )
        ax.axhline(0, color="gray", lw=0.8)
        ax.set_ylim(top=2 * max(ax.get_ylim()[1], 1))  # room for the bars
        ax.set_xticks(range(len(UCI_CELLS)), [f"{LABEL[d]}\n{LABEL[f]}" for d, f in UCI_CELLS], fontsize=7)
        ax.set(ylabel="treatment − vanilla\ntest LL (nats)", yscale="symlog", title=f"{variant} variant")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.12 / len(present), 1, 1))
    return fig


def plot_uci_curves(curves: pd.DataFrame, variant: str, peak_before: int = 75):
    """The mean validation log-likelihood per epoch of each mode (vanilla, annealed, constant) over the stored seeds,
    one panel per cell of ``variant`` (``uci_curves.csv.gz``), the best epoch marked; an epoch of -inf (one row at
    zero density) is left out. Says how many vanilla runs peak before epoch ``peak_before``; returns the figure."""
    import matplotlib.pyplot as plt

    from ..palette import color

    runs = curves[curves["variant"] == variant]
    runs = runs.assign(val_loglik=runs["val_loglik"].replace(-np.inf, np.nan))
    here = [k for k in UCI_CELLS if ((runs["dataset"] == k[0]) & (runs["flow"] == k[1])).any()]
    nrow = max(1, math.ceil(len(here) / 3))
    fig, axes = plt.subplots(nrow, 3, figsize=(10, 2.8 * nrow), squeeze=False)
    for ax, (dataset, flow) in zip(axes.flat, here):
        cell = runs[(runs["dataset"] == dataset) & (runs["flow"] == flow)]
        for mode in ("vanilla", "mollification", "constant"):
            c = cell[cell["mode"] == mode]
            if c.empty:
                continue
            mean = c.groupby("epoch")["val_loglik"].mean()
            ax.plot(mean.index, mean.values, color=color(mode), label=mode)
            ax.plot(mean.idxmax(), mean.max(), "o", color=color(mode))
        ax.set_ylim(bottom=cell["val_loglik"].quantile(0.1))
        ax.set_title(f"{LABEL[dataset]} / {LABEL[flow]}", fontsize=9)
        ax.set(xlabel="epoch", ylabel="validation LL")
    for ax in list(axes.flat)[len(here) :]:
        ax.axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(f"{variant} variant", fontsize=10)
    fig.tight_layout(rect=(0, 0.04 / nrow, 1, 1))
    vanilla = runs[runs["mode"] == "vanilla"]
    best = vanilla.loc[vanilla.groupby(["dataset", "flow", "seed"])["val_loglik"].idxmax()]
    say(
        f"{variant}: vanilla runs whose validation LL peaks before epoch {peak_before}: "
        f"{int((best['epoch'] < peak_before).sum())} of {len(best)}"
    )
    return fig


# --- what we learned ------------------------------------------------------------------------------------------------


def learned(stored: dict, mean_digit_fd: float, *, show: bool = True) -> dict:
    """The numbers of chapter 5's "What we learned", from the stored results (``stored``: :func:`load`'s frames),
    each glued for the prose (myst-nb) under its key; returns ``{key: value}``.

    Checks every condition the prose states (:class:`~molli_utils.findings.Findings`) and raises
    ``AssertionError`` naming the findings that no longer hold, so that the build fails the day a re-run stops
    supporting one. With ``show``, says each finding's short name and that it holds."""
    from ..experiments import images

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
    from ..experiments import images

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
