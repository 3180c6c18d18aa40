"""INDM (Kim et al., 2022) and a plain diffusion model on the 2D toys, at the toy flows' budget.

One run (:class:`INDMRun`) trains :func:`~molli_utils.models.indm.make_indm` -- ``flow="realnvp"``
(INDM: the toy REAL-NVP in front of a variance-preserving diffusion) or ``"identity"`` (a plain
diffusion model) -- with the toy runs' optimiser, batch, steps and data split (Adam 5e-4, batch
256, 20k steps, ``load_toy2d(dataset, seed=0)``), then scores it with the toy runs' protocol:
MMD^2 of ``n_samples`` samples (``sample_steps`` ancestral steps, seeded by ``seed``) against the
test set, and ``test_loglik_bound``, minus the mean bound on ``-log p`` over the test set
(``draws`` Monte-Carlo draws per point): a *lower* bound on the test log-likelihood up to its
Monte-Carlo error ``test_loglik_bound_mc_se``; on the circle also the scores that see the manifold
(:data:`~molli_utils.experiments.toy2d.CIRCLE_COLUMNS`: the samples' distance from the circle, the
error of the density along it, MMD^2 at lengthscale 0.1).

Command line: ``python -m molli_utils.experiments indm`` (see :mod:`molli_utils.experiments`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from .. import arithmetic
from ..data import load_toy2d
from ..metrics import circle_scores, mmd2_of_samples
from ..models.indm import INDM, INDM_FLOWS, make_indm
from ..training import TrainConfig, TrainResult, train
from . import profiles, results
from .toy2d import CIRCLE_COLUMNS, DATASETS

__all__ = [
    "MODELS",
    "RESULTS",
    "SEEDS",
    "BUDGETS",
    "IDENTITY",
    "INDMRun",
    "INDMResult",
    "from_profile",
    "grid",
    "run",
    "key",
]

#: ``indm_toy2d.csv``'s name of each flow of :func:`~molli_utils.models.indm.make_indm`.
MODELS = {"identity": "diffusion", "realnvp": "indm"}
RESULTS = "indm_toy2d.csv"
#: The seeds of the stored results (and the command line's default).
SEEDS = (0, 1, 2)
#: Per profile, the run fields that differ from the defaults (the toy flows' budget; ~2 min per INDM run on one
#: CPU thread in the quick profile).
BUDGETS: dict[str, dict[str, Any]] = {
    "full": {},
    "colab": {},
    "quick": {"steps": 2_000, "sample_steps": 200, "n_samples": 2_000, "draws": 16},
}
#: The fields that name a run (not its budget).
IDENTITY = ("dataset", "flow", "seed")


@dataclass(frozen=True)
class INDMRun:
    """One INDM or diffusion run on a toy; the defaults are the toy flows' budget and the stored runs' scoring."""

    dataset: str
    flow: str
    seed: int
    steps: int = 20_000
    batch_size: int = 256
    lr: float = 5e-4
    n_train: int = 10_000
    n_test: int = 10_000
    n_samples: int = 10_000
    sample_steps: int = 500
    draws: int = 128

    def __post_init__(self) -> None:
        for name, value, valid in (("dataset", self.dataset, DATASETS), ("flow", self.flow, INDM_FLOWS)):
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; choose one of {list(valid)} (identity = plain diffusion)")

    @property
    def model(self) -> str:
        """``"indm"`` or ``"diffusion"``."""
        return MODELS[self.flow]


def from_profile(profile_name: Optional[str] = None, **fields: Any) -> INDMRun:
    """One :class:`INDMRun` of ``profile_name`` (default: :func:`~molli_utils.experiments.profiles.profile`):
    ``BUDGETS[profile]`` with ``fields`` (``dataset``, ``flow``, ``seed``, any other field) on top."""
    return INDMRun(**{**profiles.budget_of(BUDGETS, profile_name), **fields})


def key(r: INDMRun) -> dict[str, Any]:
    """The recorded-run key of ``r`` in ``indm_toy2d.csv``: its values of the file's key columns
    (:func:`~molli_utils.experiments.results.run_key`)."""
    return results.run_key(RESULTS, r)


def grid(
    profile: Optional[str] = None,
    *,
    datasets: Sequence[str] = DATASETS,
    flows: Sequence[str] = tuple(MODELS),
    seeds: Optional[Sequence[int]] = None,
    **fields: Any,
) -> list[INDMRun]:
    """Every (data set, flow, seed) of ``profile`` (:func:`from_profile`; seeds default to :data:`SEEDS`),
    data set-major."""
    seeds = SEEDS if seeds is None else seeds
    return [from_profile(profile, dataset=d, flow=f, seed=s, **fields) for d in datasets for f in flows for s in seeds]


@dataclass
class INDMResult:
    """What :func:`run` returns: the results row, the trained model (in eval mode) and the training record."""

    config: INDMRun
    row: dict[str, Any]
    model: INDM
    train: TrainResult


def run(
    config: INDMRun, *, callback: Optional[Callable[[int, INDM], None]] = None, progress: Optional[bool] = None
) -> INDMResult:
    """Train one INDM or diffusion model on its toy and score it (see the module docstring)."""
    x_train, x_test = load_toy2d(config.dataset, n_train=config.n_train, n_test=config.n_test, seed=0)
    model = make_indm(config.flow, seed=config.seed)
    train_config = TrainConfig(
        batch_size=config.batch_size,
        lr=config.lr,
        steps=config.steps,
        seed=config.seed,
        progress=progress,
        desc=f"{config.model} {config.dataset} seed {config.seed}",
    )
    result = train(model, x_train, train_config, callback=callback)
    model.eval()
    samples = model.sample(config.n_samples, steps=config.sample_steps, seed=config.seed)
    scores = mmd2_of_samples(samples, x_test)
    circle = circle_scores(samples, x_test) if config.dataset == "von_mises" else {}
    bound, bound_se = model.mean_nll_bound(x_test, draws=config.draws, seed=config.seed)
    row = {
        "dataset": config.dataset,
        "model": config.model,
        "flow": config.flow,
        "seed": config.seed,
        "arith": arithmetic.fingerprint(),
        "steps": config.steps,
        **scores,
        "test_loglik_bound": -bound,
        "test_loglik_bound_mc_se": bound_se,
        "nonfinite_steps": result.num_nonfinite,
        "sample_steps": config.sample_steps,
        "train_seconds": round(result.elapsed, 1),
        **{k: circle.get(k, math.nan) for k in CIRCLE_COLUMNS},
    }
    return INDMResult(config, row, model, result)
