"""The report's claim tables (chapter 5): the toys (Sec. 4.1), UCI (Table 4), the digits miniature (Tables 1
and 2), the cost and what is not run, and the constant-noise baseline (Sec. 2.2).

Each table reads frames of the stored results and judges every claim by the one rule,
:func:`molli_utils.report.verdict`, on paired differences per seed (:func:`molli_utils.report.paired_differences`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ...paper import NVAE_FID, TOY2D_MMD2, TWO_STEP_FID, UCI_TEST_LOGLIK
from .. import NOT_RUN, VERDICTS, paired_differences, say, uci_verdicts, verdict

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
    "variants_with_runs",
    "constant_table",
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
    from ...experiments import results

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
    from ...models.tabular import VARIANTS

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
    from ...experiments import images

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
    from ...experiments import images, settings

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


def variants_with_runs(uci: pd.DataFrame) -> list:
    """The variants of the flows (:data:`molli_utils.models.tabular.VARIANTS`, in that order) with runs in ``uci``."""
    from ...models.tabular import VARIANTS

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
    for variant in variants_with_runs(uci):
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
