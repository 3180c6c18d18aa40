"""Graded checks for the book's assignments (``book/assignments``).

Every ``check_*`` function takes what a student wrote (a function, or the numbers an
experiment produced), compares it with the package's reference implementation on
several inputs, edge cases included, and either

* prints a short message starting with ``"passed"`` (and returns ``None``), or
* raises ``AssertionError`` with a message that says what is wrong, on which input
  (inputs are shown as values, e.g. ``torch.tensor([0.0, 500.0, 1000.0], dtype=torch.float64)``),
  the expected against the obtained value, and a hint where the mistake is a common one
  (a float32 result, noise of the wrong shape).

Errors raised *by the student's code itself* (``NotImplementedError`` in an
unfinished exercise, a ``TypeError``...) are not caught: they reach the student
unchanged, with their own traceback.

Every call also leaves a **record** of its verdict for the grading command
(``python -m molli_utils.grade``, :mod:`molli_utils.grade`): a dict
``{"check": name, "status": ..., "message": ...}`` with ``status`` one of :data:`STATUSES`
(``"not attempted"`` when the student's code raised ``NotImplementedError``, ``"failed"``
for an ``AssertionError`` of the check or any other error of the student's code). In a
notebook it is a display output of MIME type :data:`RECORD_MIME` (next to the ``text/plain``
line the student reads), so the grader reads verdicts, not printed text.

Usage in a notebook::

    from molli_utils import checks

    checks.check_sigmoid_schedule(my_sigmoid_schedule)
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from .check_tools import RECORD_MIME, STATUSES, as_tensor, assert_close, call_text, graded, record
from .mollifiers import blur as _ref_blur
from .mollifiers import dct_matrix as _ref_dct_matrix
from .schedules import blur_schedule as _ref_blur_schedule
from .schedules import sigmoid_schedule as _ref_sigmoid_schedule

__all__ = [
    "RECORD_MIME",
    "STATUSES",
    "CHECKS",
    "record",
    "check_sigmoid_schedule",
    "check_gaussian_mollifier",
    "check_ring_data",
    "check_mmd_scores",
    "check_dct_matrix",
    "check_blur",
    "check_blur_schedule",
    "check_noise_vs_blur",
]

#: The most points (rows) a check compares by MMD^2: the grader runs the checks on what a submission sends.
MAX_ROWS = 20_000
# --------------------------------------------------------------------------- assignment 1


@graded
def check_sigmoid_schedule(fn: Callable[..., Any]) -> str:
    """Check ``fn(t, T, start=0.0, end=3.0, tau=0.7, clip_min=1e-9)`` against the paper's sigmoid schedule.

    Reference: :func:`molli_utils.schedules.sigmoid_schedule` (paper Appendix C),
    clipped to ``[clip_min, 1]``. Tried on: ``t = 0`` (must give 1), ``t = T``
    (must give exactly ``clip_min``, not 0), steps past ``T``, a Python float, a
    0-d tensor, a batch of steps as a 1-D and a 2-D tensor (the shape must be kept),
    other values of ``tau``, and ``start``, ``end`` and ``tau`` all changed at once (a
    temperature applied to only part of the formula is right whenever ``start = 0`` or
    ``tau = 1``). The result must be float64 (a number, or a float64 tensor).
    """
    T = 1000
    f64 = torch.float64
    cases: list[tuple[str, Any, dict]] = [
        ("t = 0 (start of training: pure noise)", torch.tensor(0.0, dtype=f64), {}),
        ("t = T (end of training: clipped to clip_min)", torch.tensor(float(T), dtype=f64), {}),
        ("t = 2T (past the horizon: the value at T)", torch.tensor(2.0 * T, dtype=f64), {}),
        ("a Python float", 250.0, {}),
        ("a batch of steps, 1-D tensor", torch.linspace(0, T, 11, dtype=f64), {}),
        ("a batch of steps, 2-D tensor [4, 3]", torch.linspace(0, T, 12, dtype=f64).reshape(4, 3), {}),
        ("tau = 0.3", torch.linspace(0, T, 9, dtype=f64), {"tau": 0.3}),
        ("tau = 1.5", torch.linspace(0, T, 9, dtype=f64), {"tau": 1.5}),
        ("start = -3, end = 3, tau = 1", torch.linspace(0, T, 9, dtype=f64), {"start": -3.0, "end": 3.0, "tau": 1.0}),
        ("start, end and tau all changed", torch.linspace(0, T, 9, dtype=f64), {"start": -2.0, "end": 2.5, "tau": 0.4}),
        ("start, end and tau all changed", torch.linspace(0, T, 9, dtype=f64), {"start": 1.0, "end": 4.0, "tau": 1.3}),
        ("clip_min = 1e-4", torch.tensor([0.0, 900.0, 990.0, 1000.0], dtype=f64), {"clip_min": 1e-4}),
    ]
    for label, t, kwargs in cases:
        where = f"sigmoid schedule, {label}: {call_text('fn', (t, T), kwargs)}"
        got = as_tensor(fn(t, T, **kwargs), where, dtype=f64)
        expected = as_tensor(_ref_sigmoid_schedule(t, T, **kwargs), "the reference")
        assert_close(got, expected, where=where, rtol=1e-6, atol=1e-12)
    end = as_tensor(fn(torch.tensor(float(T), dtype=f64), T), "sigmoid schedule at t = T", dtype=f64)
    if end.item() <= 0.0:
        raise AssertionError(
            f"sigmoid schedule at t = T: expected clip_min = 1e-9, got {end.item():.3g}. Clip the schedule to "
            "[clip_min, 1] so that the noise level (and its log-SNR) stays finite and positive."
        )
    return (
        f"sigmoid schedule matches molli_utils.schedules.sigmoid_schedule on {len(cases)} cases "
        "(t = 0, t = T, t > T, batches, other start, end and tau)"
    )


def _moments(fn: Callable[..., Any], x: torch.Tensor, gamma: Any, what: str) -> torch.Tensor:
    """``fn(x, gamma)``, refused with a hint unless it is a finite tensor of ``x``'s shape and dtype."""
    out = fn(x, gamma)
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"{what}: the mollifier must return a torch.Tensor, got {type(out).__name__}")
    if out.shape != x.shape:
        raise AssertionError(
            f"{what}: the output must have the shape of x, {tuple(x.shape)}, got {tuple(out.shape)}. Draw the noise "
            "with the shape of x (eps = torch.randn_like(x)), so that it adds to x element by element."
        )
    if out.dtype != x.dtype:
        raise AssertionError(
            f"{what}: the output must keep x's dtype ({x.dtype}), got {out.dtype} "
            "(torch.randn_like(x) draws noise of x's dtype)"
        )
    if not bool(torch.isfinite(out).all()):
        raise AssertionError(f"{what}: the output contains nan or inf")
    return out


def _shared_noise(noise: torch.Tensor, what: str) -> None:
    """Raise if the noise ``[rows, cols]`` is the same along a dimension (drawn with the wrong shape, then broadcast)."""
    for dim, along in ((0, "row"), (1, "column")):
        if noise.shape[dim] > 1 and float(noise.std(dim=dim).max()) < 0.5:
            raise AssertionError(
                f"{what}: the noise is the same in every {along} (its std across {along}s is "
                f"{float(noise.std(dim=dim).max()):.3g}, should be 1): it was drawn with a shape smaller than x's "
                f"and broadcast. Every entry of x needs its own noise: eps = torch.randn_like(x), of shape "
                f"{list(noise.shape)} here."
            )


@graded
def check_gaussian_mollifier(fn: Callable[..., Any], *, num_samples: int = 200_000) -> str:
    r"""Check ``fn(x, gamma)`` = :math:`\sqrt{1-\gamma}\,x + \sqrt{\gamma}\,\varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`.

    The noise is random, so the check is statistical (with a fixed seed, so the
    verdict is reproducible, and tolerances of about six standard errors): for a
    constant ``x = c`` the output must have mean :math:`\sqrt{1-\gamma}\,c` and variance
    :math:`\gamma`. Tried on ``gamma = 0`` (``x`` unchanged, exactly), ``gamma = 1`` (pure noise,
    ``x`` forgotten, and every entry with its own noise: noise drawn with a smaller shape
    than ``x`` and broadcast is refused with a hint), ``gamma = 0.3`` and ``gamma = 0.75``, a batch
    with one noise level per row (``gamma`` a tensor of shape ``[B, 1]``), and float64 input
    (dtype kept). Two calls must draw fresh noise.
    """
    c = 2.0
    se = 6.0 / math.sqrt(num_samples)  # ~6 standard errors of a mean of unit-variance samples
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        _moments(fn, torch.zeros(5, 3), 0.5, "x of shape [5, 3], gamma = 0.5")
        x = torch.zeros(num_samples, 2)
        out = _moments(fn, x + 3.0, 0.0, "gamma = 0")
        if not torch.allclose(out, x + 3.0, atol=1e-6):
            raise AssertionError(
                f"gamma = 0: the data must come back unchanged, got max |x_out - x| = {(out - 3.0).abs().max():.3g}"
            )
        _shared_noise(
            _moments(fn, torch.zeros(num_samples // 50, 4), 1.0, "gamma = 1, x of shape [4000, 4]"),
            "gamma = 1, x = 0 of shape [4000, 4] (the output is the noise itself)",
        )
        for gamma in (1.0, 0.3, 0.75):
            out = _moments(fn, x + c, gamma, f"gamma = {gamma}")
            mean, var = out.mean().item(), out.var().item()
            exp_mean, exp_var = math.sqrt(1.0 - gamma) * c, gamma
            if abs(mean - exp_mean) > se:
                raise AssertionError(
                    f"gamma = {gamma}, x = {c} everywhere: the mean of the output should be sqrt(1 - gamma) * x = {exp_mean:.4f}, "
                    f"got {mean:.4f}. The data are scaled by sqrt(1 - gamma), not (1 - gamma) or 1."
                )
            if abs(var - exp_var) > se * math.sqrt(2.0) * max(exp_var, 0.05) + 1e-3:
                raise AssertionError(
                    f"gamma = {gamma}: the variance of the output should be the noise level gamma = {exp_var:.4f}, got {var:.4f}. "
                    "The noise is sqrt(gamma) * eps with eps ~ N(0, I) (variance gamma), not gamma * eps (variance gamma^2)."
                )
        levels = torch.tensor([[0.0], [0.2], [0.5], [0.9]])
        xb = torch.full((4, num_samples // 4), c)
        what = "batched noise levels gamma = torch.tensor([[0.0], [0.2], [0.5], [0.9]]) (shape [4, 1], one per row), x of shape [4, 50000]"
        out = _moments(fn, xb, levels, what)
        _shared_noise(((out - (1.0 - levels).sqrt() * xb) / levels.sqrt())[1:], what)
        for row, gamma in enumerate(levels[:, 0].tolist()):
            mean, var = out[row].mean().item(), out[row].var().item()
            row_se = se * 2.0
            if (
                abs(mean - math.sqrt(1.0 - gamma) * c) > row_se
                or abs(var - gamma) > row_se * max(gamma, 0.05) * 2.0 + 2e-3
            ):
                raise AssertionError(
                    f"{what}: row {row} (gamma = {gamma}) should have mean {math.sqrt(1.0 - gamma) * c:.4f} and variance {gamma:.4f}, "
                    f"got mean {mean:.4f} and variance {var:.4f}. Let gamma broadcast against x (use torch.sqrt for tensors)."
                )
        x64 = torch.randn(1000, 3, dtype=torch.float64)
        _moments(fn, x64, 0.5, "float64 input")
        a, b = fn(torch.zeros(1000, 2), 0.5), fn(torch.zeros(1000, 2), 0.5)
        if torch.equal(a, b):
            raise AssertionError("two calls returned the same noise: draw fresh eps ~ N(0, I) at every call")
        x_ind = torch.randn(num_samples, 1)
        out = _moments(fn, x_ind, 0.5, "gamma = 0.5, x ~ N(0, 1)")
        total_var = out.var().item()
        if abs(total_var - 1.0) > 0.05:
            raise AssertionError(
                f"variance preservation: for x ~ N(0, 1) and any gamma the output must have variance 1, got {total_var:.4f} at gamma = 0.5"
            )
    return "Gaussian mollifier: sqrt(1 - gamma) x + sqrt(gamma) eps, right mean and variance at gamma = 0, 0.3, 0.75, 1 and per-row gamma"


@graded
def check_ring_data(make_data: Callable[..., Any], *, num_modes: int = 8, radius: float = 2.0, std: float = 0.1) -> str:
    """Check a ring-of-Gaussians sampler ``make_data(n, seed=...) -> tensor [n, 2]``.

    The data: ``num_modes`` equally weighted isotropic Gaussians with standard
    deviation ``std``, centred at ``radius * (cos(2 pi k / K), sin(2 pi k / K))``.
    Checks: shape ``[n, 2]`` and a floating dtype (float32), finite values;
    the same seed gives the same tensor and another seed another one; every point
    lies near one of the centres; each mode holds about ``1/K`` of the points; and
    the spread around the centres has standard deviation ``std``.
    """
    n = 20_000
    x = make_data(n, seed=0)
    if not isinstance(x, torch.Tensor):
        raise AssertionError(f"make_data must return a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape) != (n, 2):
        raise AssertionError(f"make_data({n}, seed=0) must return shape ({n}, 2), got {tuple(x.shape)}")
    if x.dtype != torch.float32:
        raise AssertionError(f"make_data must return float32 (what the flow trains on), got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise AssertionError("make_data returned nan or inf")
    if not torch.equal(x, make_data(n, seed=0)):
        raise AssertionError(
            "make_data is not reproducible: the same seed must give the same tensor (use a torch.Generator)"
        )
    if torch.equal(x, make_data(n, seed=1)):
        raise AssertionError("make_data(n, seed=0) and make_data(n, seed=1) are equal: the seed must change the draw")
    angles = 2 * math.pi * torch.arange(num_modes, dtype=torch.float64) / num_modes
    centres = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    d = torch.cdist(x.double(), centres)
    nearest = d.argmin(1)
    far = d.min(1).values > 6 * std
    if bool(far.any()):
        i = int(far.nonzero()[0])
        raise AssertionError(
            f"{int(far.sum())} points are farther than 6 std from every centre, e.g. {x[i].tolist()}; "
            f"expected {num_modes} modes at radius {radius}, angles 2 pi k / {num_modes}, std {std}"
        )
    counts = torch.bincount(nearest, minlength=num_modes).double() / n
    if bool(((counts - 1.0 / num_modes).abs() > 0.02).any()):
        raise AssertionError(
            f"the modes must be equally weighted (1/{num_modes} = {1 / num_modes:.3f} each), got {counts.numpy().round(3)}"
        )
    spread = (x.double() - centres[nearest]).std().item()
    if abs(spread - std) > 0.1 * std:
        raise AssertionError(f"the points must scatter around their centre with std {std}, got {spread:.4f}")
    return f"ring of {num_modes} Gaussians: shape, dtype, seeding, centres, weights and spread are right"


@graded
def check_mmd_scores(scores: dict, samples: dict, x_test: torch.Tensor, *, lengthscale: float = 1.0) -> str:
    """Check the MMD^2 comparison of assignment 1: ``scores[mode] == mmd2(samples[mode], x_test)``.

    ``samples`` and ``scores`` map the same run names (``"vanilla"``, ``"mollified"``)
    to a model's samples ``[n, 2]`` and to their score. Checks: both runs present;
    samples finite (drop a diverged model's non-finite samples before scoring);
    each score equal to :func:`molli_utils.metrics.mmd2` of those samples against
    the held-out ``x_test`` (not the training data), to 1e-6; and each flow trained:
    its MMD^2 is at most a third of the MMD^2 of ``N(0, I)`` samples, which is
    what the untrained flow draws. It does not require either run to win: that is
    the experiment's result, to be reported with its spread over seeds.
    """
    from .metrics import mmd2

    runs = ("vanilla", "mollified")
    if not isinstance(x_test, torch.Tensor) or x_test.ndim != 2 or not 0 < len(x_test) <= MAX_ROWS:
        raise AssertionError(
            f"x_test must be a tensor [n, d] of at most {MAX_ROWS:,} held-out points, got "
            f"{getattr(x_test, 'shape', type(x_test).__name__)}"
        )
    for name, mapping in (("scores", scores), ("samples", samples)):
        missing = [r for r in runs if r not in mapping]
        if missing:
            raise AssertionError(f"{name} needs the runs {list(runs)}; missing {missing} (keys: {list(mapping)})")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = mmd2(
            torch.randn(len(x_test), x_test.shape[1], dtype=torch.float64), x_test, lengthscale=lengthscale
        )
    for run in runs:
        x = samples[run]
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != x_test.shape[1] or len(x) > MAX_ROWS:
            raise AssertionError(
                f"samples[{run!r}] must be a tensor [n, {x_test.shape[1]}] with n at most {MAX_ROWS:,}, "
                f"got {getattr(x, 'shape', type(x).__name__)}"
            )
        if not bool(torch.isfinite(x).all()):
            raise AssertionError(f"samples[{run!r}] contains nan or inf: keep only the finite rows before scoring")
        value = scores[run]
        value = value.item() if isinstance(value, torch.Tensor) else value
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value):
            raise AssertionError(f"scores[{run!r}] must be a finite number (the output of mmd2), got {value!r}")
        expected = mmd2(x, x_test, lengthscale=lengthscale)
        if not math.isclose(float(value), expected, rel_tol=1e-6, abs_tol=1e-9):
            raise AssertionError(
                f"scores[{run!r}] should be mmd2(samples[{run!r}], x_test) = {expected:.6g}, got {float(value):.6g}: "
                "score the model's samples against the held-out test points"
            )
        if expected > untrained / 3.0:
            raise AssertionError(
                f"the {run} flow has not learned the data: MMD^2 = {expected:.4g}, while N(0, I) samples (the untrained "
                f"flow) score {untrained:.4g}. Train longer, or check the learning rate and the data you train on."
            )
    return (
        f"MMD^2 computed right; vanilla {float(scores['vanilla']):.3g}, mollified {float(scores['mollified']):.3g} "
        f"(untrained flow: {untrained:.3g})"
    )


# --------------------------------------------------------------------------- assignment 2


@graded
def check_dct_matrix(fn: Callable[[int], Any]) -> str:
    """Check ``fn(n)``: the orthonormal DCT-II matrix (``C @ v == scipy.fft.dct(v, norm='ortho')``).

    Compared with :func:`molli_utils.mollifiers.dct_matrix` for ``n = 1, 2, 5, 8, 16``;
    it must be float64 and orthogonal (``C @ C.T == I``).
    """
    for n in (1, 2, 5, 8, 16):
        got = as_tensor(fn(n), f"dct_matrix({n})", dtype=torch.float64)
        assert_close(got, _ref_dct_matrix(n), where=f"dct_matrix({n})", rtol=1e-6, atol=1e-8)
        eye = got @ got.T
        assert_close(
            eye,
            torch.eye(n, dtype=torch.float64),
            where=f"dct_matrix({n}) @ dct_matrix({n}).T (must be I)",
            rtol=0,
            atol=1e-6,
        )
    return "DCT matrix matches molli_utils.mollifiers.dct_matrix for n = 1, 2, 5, 8, 16 and is orthonormal"


@graded
def check_blur(fn: Callable[..., Any]) -> str:
    """Check ``fn(x, h)``: the heat-equation blur over the last two dims, for heat time ``h``.

    Compared with :func:`molli_utils.mollifiers.blur` on: one image ``[H, W]``,
    a colour image ``[3, 16, 16]``, a batch ``[2, 3, 8, 12]`` (not square),
    ``h = 0`` (the image itself), ``h = 1, 10`` and a very long time (the per-image
    mean), in float32 and float64 (the result must keep ``x``'s dtype and shape). The blur must
    keep each image's mean.
    """
    gen = torch.Generator().manual_seed(0)
    images = {
        "a single image [16, 16]": torch.rand(16, 16, generator=gen),
        "a colour image [3, 16, 16]": torch.rand(3, 16, 16, generator=gen),
        "a batch [2, 3, 8, 12] (not square)": torch.rand(2, 3, 8, 12, generator=gen),
        "a float64 image [3, 10, 10]": torch.rand(3, 10, 10, generator=gen, dtype=torch.float64),
    }
    for label, x in images.items():
        tol = 1e-4 if x.dtype == torch.float32 else 1e-9
        for h in (0.0, 1.0, 10.0, 1e5):
            where = f"blur of {label} ({x.dtype}), h = {h:g}"
            out = fn(x.clone(), h)
            if not isinstance(out, torch.Tensor):
                raise AssertionError(f"{where}: blur must return a torch.Tensor, got {type(out).__name__}")
            got = as_tensor(out, where, dtype=x.dtype)
            expected = as_tensor(_ref_blur(x, h), "the reference")
            assert_close(got, expected, where=where, rtol=tol, atol=tol)
        mean_in, mean_out = x.double().mean(dim=(-2, -1)), as_tensor(fn(x, 10.0), "blur").mean(dim=(-2, -1))
        assert_close(mean_out, mean_in, where=f"per-image mean after blurring {label}", rtol=tol, atol=tol)
    return "heat-equation blur matches molli_utils.mollifiers.blur (h = 0, 1, 10, 1e5; single, colour, batched, non-square)"


@graded
def check_blur_schedule(fn: Callable[..., Any]) -> str:
    """Check ``fn(t, T, image_size, sigma_min=0.5, sigma_max=None)``: the heat time of the blur schedule.

    Reference: :func:`molli_utils.schedules.blur_schedule` (paper Appendix B):
    ``sigma`` log-spaced from ``sigma_max`` (default ``image_size / 2``) at ``t = 0``
    to ``sigma_min`` at ``t = T``, heat time ``sigma**2 / 2``. Tried on ``t = 0``,
    ``t = T``, ``t > T``, a batch of steps, and other sizes and ``sigma`` bounds. The result
    must be float64 (a number, or a float64 tensor).
    """
    T = 1000
    cases: list[tuple[str, Any, int, dict]] = [
        ("t = 0 (most blurred: sigma = image_size / 2)", torch.tensor(0.0, dtype=torch.float64), 64, {}),
        ("t = T (sharp: sigma = sigma_min)", torch.tensor(float(T), dtype=torch.float64), 64, {}),
        ("t = 2T (past the horizon: the value at T)", torch.tensor(2.0 * T, dtype=torch.float64), 64, {}),
        ("a Python float t = 500.0", 500.0, 32, {}),
        ("a batch of steps", torch.linspace(0, T, 11, dtype=torch.float64), 28, {}),
        (
            "sigma_min = 0.25, sigma_max = 8",
            torch.linspace(0, T, 5, dtype=torch.float64),
            64,
            {"sigma_min": 0.25, "sigma_max": 8.0},
        ),
    ]
    for label, t, size, kwargs in cases:
        where = f"blur schedule, {label}: {call_text('fn', (t, T, size), kwargs)}"
        got = as_tensor(fn(t, T, size, **kwargs), where, dtype=torch.float64)
        expected = as_tensor(_ref_blur_schedule(t, T, size, **kwargs), "the reference")
        assert_close(got, expected, where=where, rtol=1e-6, atol=1e-10)
    return f"blur schedule matches molli_utils.schedules.blur_schedule on {len(cases)} cases (t = 0, t = T, t > T, batches)"


@graded
def check_noise_vs_blur(table: Any, image: torch.Tensor, *, horizon: int) -> str:
    """Check the noise-vs-blur table of assignment 2: one row per step, with columns
    ``step``, ``noise_level``, ``heat_time``, ``mse_noise`` and ``mse_blur``.

    ``table`` is a pandas DataFrame (or a dict of equal-length lists). The noise
    level must be the sigmoid schedule, the heat time the blur schedule (for the
    image's width), ``mse_blur`` the mean squared error between the blurred and
    the clean image (deterministic: compared with the reference to 1e-4), and
    ``mse_noise`` the one of the Gaussian-mollified image (random: compared with
    its expectation ``(1 - sqrt(1 - s))^2 E[x^2] + s`` for the centred image
    ``x = 2 image - 1``, mapped back to ``[0, 1]``, to about six standard errors:
    8% for a 64 x 64 colour image).
    """
    import pandas as pd

    frame = pd.DataFrame(table)
    need = ["step", "noise_level", "heat_time", "mse_noise", "mse_blur"]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise AssertionError(f"the table lacks the columns {missing}; it needs {need}, has {list(frame.columns)}")
    if not 3 <= len(frame) <= 1000:
        raise AssertionError(
            f"the table needs at least 3 steps (e.g. t = 0, T/2, T) and at most 1,000, got {len(frame)}"
        )
    if not isinstance(image, torch.Tensor) or image.ndim < 2 or image.numel() > 2**22:
        raise AssertionError(
            f"image must be a tensor [..., H, W] of at most {2**22:,} values, got "
            f"{getattr(image, 'shape', type(image).__name__)}"
        )
    img = image.detach().double()
    centred = 2.0 * img - 1.0
    noise_tol = max(0.05, 6.0 * math.sqrt(2.0 / img.numel()))  # ~6 standard errors of a mean of squares
    for _, row in frame.iterrows():
        step = int(row["step"])
        s = float(_ref_sigmoid_schedule(step, horizon))
        heat = float(_ref_blur_schedule(step, horizon, img.shape[-1]))
        where = f"row step = {step}"
        if not math.isclose(float(row["noise_level"]), s, rel_tol=1e-5, abs_tol=1e-12):
            raise AssertionError(
                f"{where}: noise_level should be sigmoid_schedule({step}, {horizon}) = {s:.6g}, got {row['noise_level']:.6g}"
            )
        if not math.isclose(float(row["heat_time"]), heat, rel_tol=1e-5):
            raise AssertionError(
                f"{where}: heat_time should be blur_schedule({step}, {horizon}, {img.shape[-1]}) = {heat:.6g}, got {row['heat_time']:.6g}"
            )
        mse_blur = float(((_ref_blur(img, heat) - img) ** 2).mean())
        if not math.isclose(float(row["mse_blur"]), mse_blur, rel_tol=1e-3, abs_tol=1e-4):
            raise AssertionError(
                f"{where}: mse_blur should be mean((blur(image, heat_time) - image)^2) = {mse_blur:.6g}, got {row['mse_blur']:.6g}"
            )
        # noised = (sqrt(1-s) c + sqrt(s) eps + 1) / 2, so noised - image = ((sqrt(1-s) - 1) c + sqrt(s) eps) / 2
        expected_noise = float(((math.sqrt(1.0 - s) - 1.0) ** 2 * (centred**2).mean() + s) / 4.0)
        if not math.isclose(float(row["mse_noise"]), expected_noise, rel_tol=noise_tol, abs_tol=1e-4):
            raise AssertionError(
                f"{where}: mse_noise should be about ((1 - sqrt(1 - s))^2 E[c^2] + s) / 4 = {expected_noise:.5g} "
                f"(c = 2 image - 1 noised, then mapped back with (c + 1) / 2), got {row['mse_noise']:.5g}"
            )
    return f"noise-vs-blur table: {len(frame)} steps, schedules and errors right"


#: The names of the graded checks (what :mod:`molli_utils.grade` looks for in a notebook).
CHECKS = tuple(name for name in __all__ if name.startswith("check_"))
