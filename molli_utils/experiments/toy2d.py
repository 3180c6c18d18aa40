"""The 2D toys (paper Sec. 4.1, Appendix D.3.1): REAL-NVP, vanilla vs mollified, scored by MMD^2.

One run (:class:`Toy2DRun`) trains :func:`~molli_utils.models.toy.realnvp_2d` (5 coupling
layers, 2 x 64 hidden units) with Adam (5e-4, batch 256) for 20k steps on 10,000 points of
a toy, in one of the modes of :data:`~molli_utils.experiments.modes.MODES`:

* ``vanilla``; ``mollification`` (Gaussian, sigmoid schedule over the whole run);
* ``constant`` (fixed noise variance 0.01: the "constant noise does not help" baseline of Sec. 2.2);
* ``half`` (the sigmoid schedule over the first half of the run, then clean data: the image recipe);
* ``clean-half`` (the whole run's sigmoid schedule for its first half, then clean data: the
  annealing of ``mollification`` with the clean phase of ``half``).

:func:`run` trains any number of runs at once as one vectorised
:class:`~molli_utils.models.ensemble.FlowEnsemble` (the same updates as separate runs; every
member's numbers are bitwise those it gets in any other ensemble of two or more runs; a run
trained alone differs in the last bits, as other matrix kernels run). Runs with the same seed
share their initial parameters and batch order (and the noised modes their noise generator's
seed), so their differences are the mode alone. Every run is scored twice: at the last step,
and at the step with the lowest mean NLL on a held-out validation set (early stopping,
evaluated every ``steps // n_evals`` steps; :func:`validation_set`). Score: MMD^2 (RBF kernel,
lengthscale 1, variance 1) between ``n_samples`` model samples and the test set, and the mean
test log-likelihood; on the circle also scores that see the manifold
(:func:`~molli_utils.metrics.circle_scores`: the samples' distance from the circle, the error of
the density along it, and MMD^2 at lengthscale 0.1).

The conditioners' activation is a run setting (``activation``: ``relu``, the default and the
stored rows' before it was a column, or ``leaky_relu``; the paper does not say which it used).
With ``dead_units_every``, :func:`run` also records the fraction of each coupling net's hidden
units that are dead on the test points (:func:`~molli_utils.models.toy.dead_units`) over training
(``toy2d_dead_units.csv``): chapter 3's mechanism of the mixture's collapse.

Command line: ``python -m molli_utils.experiments toy2d`` (see :mod:`molli_utils.experiments`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from .. import arithmetic
from ..data import get_toy2d, load_toy2d
from ..metrics import MMDReference, circle_scores, mmd2_noise_floor
from ..models.ensemble import FlowEnsemble
from ..models.toy import ACTIVATIONS, check_activation, dead_units, realnvp_2d
from ..training import TrainConfig, TrainResult, train
from . import modes, profiles, results

__all__ = [
    "DATASETS",
    "MODES",
    "PAPER_MODES",
    "ACTIVATIONS",
    "RESULTS",
    "CURVES",
    "DEAD_UNITS",
    "CURVE_STEPS",
    "NOISE_FLOOR",
    "SEEDS",
    "BUDGETS",
    "IDENTITY",
    "KEY_COLUMNS",
    "Toy2DRun",
    "Toy2DResult",
    "BestByValidation",
    "from_profile",
    "grid",
    "run",
    "validation_set",
    "key",
    "noise_floor",
]

DATASETS = ("mixture_of_gaussians", "von_mises")
#: The paper's two modes (the benchmarks time these).
PAPER_MODES = ("vanilla", "mollification")
#: The modes of the toy experiment; the command's default is the first three. ``half`` anneals over the first
#: half of the run and then trains on clean data; ``clean-half`` keeps the whole run's (slower) annealing but
#: stops it halfway: together they separate the speed of the annealing from the length of the clean phase.
MODES = ("vanilla", "mollification", "constant", "half", "clean-half")
RESULTS, CURVES, DEAD_UNITS = "toy2d.csv", "toy2d_curves.csv", "toy2d_dead_units.csv"
NOISE_FLOOR = "toy2d_noise_floor.csv"
#: How much of each run's training loss ``toy2d_curves.csv`` keeps (steps).
CURVE_STEPS = 2_000
#: The seeds of the stored results (and the command line's default).
SEEDS = (0, 1, 2)
#: Per profile, the run fields that differ from the paper's defaults (Appendix D.3.1: 20k steps; on Colab's CPU
#: the four live runs take ~3 min).
BUDGETS: dict[str, dict[str, Any]] = {"full": {}, "colab": {}, "quick": {"steps": 2_000, "n_samples": 2_000}}
#: The fields that name a run (not its budget).
IDENTITY = ("dataset", "mode", "seed", "activation")
#: The key columns of ``toy2d.csv`` (``results.FILES[RESULTS].key``) not named as the run field they hold.
KEY_COLUMNS = {"iterations": "steps"}


@dataclass(frozen=True)
class Toy2DRun:
    """One toy run; the defaults are the paper's settings (Appendix D.3.1)."""

    dataset: str
    mode: str
    seed: int
    steps: int = 20_000
    batch_size: int = 256
    lr: float = 5e-4
    n_train: int = 10_000
    n_test: int = 10_000
    n_val: int = 10_000
    n_samples: int = 10_000
    n_evals: int = 20
    activation: str = "relu"

    def __post_init__(self) -> None:
        check_activation(self.activation)
        for name, value, valid in (("dataset", self.dataset, DATASETS), ("mode", self.mode, MODES)):
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; choose one of {list(valid)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("dataset", "mode", "lr", "activation") and (
                isinstance(value, bool) or not isinstance(value, int) or value < (0 if f.name == "seed" else 1)
            ):
                raise ValueError(
                    f"{f.name} must be a {'non-negative' if f.name == 'seed' else 'positive'} integer, got {value!r}"
                )

    @property
    def training(self) -> tuple:
        """The settings every member of one ensemble must share (one architecture: one activation)."""
        return (
            self.steps,
            self.batch_size,
            self.lr,
            self.n_train,
            self.n_test,
            self.n_val,
            self.n_samples,
            self.n_evals,
            self.activation,
        )


def from_profile(profile_name: Optional[str] = None, **fields_: Any) -> Toy2DRun:
    """One :class:`Toy2DRun` of ``profile_name`` (default: :func:`~molli_utils.experiments.profiles.profile`):
    ``BUDGETS[profile]`` with ``fields_`` (``dataset``, ``mode``, ``seed``, any other field) on top."""
    return Toy2DRun(**{**profiles.budget_of(BUDGETS, profile_name), **fields_})


def key(r: Toy2DRun) -> dict[str, Any]:
    """The recorded-run key of ``r`` in ``toy2d.csv``: its values of the file's key columns
    (:func:`~molli_utils.experiments.results.run_key`; ``iterations``: ``steps``)."""
    return results.run_key(RESULTS, r, KEY_COLUMNS)


def grid(
    profile: Optional[str] = None,
    *,
    datasets: Sequence[str] = DATASETS,
    modes: Sequence[str] = ("vanilla", "mollification", "constant"),
    seeds: Optional[Sequence[int]] = None,
    **fields_: Any,
) -> list[Toy2DRun]:
    """Every (data set, mode, seed) of ``profile`` (:func:`from_profile`; seeds default to :data:`SEEDS`),
    data set-major."""
    seeds = SEEDS if seeds is None else seeds
    return [from_profile(profile, dataset=d, mode=m, seed=s, **fields_) for d in datasets for m in modes for s in seeds]


def validation_set(name: str, n_val: int = 10_000, seed: int = 0) -> torch.Tensor:
    """A validation set ``[n_val, 2]`` of toy ``name``, independent of :func:`~molli_utils.data.load_toy2d`'s.

    ``load_toy2d(name, seed=seed)`` draws train and test from the first two children of
    ``numpy.random.SeedSequence(seed)``; this draws from the third, so the train and test
    sets are unchanged and the three sets are independent.
    """
    child = np.random.SeedSequence(seed).spawn(3)[2]
    gen = torch.Generator().manual_seed(int(child.generate_state(1, dtype=np.uint64)[0]))
    return get_toy2d(name).sample(n_val, gen)


class BestByValidation:
    """A training callback: every ``every`` steps (and at step ``total``) the mean validation NLL
    of each member; keeps each member's parameters at its lowest finite value.

    ``val`` is ``[M, n, 2]`` (one validation set per member). After training, ``steps`` and
    ``nll`` (one list of M floats per evaluation) hold the curve, ``best_step[m]`` the step
    (``None`` if no value was finite) and ``best_nll[m]`` the value; :meth:`best_ensemble`
    returns a copy of the ensemble holding every member's best parameters.
    """

    def __init__(self, ensemble: FlowEnsemble, val: torch.Tensor, every: int, total: int) -> None:
        self.val, self.every, self.total = val, every, total
        self.steps: list[int] = []
        self.nll: list[list[float]] = []
        self.best_nll = [math.inf] * len(ensemble)
        self.best_step: list[Optional[int]] = [None] * len(ensemble)
        self.params = {k: v.detach().clone() for k, v in ensemble.stacked.items()}

    @torch.no_grad()
    def __call__(self, step: int, ensemble: FlowEnsemble) -> None:
        if step % self.every and step != self.total:
            return
        nll = (-ensemble.log_prob(self.val).double().mean(1)).tolist()
        self.steps.append(step)
        self.nll.append(nll)
        better = [math.isfinite(v) and v < b for v, b in zip(nll, self.best_nll)]
        if any(better):
            rows = torch.tensor(better)
            for k, v in ensemble.stacked.items():
                self.params[k][rows] = v.detach()[rows]
            for m in (m for m, b in enumerate(better) if b):
                self.best_nll[m], self.best_step[m] = nll[m], step

    def fingerprint(self) -> dict[str, int]:
        """The settings a checkpoint of the tracker must share with the run resuming from it."""
        return {"every": self.every, "total": self.total, "members": len(self.best_nll), "n_val": self.val.shape[1]}

    def state_dict(self) -> dict[str, Any]:
        """The curve so far and every member's best value, step and parameters (for a training checkpoint)."""
        return {
            "steps": list(self.steps),
            "nll": [list(v) for v in self.nll],
            "best_nll": list(self.best_nll),
            "best_step": list(self.best_step),
            "params": {k: v.clone() for k, v in self.params.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (a checkpoint of the same run)."""
        self.steps, self.nll = list(state["steps"]), [list(v) for v in state["nll"]]
        self.best_nll, self.best_step = list(state["best_nll"]), list(state["best_step"])
        for k, v in self.params.items():
            v.copy_(state["params"][k])

    @torch.no_grad()
    def best_ensemble(self, ensemble: FlowEnsemble) -> FlowEnsemble:
        best = copy.deepcopy(ensemble)
        for k, p in best.stacked.items():
            p.copy_(self.params[k])
        return best


@dataclass
class Toy2DResult:
    """What :func:`run` returns: one results row per run (in the order of ``runs``), the trained
    ensemble and its early-stopped copy, the training record and the validation curve, and with
    ``dead_units_every`` the dead units over training (``dead``: the rows of ``toy2d_dead_units.csv``)."""

    runs: list[Toy2DRun]
    rows: list[dict[str, Any]]
    ensemble: FlowEnsemble
    best: FlowEnsemble
    train: TrainResult
    validation: BestByValidation
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    dead: list[dict[str, Any]] = field(default_factory=list)

    def index(self, dataset: str, mode: str, seed: int) -> int:
        """The member index of run (``dataset``, ``mode``, ``seed``)."""
        for i, r in enumerate(self.runs):
            if (r.dataset, r.mode, r.seed) == (dataset, mode, seed):
                return i
        raise KeyError(
            f"no run ({dataset}, {mode}, seed {seed}) among {[(r.dataset, r.mode, r.seed) for r in self.runs]}"
        )

    def frame(self) -> Any:
        """The rows as a pandas DataFrame (``best_step`` as a nullable integer)."""
        import pandas as pd

        frame = pd.DataFrame(self.rows)
        frame["best_step"] = frame["best_step"].astype("Int64")
        return frame

    def curve(self, upto: int = CURVE_STEPS) -> list[dict[str, Any]]:
        """The rows of ``toy2d_curves.csv``: each run's mean training loss per logged window (20 steps in the
        full profile) up to step ``upto``, the part of a run that another float arithmetic has not yet moved
        far (:mod:`molli_utils.experiments.reproduce`)."""
        losses = self.train.member_losses
        return [
            {**key(r), "step": step, "train_loss": float(losses[j, i])}
            for i, r in enumerate(self.runs)
            for j, step in enumerate(self.train.history["step"])
            if step <= upto
        ]


#: The lengthscales of MMD^2 per toy: the paper's 1 for both, and 0.1 (the scale of a noise that blurs the ring)
#: for the circle, where lengthscale 1 cannot see mass lying just off the manifold.
LENGTHSCALES = {"mixture_of_gaussians": (1.0,), "von_mises": (1.0, 0.1)}
#: The circle scores of a von Mises run (at the last step, and with ``_best_val`` at the early-stopped step).
CIRCLE_COLUMNS = ("circle_dist_mean", "circle_dist_q50", "circle_dist_q90", "circle_dist_q99", "angle_tv", "mmd2_ls0.1")


def _samples(member, n: int, seed: int) -> torch.Tensor:
    """``n`` samples of ``member``, the global RNG seeded with ``seed`` (and restored after)."""
    with torch.random.fork_rng(), torch.inference_mode():
        torch.manual_seed(seed)
        x, _ = member.sample(n)
    return x


def _score(x: torch.Tensor, dataset: str, reference: MMDReference, test: torch.Tensor) -> dict:
    """MMD^2 (lengthscale 1) of the finite samples ``x`` against the test set, how many were not finite, and on the
    circle :data:`CIRCLE_COLUMNS` (:func:`~molli_utils.metrics.circle_scores`; MMD^2 at lengthscale 0.1)."""
    finite = torch.isfinite(x).all(1)
    ok = int(finite.sum()) >= 2
    mmd = reference(x[finite]) if ok else {ls: math.nan for ls in reference.lengthscales}
    out = {"mmd2": mmd[1.0], "nonfinite_samples": int((~finite).sum())}
    if dataset == "von_mises":
        circle = circle_scores(x, test, lengthscales=())
        out.update({k: circle[k] for k in CIRCLE_COLUMNS if k in circle}, **{"mmd2_ls0.1": mmd[0.1]})
    return out


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush denormal floats to zero on the CPU while the block runs (``torch.set_flush_denormal``), then stop.

    Late in a 20k-step toy run some values (Adam's second moments of rarely moved weights, products
    of tiny gradients) fall below 1e-38, where the CPU's float arithmetic slows down many times; flushed
    to zero, the 12 paper runs train about 6% faster. Their rows came out bitwise the same with and
    without it on the machine that measured this (values that small vanish when added to the rest).
    """
    supported = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if supported:
            torch.set_flush_denormal(False)


class _Records:
    """A list of plain records (the dead units) as checkpointable state."""

    def __init__(self, every: Optional[int]) -> None:
        self.every, self.rows = every, []

    def fingerprint(self) -> Optional[int]:
        return self.every

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows[:] = state["rows"]


def run(
    runs: Union[Toy2DRun, Sequence[Toy2DRun]],
    *,
    callback: Optional[Callable[[int, FlowEnsemble], None]] = None,
    progress: Optional[bool] = None,
    dead_units_every: Optional[int] = None,
    checkpoint_dir: Union[str, "os.PathLike[str]", None] = None,
    checkpoint_every: Optional[int] = None,
) -> Toy2DResult:
    """Train ``runs`` together as one ensemble, score every member, and return a :class:`Toy2DResult`.

    ``dead_units_every``: if given, at step 0 and every that many steps (and at the last) the fraction
    of dead hidden units of every coupling net of every member on its test set
    (:func:`~molli_utils.models.toy.dead_units`), in ``result.dead`` (the rows of ``toy2d_dead_units.csv``:
    one per run, step, coupling and hidden layer). It reads the parameters only: the rows are the same.

    ``callback(steps_done, ensemble)`` runs after every step (after the validation tracker), e.g.
    to record live curves or snapshots; it must not touch the global RNG without
    ``torch.random.fork_rng``. Row columns:
    ``dataset, mode, seed, activation, mmd2, nonfinite_samples, test_loglik, nonfinite_steps, diverged_at,
    iterations`` for the model at the last step, then ``mmd2_best_val, nonfinite_samples_best_val,
    best_step, val_nll_best, val_nll_final, test_loglik_best_val`` for the model at the step with the
    lowest finite validation NLL; for the circle also :data:`CIRCLE_COLUMNS` and the same with
    ``_best_val`` (nan for the mixture); ``members`` and ``train_seconds`` of the ensemble that trained
    the run (shared by its members). ``diverged_at`` is the step at which a run was frozen after 20
    non-finite losses in a row (``None`` if never); ``best_step`` is ``None`` (and the best-validation
    columns nan) if no validation NLL was finite.

    ``checkpoint_dir``: train with checkpoints there (:func:`~molli_utils.training.train`'s, holding the
    validation tracker and the dead units too), every ``checkpoint_every`` steps (default: every validation
    evaluation, ``steps // n_evals``) and at the end; a new call with the same runs and folder resumes from it
    and returns bitwise the rows of an uninterrupted call (all but ``train_seconds``).
    """
    runs = [runs] if isinstance(runs, Toy2DRun) else list(runs)
    if not runs:
        raise ValueError("no runs to train")
    if len({r.training for r in runs}) > 1:
        raise ValueError(
            "runs trained as one ensemble must share steps, batch_size, lr, the data sizes and "
            "the activation; "
            "call run() once per setting"
        )
    first = runs[0]
    steps = first.steps
    datasets = list(dict.fromkeys(r.dataset for r in runs))
    splits = {d: load_toy2d(d, n_train=first.n_train, n_test=first.n_test, seed=0) for d in datasets}
    val = {d: validation_set(d, n_val=first.n_val, seed=0) for d in datasets}
    ensemble = FlowEnsemble([realnvp_2d(seed=r.seed, activation=r.activation) for r in runs])
    mollifiers = [modes.mollifier(r.mode, steps, r.seed, experiment="toy2d") for r in runs]
    tracker = BestByValidation(
        ensemble, torch.stack([val[r.dataset] for r in runs]), max(1, steps // first.n_evals), steps
    )
    if dead_units_every is not None and (
        isinstance(dead_units_every, bool) or not isinstance(dead_units_every, int) or dead_units_every < 1
    ):
        raise ValueError(f"dead_units_every must be a positive integer or None, got {dead_units_every!r}")
    records = _Records(dead_units_every)
    dead = records.rows

    def record_dead(step: int, ens: FlowEnsemble) -> None:
        for i, r in enumerate(runs):
            fractions = dead_units(ens.member(i), splits[r.dataset][1])
            dead.extend(
                {
                    "dataset": r.dataset,
                    "mode": r.mode,
                    "seed": r.seed,
                    "activation": r.activation,
                    "iterations": steps,
                    "step": step,
                    "coupling": k + 1,
                    "hidden_layer": l + 1,
                    "dead_fraction": frac,
                }
                for k, layers in enumerate(fractions)
                for l, frac in enumerate(layers)
            )

    if dead_units_every is not None:
        record_dead(0, ensemble)

    def after_step(step: int, ens: FlowEnsemble) -> None:  # part of the run: before the step's checkpoint
        tracker(step, ens)
        if dead_units_every is not None and (step % dead_units_every == 0 or step == steps):
            record_dead(step, ens)

    every = 0
    if checkpoint_dir is not None:
        every = max(1, steps // first.n_evals) if checkpoint_every is None else checkpoint_every
    config = TrainConfig(
        batch_size=first.batch_size,
        lr=first.lr,
        steps=steps,
        seed=tuple(r.seed for r in runs),
        progress=progress,
        desc="toy ensemble",
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=every,
    )
    # train()'s default Adam (the multi-tensor loop), not the fused kernel: the fused kernel's rounding depends on
    # the size of the stacked tensors, so a run would not get the same numbers in ensembles of other sizes (seen)
    with flush_denormals():
        result = train(
            ensemble,
            [splits[r.dataset][0] for r in runs],
            config,
            mollifier=mollifiers,
            step_end=after_step,
            callback=callback,
            extra_state={"validation": tracker, "dead_units": records},
        )
    best = tracker.best_ensemble(ensemble)
    test = torch.stack([splits[r.dataset][1] for r in runs])
    with torch.inference_mode():
        test_ll, test_ll_best = ensemble.log_prob(test).mean(1), best.log_prob(test).mean(1)
    references = {d: MMDReference(splits[d][1], LENGTHSCALES[d]) for d in datasets}
    arith = arithmetic.fingerprint()
    rows = []
    for i, (r, member) in enumerate(zip(runs, ensemble.members())):
        ref, test_d = references[r.dataset], splits[r.dataset][1]
        final = _score(_samples(member, r.n_samples, r.seed), r.dataset, ref, test_d)
        step = tracker.best_step[i]
        if step is None:
            at_best = {k: math.nan for k in final} | {"nonfinite_samples": 0}
        elif step == steps:  # the best model is the final one: same parameters, same sampling seed
            at_best = final
        else:
            at_best = _score(_samples(best.member(i), r.n_samples, r.seed), r.dataset, ref, test_d)
        circle = {k: final.get(k, math.nan) for k in CIRCLE_COLUMNS}
        circle_best = {f"{k}_best_val": at_best.get(k, math.nan) for k in CIRCLE_COLUMNS}
        rows.append(
            {
                "dataset": r.dataset,
                "mode": r.mode,
                "seed": r.seed,
                "activation": r.activation,
                "mmd2": final["mmd2"],
                "nonfinite_samples": final["nonfinite_samples"],
                "test_loglik": float(test_ll[i]),
                "nonfinite_steps": result.member_nonfinite[i],
                "diverged_at": result.diverged_at[i],
                "iterations": steps,
                "mmd2_best_val": at_best["mmd2"],
                "nonfinite_samples_best_val": at_best["nonfinite_samples"],
                "best_step": step,
                "val_nll_best": tracker.best_nll[i] if step is not None else math.nan,
                "val_nll_final": tracker.nll[-1][i],
                "test_loglik_best_val": float(test_ll_best[i]) if step is not None else math.nan,
                **circle,
                **circle_best,
                "members": len(runs),
                "train_seconds": round(result.elapsed, 1),
                "arith": arith,
            }
        )
    return Toy2DResult(runs, rows, ensemble, best, result, tracker, splits, dead)


def noise_floor(
    dataset: str,
    repeats: int = 20,
    *,
    n_samples: int = 10_000,
    n_test: int = 10_000,
    lengthscale: float = 1.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The MMD^2 that a perfect model of ``dataset`` scores (:func:`~molli_utils.metrics.mmd2_noise_floor`):
    ``repeats`` sets of ``n_samples`` fresh draws of the true distribution against the runs' test set
    (``load_toy2d(dataset, n_test=n_test, seed=0)``, as :func:`run` scores), at ``lengthscale``; the draws from
    seed ``seed``. One row of ``toy2d_noise_floor.csv`` per repeat."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {list(DATASETS)}")
    test = load_toy2d(dataset, n_train=1, n_test=n_test, seed=0)[1]
    values = mmd2_noise_floor(
        get_toy2d(dataset).sample, test, n_samples=n_samples, repeats=repeats, seed=seed, lengthscale=lengthscale
    )
    return [
        {
            "dataset": dataset,
            "n_samples": n_samples,
            "n_test": n_test,
            "lengthscale": lengthscale,
            "seed": seed,
            "repeat": i,
            "mmd2": float(v),
        }
        for i, v in enumerate(values)
    ]
