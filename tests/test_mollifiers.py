"""Gaussian and blurring mollifiers, and the Mollifier object."""

import numpy as np
import pytest
import torch
from scipy.fftpack import dct, idct

from molli_utils.mollifiers import Mollifier, blur, dct_matrix, gaussian
from molli_utils.schedules import blur_schedule, sigmoid_schedule


def algorithm2(x: np.ndarray, t: float) -> np.ndarray:
    """The paper's Algorithm 2 with scipy, for one [H, W] image; frequencies pi*k/K per axis."""
    h, w = x.shape
    fh, fw = np.pi * np.linspace(0, h - 1, h) / h, np.pi * np.linspace(0, w - 1, w) / w
    freq2 = fh[:, None] ** 2 + fw[None, :] ** 2
    u = dct(dct(x, axis=0, norm="ortho"), axis=1, norm="ortho")
    u = np.exp(-freq2 * t) * u
    return idct(idct(u, axis=0, norm="ortho"), axis=1, norm="ortho")


# --- Gaussian -----------------------------------------------------------------------------------
def test_gaussian_formula_with_seeded_noise():
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
    s = 0.3
    out = gaussian(x, s, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(64, 5, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, (1 - s) ** 0.5 * x + s**0.5 * eps)


def test_gaussian_endpoints_and_variance_preservation():
    x = torch.randn(200_000, 2, generator=torch.Generator().manual_seed(0)) * 3.0 + 1.0
    torch.testing.assert_close(gaussian(x, 0.0), x)
    pure = gaussian(x, 1.0, generator=torch.Generator().manual_seed(2))
    assert abs(float(pure.mean())) < 0.01 and abs(float(pure.var()) - 1.0) < 0.01
    # unit-variance data keep unit variance at any level (variance preserving)
    z = torch.randn(200_000, generator=torch.Generator().manual_seed(3))
    assert abs(float(gaussian(z, 0.6, generator=torch.Generator().manual_seed(4)).var()) - 1.0) < 0.01


def test_gaussian_keeps_dtype_and_shape_and_per_sample_levels():
    x = torch.ones(4, 3, dtype=torch.float64)
    out = gaussian(x, torch.tensor([[0.0], [0.0], [1.0], [1.0]]))
    assert out.dtype == torch.float64 and out.shape == x.shape
    torch.testing.assert_close(out[:2], x[:2])
    assert gaussian(torch.zeros(3, dtype=torch.float16), 0.5).dtype == torch.float16


@pytest.mark.parametrize("level", [-0.1, 1.5, float("nan")])
def test_gaussian_bad_level(level):
    with pytest.raises(ValueError, match="noise_level"):
        gaussian(torch.zeros(3), level)


def test_non_finite_or_integer_input_raises():
    with pytest.raises(ValueError, match="non-finite"):
        gaussian(torch.tensor([0.0, float("nan")]), 0.5)
    with pytest.raises(ValueError, match="non-finite"):
        blur(torch.full((4, 4), float("inf")), 1.0)
    with pytest.raises(ValueError, match="floating-point"):
        gaussian(torch.zeros(3, dtype=torch.uint8), 0.5)


# --- Blur ---------------------------------------------------------------------------------------
def test_dct_matrix_is_scipy_orthonormal_dct():
    v = np.random.default_rng(0).normal(size=(7, 3))
    np.testing.assert_allclose(dct_matrix(7).numpy() @ v, dct(v, axis=0, norm="ortho"), atol=1e-12)
    c = dct_matrix(9)
    torch.testing.assert_close(c @ c.T, torch.eye(9, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(8, 8), (32, 32), (6, 10), (13, 7)])
@pytest.mark.parametrize("t", [0.0, 0.125, 1.7, 12.0, 128.0])
def test_blur_matches_algorithm2(shape, t):
    img = np.random.default_rng(1).uniform(size=shape)
    ours = blur(torch.from_numpy(img), t).numpy()
    np.testing.assert_allclose(ours, algorithm2(img, t), atol=1e-6, rtol=0)


def test_blur_float32_batched_and_per_image_times():
    rng = np.random.default_rng(2)
    imgs = rng.uniform(size=(2, 3, 12, 16)).astype(np.float32)
    times = torch.tensor([0.5, 4.0])
    out = blur(torch.from_numpy(imgs), times)
    assert out.dtype == torch.float32 and out.shape == imgs.shape
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(
                out[b, c].numpy(), algorithm2(imgs[b, c].astype(np.float64), float(times[b])), atol=1e-5
            )


def test_blur_limits():
    img = torch.rand(3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(blur(img, 0.0), img)
    flat = blur(img, 1e6)  # infinite heat time: the per-image mean
    torch.testing.assert_close(flat, img.mean(dim=(-1, -2), keepdim=True).expand_as(img))
    # the heat equation conserves each image's mean
    torch.testing.assert_close(blur(img, 3.0).mean(dim=(-1, -2)), img.mean(dim=(-1, -2)))


def test_blur_times_must_be_one_per_sample():
    with pytest.raises(ValueError, match="one time per sample"):
        blur(torch.zeros(2, 3, 4, 4), torch.tensor([1.0, 2.0, 3.0]))


def test_blur_needs_two_dims():
    with pytest.raises(ValueError, match="at least 2 dims"):
        blur(torch.zeros(5), 1.0)
    with pytest.raises(ValueError, match="blur time"):
        blur(torch.zeros(4, 4), -1.0)


# --- Mollifier ------------------------------------------------------------------------------------
def test_mollifier_follows_schedule_then_returns_x_itself():
    T = 100
    m = Mollifier("gaussian", horizon=T, generator=torch.Generator().manual_seed(0))
    for step in (0, 10, 50, 99):
        assert m.noise_level(step) == pytest.approx(sigmoid_schedule(step, T))
    x = torch.randn(8, 2)
    assert m(x, T) is x and m(x, 10 * T) is x
    assert m.noise_level(T) == 0.0
    out = m(x, 50)
    ref = gaussian(x, sigmoid_schedule(50, T), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, ref)


def test_mollifier_schedule_by_callable_and_kwargs():
    m = Mollifier("gaussian", horizon=10, schedule=lambda t, T: 0.25)
    assert m.noise_level(3) == 0.25
    m = Mollifier("gaussian", horizon=10, schedule="sigmoid", schedule_kwargs={"tau": 0.2})
    assert m.noise_level(4) == pytest.approx(sigmoid_schedule(4, 10, tau=0.2))


def test_mollifier_blur_uses_image_width():
    m = Mollifier("blur", horizon=20)
    img = torch.rand(2, 3, 8, 16, dtype=torch.float64)
    torch.testing.assert_close(m(img, 5), blur(img, blur_schedule(5, 20, 16)))
    assert m(img, 20) is img


def test_none_mollifier_is_identity():
    x = torch.randn(3, 2)
    assert Mollifier("none", horizon=5)(x, 0) is x


def test_mollifier_bad_inputs():
    with pytest.raises(ValueError, match=r"unknown mollifier kind 'noise'.*gaussian.*blur.*none"):
        Mollifier("noise", horizon=10)
    with pytest.raises(ValueError, match="unknown schedule"):
        Mollifier("gaussian", horizon=10, schedule="cubic")
    with pytest.raises(ValueError, match="horizon"):
        Mollifier("gaussian", horizon=0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        Mollifier("gaussian", horizon=10)(torch.zeros(2), -1)


def test_step_quantum_changes_the_noise_level_once_per_quantum():
    """The official UCI code's per-epoch noise level: gamma(epoch / epochs), constant within an epoch."""
    from molli_utils.schedules import sigmoid_schedule

    epochs, per_epoch = 150, 13
    moll = Mollifier("gaussian", horizon=epochs * per_epoch, step_quantum=per_epoch)
    for step in (0, 12, 13, 26 * 13 + 5, 149 * 13 + 12):
        assert moll.noise_level(step) == pytest.approx(sigmoid_schedule(step // per_epoch, epochs))
    assert moll.noise_level(0) == 1.0 and 7e-4 < moll.noise_level(149 * 13) < 9e-4  # never clean: 0.0008 at the end
    assert Mollifier("gaussian", horizon=10).noise_level(3) != Mollifier(
        "gaussian", horizon=10, step_quantum=5
    ).noise_level(3)
    with pytest.raises(ValueError, match="step_quantum must be a positive integer"):
        Mollifier("gaussian", horizon=10, step_quantum=0)


def test_schedule_horizon_stretches_the_schedule_and_the_horizon_cuts_it():
    from molli_utils.schedules import sigmoid_schedule

    cut = Mollifier("gaussian", horizon=50, schedule_horizon=100)
    assert cut.noise_level(49) == pytest.approx(sigmoid_schedule(49, 100)) and cut.noise_level(50) == 0.0
    assert Mollifier("gaussian", horizon=50).noise_level(49) < cut.noise_level(49)
    with pytest.raises(ValueError, match="schedule_horizon must be None or an integer >= horizon"):
        Mollifier("gaussian", horizon=50, schedule_horizon=10)
