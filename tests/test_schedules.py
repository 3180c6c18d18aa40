"""Schedules against the paper's Appendix C (Algorithm 3), written out again here in NumPy."""

import math

import numpy as np
import pytest
import torch

from molli_utils.schedules import (
    SCHEDULES,
    blur_schedule,
    cosine_schedule,
    get_schedule,
    linear_schedule,
    log_snr,
    sigmoid_schedule,
)


# --- Appendix C, Algorithm 3 (plus the official README's clip) --------------------------------
def _sig(x):
    return 1 / (1 + np.exp(-x))


def ref_sigmoid(t, T, tau=0.7, start=0, end=3, clip_min=1e-9):
    v_start, v_end = _sig(start / tau), _sig(end / tau)
    out = (v_end - _sig((t / T * (end - start) + start) / tau)) / (v_end - v_start)
    return np.clip(out, clip_min, 1.0)


def ref_linear(t, T):
    return 1 - t / T


def ref_cosine(t, T, ns=0.0002, ds=0.00025):
    return np.cos(((t / T + ns) / (1 + ds)) * np.pi / 2) ** 2


T = 1000
GRID = np.linspace(0, T, 101)


@pytest.mark.parametrize("tau", [0.2, 0.5, 0.7, 0.9])
def test_sigmoid_matches_appendix_c(tau):
    np.testing.assert_allclose(sigmoid_schedule(GRID, T, tau=tau), ref_sigmoid(GRID, T, tau=tau), rtol=1e-12, atol=0)


def test_cosine_and_linear_match_appendix_c():
    np.testing.assert_allclose(cosine_schedule(GRID, T), ref_cosine(GRID, T), rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(linear_schedule(GRID, T), ref_linear(GRID, T), rtol=0, atol=1e-15)


def test_endpoints():
    assert sigmoid_schedule(0, T) == 1.0
    assert sigmoid_schedule(T, T) == 1e-9  # clipped at clip_min
    assert linear_schedule(0, T) == 1.0 and linear_schedule(T, T) == 0.0
    assert cosine_schedule(0, T) == pytest.approx(1.0, abs=1e-6)
    assert cosine_schedule(T, T) == pytest.approx(0.0, abs=1e-7)
    # sigmoid with default tau at the midpoint: (s(3/.7) - s(1.5/.7)) / (s(3/.7) - s(0))
    s = lambda v: 1 / (1 + math.exp(-v))
    assert sigmoid_schedule(T / 2, T) == pytest.approx((s(3 / 0.7) - s(1.5 / 0.7)) / (s(3 / 0.7) - 0.5), rel=1e-12)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_monotone_decreasing_and_in_unit_interval(name):
    g = get_schedule(name)(GRID, T)
    assert np.all(np.diff(g) <= 0)
    assert np.all((g >= 0) & (g <= 1))


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_past_horizon_gives_value_at_horizon(name):
    f = get_schedule(name)
    assert f(5 * T, T) == f(T, T)
    np.testing.assert_array_equal(f(np.array([T, 2 * T]), T), np.full(2, f(T, T)))


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_same_kind_in_and_out(name):
    f = get_schedule(name)
    assert isinstance(f(3, 10), float)
    out_np = f(np.arange(4), 10)
    assert isinstance(out_np, np.ndarray) and out_np.shape == (4,)
    out_t = f(torch.arange(4), 10)
    assert isinstance(out_t, torch.Tensor) and out_t.shape == (4,)
    np.testing.assert_allclose(out_t.double().numpy(), out_np, rtol=1e-6)
    out_t64 = f(torch.arange(4, dtype=torch.float64), 10)
    assert out_t64.dtype == torch.float64
    np.testing.assert_allclose(out_t64.numpy(), out_np, rtol=1e-12)


def test_lower_tau_drops_noise_sooner():
    # with start=0 the sigmoid saturates sooner for a small temperature (paper Fig. 3)
    assert sigmoid_schedule(0.3 * T, T, tau=0.2) < 0.05 < 0.5 < sigmoid_schedule(0.3 * T, T, tau=0.9)


def test_blur_schedule_log_spaced_from_half_width_to_half_pixel():
    # sigma = image_size/2 at t=0 and 0.5 at t=T; time = sigma^2 / 2
    assert blur_schedule(0, T, 32) == pytest.approx(16.0**2 / 2)
    assert blur_schedule(T, T, 32) == pytest.approx(0.5**2 / 2)
    sig = np.sqrt(2 * blur_schedule(GRID, T, 64))
    np.testing.assert_allclose(np.log(sig), np.linspace(np.log(32), np.log(0.5), len(GRID)), rtol=1e-12)


def test_log_snr():
    assert log_snr(0.5) == 0.0
    assert log_snr(0.1) == pytest.approx(math.log(9.0))
    np.testing.assert_allclose(log_snr(np.array([0.2, 0.8])), np.log([4.0, 0.25]))
    torch.testing.assert_close(
        log_snr(torch.tensor([0.2, 0.8], dtype=torch.float64)),
        torch.log(torch.tensor([4.0, 0.25], dtype=torch.float64)),
    )
    assert log_snr(0.0) == math.inf and log_snr(1.0) == -math.inf


@pytest.mark.parametrize("bad_T", [0, -5, float("nan"), "10"])
def test_bad_horizon_raises(bad_T):
    with pytest.raises(ValueError, match="T must be"):
        sigmoid_schedule(1, bad_T)


@pytest.mark.parametrize("bad_t", [-1, np.array([0.0, -2.0]), torch.tensor([-1.0])])
def test_negative_t_raises(bad_t):
    with pytest.raises(ValueError, match="t must be >= 0"):
        cosine_schedule(bad_t, 10)


@pytest.mark.parametrize("bad_t", [float("nan"), np.array([np.inf]), torch.tensor([float("nan")])])
def test_non_finite_t_raises(bad_t):
    with pytest.raises(ValueError, match="finite"):
        linear_schedule(bad_t, 10)


def test_unknown_schedule_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown schedule 'exponential'.*cosine.*linear.*sigmoid"):
        get_schedule("exponential")
    assert get_schedule(linear_schedule) is linear_schedule
