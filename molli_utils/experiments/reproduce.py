"""Is a live run the stored run? Bit for bit on the same arithmetic, within stated tolerances on another.

A stored row records the float arithmetic that computed it (column ``arith``,
:func:`molli_utils.arithmetic.fingerprint`). A re-run of the same code and settings is judged by
what its own arithmetic lets us demand:

* **The same arithmetic** (equal fingerprints): every column of the row, and of its learning
  curve, equal to the last bit.
* **Another arithmetic, or one not recorded** (rows made before the column existed): a training
  run drifts, slowly and then -- for an overfitting flow -- chaotically, so the final numbers of
  two roundings can be nats apart. Demanded then:

  1. the keys and settings (data set, flow, mode, seed, epochs, steps, ...) exactly;
  2. the **early learning curve**, before chaos has amplified rounding, within a tolerance
     (:data:`UCI`, :data:`TOYS`: measured under forced other arithmetics and far below the
     distance to the neighbouring seed, so that a wrong seed, schedule or model fails it);
  3. the **final numbers** within an envelope: ``k`` standard deviations of the stored runs of
     the same cell, plus a floor (a change of rounding is one more source of seed-like noise).
     A run that diverged (a non-finite score, or frozen after non-finite losses: ``diverged_at``)
     on either arithmetic is not judged on its final numbers: divergence itself is chaotic (the
     stored vanilla circle of seed 0 froze at step 7,508, under ATen's and MKL's portable kernels at
     9,794, and on another CPU not at all). The toys judge only their MMD^2 (bounded,
     sample-based), over the runs of both CPUs they were stored from: an overfitting flow's test
     log-likelihood is unbounded below, and one test point that lands in a hole of the density
     moved the circle's early-stopped vanilla score from 0.41 to -3.7e30 under another rounding.

:func:`uci` and :func:`toys` find the stored row, curve and cell for a live result and return a
:class:`Reproduction`, whose :meth:`~Reproduction.sentence` a chapter prints and whose
:meth:`~Reproduction.check` raises :class:`ReproductionError` naming what differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .. import arithmetic
from . import results, toy2d
from . import uci as uci_experiment

__all__ = ["Tolerance", "UCI", "TOYS", "Reproduction", "ReproductionError", "compare", "uci", "toys", "drift"]


@dataclass(frozen=True)
class Tolerance:
    """What a re-run under another arithmetic must keep.

    ``early``: how many points of the learning curve are compared (UCI: epochs; toys: logged
    loss windows); their training loss must be within ``loss_rel`` (relative) or ``loss_abs``
    (nats) of the stored one, their validation log-likelihood within ``val_abs`` nats (``None``
    where the curve has none); ``envelope_sd`` and ``floor``: a final number in ``floor`` may move
    by ``envelope_sd`` x the standard deviation of the cell's stored runs plus ``floor[column]``
    (the columns not in ``floor`` are reported, not judged); ``exact``: the columns that must be
    equal whatever the arithmetic.
    """

    early: int
    loss_rel: float
    val_abs: Optional[float]
    envelope_sd: float
    floor: dict[str, float]
    exact: tuple[str, ...]
    loss_abs: float = 0.0


#: Table 4's runs. Measured on red wine, official MAF, seed 1, against the stored curves: forced to MKL's AVX2
#: kernels (``MKL_ENABLE_INSTRUCTIONS=AVX2``) the training loss moved by 2e-8 / 1e-7 / 1e-6 relative at epochs
#: 1 / 5 / 10 and the validation LL by at most 2.6e-4 nats in the first 10 epochs (an AMD EPYC: 3e-7 and
#: 3e-4); the nearest other seed of any stored cell is at least 3.2e-3 (loss) and 4.3e-2 nats (validation)
#: away over the same epochs. The final test LL moved by 0.03 (mollified) and 1.5 nats (vanilla, an
#: overfitting run; 1.9 on the AMD), against seed standard deviations of 0.31 and 6.4.
UCI = Tolerance(
    early=10,
    loss_rel=1e-4,
    val_abs=5e-3,
    envelope_sd=2.0,
    floor={"test_loglik": 0.05, "test_loglik_best_val": 0.05, "val_loglik": 0.05, "val_loglik_best": 0.05},
    exact=("dataset", "flow", "variant", "mode", "seed", "epochs", "steps", "hidden", "optimizer", "matmul"),
)

#: The 2D toys (20k steps, losses logged as 20-step means). Measured on chapter 3's four seed-0 runs against
#: the stored curves, forced to MKL's AVX2 kernels: every 20-step mean within 2e-7 relative over the first
#: 140 steps; then the vanilla circle, whose loss falls onto the ring around step 150, parts by 5e-3 at
#: step 160 and by 100% at step 200 (the three others stay within 3e-7 for 500 steps); ATen's and MKL's
#: portable kernels alike. The nearest other seed of any stored cell is 3.5e-3 away within the first 100
#: steps. Final scores: MMD^2 only, over both CPUs' runs, and not where a run diverged. The portable kernels
#: let the mixture's mollified seed 0 escape the one-Gaussian collapse (MMD^2 0.075 to 4e-4; its 6 stored
#: runs: sd 0.038) and froze the vanilla circle at step 9,794.
TOYS = Tolerance(
    early=5,
    loss_rel=1e-4,
    val_abs=None,
    envelope_sd=5.0,
    floor={"mmd2": 2e-4, "mmd2_best_val": 2e-4},
    exact=("dataset", "mode", "seed", "activation", "iterations"),
)


class ReproductionError(AssertionError):
    """A live run is not what the stored row says the same code computes."""


@dataclass
class Reproduction:
    """The verdict on one live run against its stored row (see the module docstring)."""

    what: str
    live_arith: str
    stored_arith: str
    identical: bool
    problems: list[str] = field(default_factory=list)
    early_gap: float = 0.0  #: largest relative gap of the training loss over the compared early points
    early_points: int = 0
    early_upto: Optional[Any] = None  #: the last compared curve point (epoch or step)
    parted_at: Optional[Any] = None  #: first curve point (epoch or step) whose training loss differs at all
    finals: dict[str, tuple[float, float, float]] = field(default_factory=dict)  #: column: (live, stored, allowed)
    unit: str = "epoch"
    diverged: bool = False  #: frozen after non-finite losses on either side (final numbers then not judged)

    @property
    def same_arithmetic(self) -> bool:
        return arithmetic.same(self.live_arith, self.stored_arith)

    @property
    def ok(self) -> bool:
        return not self.problems

    def check(self) -> "Reproduction":
        """Raise :class:`ReproductionError` if the live run is not the stored run; else return ``self``."""
        if self.problems:
            raise ReproductionError(
                f"{self.what}: the live run is not the stored row ({'; '.join(self.problems)}); "
                "if the code changed on purpose, re-run the table with its command"
            )
        return self

    def sentence(self) -> str:
        """One sentence for the reader: which case their machine is in, and what held."""
        head = f"{self.what}: "
        if not self.ok:
            return head + "DIFFERENT from the stored row: " + "; ".join(self.problems)
        if self.same_arithmetic:
            return head + (
                f"this machine computes with the stored row's arithmetic ({arithmetic.describe(self.live_arith)}), "
                "and the live run is the stored row to the last bit."
            )
        why = (
            "the stored row's arithmetic was not recorded"
            if arithmetic.describe(self.stored_arith) == "not recorded"
            else f"this machine ({arithmetic.describe(self.live_arith)}) does not compute with the stored row's "
            f"arithmetic ({arithmetic.describe(self.stored_arith)})"
        )
        if self.identical:
            return head + f"{why}, yet the live run is the stored row to the last bit."
        col, (live, stored, allowed) = next(iter(self.finals.items())) if self.finals else ("", (0.0, 0.0, 0.0))
        col = _NAMES.get(col, col)
        final = (
            f"; the final {col} is {live:.4g} against {stored:.4g} stored, {abs(live - stored):.3g} apart (within the "
            f"allowed {allowed:.3g}: the seeds' spread)"
            if self.finals
            else ""
        )
        if self.diverged:
            final = "; it diverged (non-finite losses) on one side or both, so its final scores are not compared"
        if self.early_upto is None:
            return head + f"{why}, so it rounds differently (no learning curve to compare){final}."
        return (
            head + f"{why}, so it rounds differently: the training losses agree to {self.early_gap:.1e} (relative) "
            f"over the first {self.early_upto:,} {self.unit}s and first differ at {self.unit} {self.parted_at}{final}."
        )


_NAMES = {"test_loglik": "test log-likelihood", "mmd2": "MMD²"}


def _missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def _equal(a: Any, b: Any) -> bool:
    """Equal as written to a CSV and read back: empty and nan alike, numbers by value (so 3 == 3.0)."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def compare(
    what: str,
    row: dict[str, Any],
    stored: dict[str, Any],
    tolerance: Tolerance,
    *,
    curve: Sequence[dict[str, Any]] = (),
    stored_curve: Sequence[dict[str, Any]] = (),
    spread: Optional[dict[str, float]] = None,
    point: str = "epoch",
    volatile: Sequence[str] = results.VOLATILE,
) -> Reproduction:
    """Judge a live ``row`` (and its learning ``curve``) against the ``stored`` row and curve.

    ``curve`` and ``stored_curve``: dicts with ``point`` (``"epoch"`` or ``"step"``), ``train_loss`` and,
    for UCI, ``val_loglik``; ``spread``: the standard deviation of each final column over the stored
    seeds of the cell (:attr:`Tolerance.floor`'s columns). Columns named in ``volatile`` describe
    the machine or the moment and are never compared.
    """
    spread = spread or {}
    live_arith, stored_arith = str(row.get("arith", "")), stored.get("arith", "")
    columns = [k for k in row if k not in volatile and k in stored]
    curve_cols = [c for c in ("train_loss", "val_loglik", "test_loglik") if curve and c in curve[0]]
    stored_at = {p[point]: p for p in stored_curve}
    pairs = [(p, stored_at.get(p[point])) for p in curve]
    identical = (
        all(_equal(row[k], stored[k]) for k in columns)
        and len(curve) == len(stored_curve)
        and all(s is not None and all(_equal(p[c], s[c]) for c in curve_cols) for p, s in pairs)
    )
    rep = Reproduction(what, live_arith, stored_arith, identical, unit=point)
    if len(curve) != len(stored_curve):
        rep.problems.append(f"the curve has {len(curve)} points, the stored one {len(stored_curve)}")
    if rep.same_arithmetic:
        if not identical:
            diffs = [k for k in columns if not _equal(row[k], stored[k])]
            diffs += [
                f"{c} at {point} {p[point]}"
                for p, s in pairs
                for c in curve_cols
                if s is None or not _equal(p[c], s[c])
            ][:3]
            rep.problems.append(f"same arithmetic, yet {', '.join(diffs[:6]) or 'the curves'} differ")
        return rep
    for k in tolerance.exact:
        if k in row and k in stored and not _equal(row[k], stored[k]):
            rep.problems.append(f"{k} is {row[k]!r}, stored {stored[k]!r}")
    early = [(p, s) for p, s in pairs[: tolerance.early] if s is not None]
    rep.early_points, rep.early_upto = len(early), early[-1][0][point] if early else None
    if not early and curve:
        rep.problems.append(f"no stored curve to compare the first {tolerance.early} {point}s with")
    for p, s in early:
        gap_abs = abs(p["train_loss"] - s["train_loss"])
        gap = gap_abs / max(abs(s["train_loss"]), 1e-12)
        rep.early_gap = max(rep.early_gap, gap) if math.isfinite(gap) else math.inf
        if rep.parted_at is None and not _equal(p["train_loss"], s["train_loss"]):
            rep.parted_at = p[point]
        if not (gap <= tolerance.loss_rel or gap_abs <= tolerance.loss_abs):
            allowed = f"{tolerance.loss_rel:g}" + (f" and {tolerance.loss_abs:g} nats" if tolerance.loss_abs else "")
            rep.problems.append(
                f"training loss at {point} {p[point]} is {p['train_loss']:.6g}, stored {s['train_loss']:.6g} "
                f"(relative gap {gap:.1e} > {allowed})"
            )
            break
        if (
            tolerance.val_abs is not None
            and "val_loglik" in p
            and not abs(p["val_loglik"] - s["val_loglik"]) <= tolerance.val_abs
        ):
            rep.problems.append(
                f"validation LL at {point} {p[point]} is {p['val_loglik']:.4f}, stored {s['val_loglik']:.4f} "
                f"(gap > {tolerance.val_abs:g} nats)"
            )
            break
    if rep.parted_at is None:
        rep.parted_at = next(
            (p[point] for p, s in pairs if s is not None and not _equal(p["train_loss"], s["train_loss"])), None
        )
    if not (_missing(row.get("diverged_at")) and _missing(stored.get("diverged_at"))):
        rep.diverged = True  # frozen after non-finite losses on one side or both: its final state is wherever that was
        return rep
    for col, floor in tolerance.floor.items():
        if col not in row or col not in stored:
            continue
        live, old = (math.nan if _missing(v) else float(v) for v in (row[col], stored[col]))
        if not (math.isfinite(live) and math.isfinite(old)):
            continue  # a divergence on one arithmetic only: chaotic, see the module docstring
        sd = spread.get(col, math.nan)
        allowed = tolerance.envelope_sd * (sd if math.isfinite(sd) else 0.0) + floor
        rep.finals[col] = (live, old, allowed)
        if abs(live - old) > allowed:
            rep.problems.append(
                f"{col} is {live:.4g}, stored {old:.4g}: {abs(live - old):.3g} apart, more than the "
                f"{allowed:.3g} that {tolerance.envelope_sd:g} seed sd + {floor:g} allow"
            )
    return rep


def _spread(frame, match: dict[str, Any], columns: Sequence[str]) -> dict[str, float]:
    """The standard deviation of ``columns`` over the stored seeds of the cell ``match`` (finite values only)."""
    cell = results.select(frame, **match)
    return {c: float(cell[c][cell[c].abs() < math.inf].std()) for c in columns if c in cell}


def uci(result, *, file: str = "uci.csv") -> Reproduction:
    """Judge a live :func:`molli_utils.experiments.uci.run` result against its stored row and curve in ``file``.

    Raises ``LookupError`` when no stored run has the result's settings (e.g. a shorter profile).
    """
    key, table = uci_experiment.key(result.config), results.load(file)
    rows = results.select(table, **key)
    if len(rows) != 1:
        raise LookupError(f"{len(rows)} stored runs in {file} with the settings {key}")
    stored = rows.iloc[0].to_dict()
    curve_key = {k: key[k] for k in results.FILES[uci_experiment.CURVES].key if k != "epoch"}
    stored_curve = (
        results.select(results.load(uci_experiment.CURVES), **curve_key).sort_values("epoch").to_dict("records")
    )
    cell = {k: key[k] for k in ("dataset", "flow", "variant", "mode", "epochs", "optimizer", "matmul")}
    spread = _spread(table, cell, list(UCI.floor))
    c = result.config
    what = f"{c.dataset}/{c.flow}/{c.variant}/{c.mode}, seed {c.seed}"
    return compare(what, result.row, stored, UCI, curve=result.curve, stored_curve=stored_curve, spread=spread)


def toys(result) -> list[Reproduction]:
    """Judge every run of a live :func:`molli_utils.experiments.toy2d.run` result against ``toy2d.csv``
    and ``toy2d_curves.csv``; runs with no stored twin (another length) are left out."""
    import pandas as pd

    table, curves = results.load(toy2d.RESULTS), results.load(toy2d.CURVES)
    pooled = pd.concat([table, results.load("toy2d_other_cpu.csv")], ignore_index=True)  # the same runs, two CPUs
    live_curve = result.curve()
    out = []
    for row in result.rows:
        key = {k: row[k] for k in ("dataset", "mode", "seed", "activation", "iterations")}
        stored = results.select(table, **key)
        if len(stored) != 1:
            continue
        mine = [p for p in live_curve if all(p[k] == v for k, v in key.items())]
        theirs = results.select(curves, **key).sort_values("step").to_dict("records")
        spread = _spread(pooled, {k: key[k] for k in ("dataset", "mode", "activation", "iterations")}, list(TOYS.floor))
        out.append(
            compare(
                f"{row['dataset']}/{row['mode']}, seed {row['seed']}",
                row,
                stored.iloc[0].to_dict(),
                TOYS,
                curve=mine,
                stored_curve=theirs,
                spread=spread,
                point="step",
            )
        )
    return out


def drift(curve, other):
    """Per epoch, how far two learning curves of the same run under two arithmetics are apart.

    ``curve``, ``other``: DataFrames with ``epoch``, ``train_loss`` and ``val_loglik`` (e.g. a run's rows of
    ``uci_curves.csv.gz`` and ``uci_rounding_curves.csv.gz``). Returns a DataFrame with ``epoch``,
    ``loss_rel`` (the relative gap of the training loss) and ``val_abs`` (the validation LL gap, nats).
    """
    a, b = (c.set_index("epoch").sort_index() for c in (curve, other))
    if not a.index.equals(b.index):
        raise ValueError(f"the curves cover different epochs ({len(a)} and {len(b)} points)")
    return (
        ((b.train_loss - a.train_loss).abs() / a.train_loss.abs())
        .rename("loss_rel")
        .to_frame()
        .assign(val_abs=(b.val_loglik - a.val_loglik).abs())
        .reset_index()
    )
