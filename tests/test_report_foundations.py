"""molli_utils.report.foundations: chapters 1 and 2's tables, figures and findings (the checks raise on wrong data)."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from molli_utils import Mollifier  # noqa: E402
from molli_utils.experiments import results  # noqa: E402
from molli_utils.findings import glue_all  # noqa: E402
from molli_utils.palette import color  # noqa: E402
from molli_utils.report import foundations as fd  # noqa: E402
from molli_utils.report.foundations import why  # noqa: E402

TAUS = np.round(np.arange(0.2, 0.95, 0.1), 1)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------ chapter 1


def test_tau_table_gives_where_each_temperature_reaches_snr_one():
    by_tau = fd.tau_table(TAUS)
    cross = by_tau["t/T where gamma = 1/2"]
    assert cross.is_monotonic_increasing
    assert cross[0.7] == pytest.approx(0.248, abs=2e-3)
    assert by_tau.loc[0.2, "log-SNR at t/T = 0.5"] == pytest.approx(6.807, abs=1e-3)


def test_schedule_table_and_the_papers_tables():
    table = fd.schedule_table()
    assert table.loc[0.5, "gamma sigmoid"] == pytest.approx(0.188, abs=1e-3)
    assert table.loc[0.5, "gamma cosine"] == pytest.approx(0.5, abs=1e-3)
    assert table.loc[0.5, "gamma linear"] == pytest.approx(0.5)
    t2 = fd.paper_schedule_tables(show=False)
    assert t2.loc["realnvp", "vanilla"] != t2.loc["realnvp", "vanilla in Table 1"]
    others = t2.drop("realnvp")
    assert (others["vanilla"] == others["vanilla in Table 1"]).all()


def test_the_figures_take_their_colours_from_the_palette():
    fd.plot_schedules()
    lines = plt.gcf().axes[0].lines
    assert mcolors.to_hex(lines[0].get_color()) == color("mollification")
    assert {mcolors.to_hex(line.get_color()) for line in lines[1:]} == {color("diffusion")}
    fd.plot_tau_schedules(TAUS)
    fig, ax = plt.subplots()
    fd.draw_cloud(ax, np.zeros((3, 2)), "t")
    assert mcolors.to_hex(ax.collections[0].get_facecolor()[0][:3]) == color("mollification")
    assert mcolors.to_hex(ax.lines[0].get_color()) == color("data")


def test_moving_optimum_is_zero_gap_for_a_model_on_the_optimum():
    data = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.5, 0.5]])
    moll = Mollifier("gaussian", horizon=50)
    g = np.array([moll.noise_level(k) for k in range(50)])[:, None]
    mu = np.sqrt(1 - g) * data.mean(0).numpy()
    std = np.sqrt((1 - g) * data.var(0).numpy() + g)
    track = fd.moving_optimum({"mu": list(mu), "std": list(std)}, moll, data)
    assert track["gap_mu"] == pytest.approx(0.0, abs=1e-6) and track["gap_std"] == pytest.approx(0.0, abs=1e-6)
    shifted = fd.moving_optimum({"mu": list(mu + 0.2), "std": list(std)}, moll, data)
    assert shifted["gap_mu"] == pytest.approx(0.2, abs=1e-6)


def test_photo_and_blur_table():
    image = fd.photo(16)
    assert tuple(image.shape) == (3, 16, 16) and 0 <= image.min() and image.max() <= 1
    table = fd.blur_and_noise(image, 100, [0.0, 0.5, 1.0])
    assert table["pixel std, blurred"].is_monotonic_increasing
    assert table.loc[1.0, "gamma"] == 0.0 and table.loc[0.0, "gamma"] == pytest.approx(1.0)


def _one_line_numbers():
    near = {0.0: 0.25, 0.25: 0.27, 0.5: 0.37, 0.75: 0.64, 0.9: 0.90, 1.0: 1.0}
    track = {
        "gap_mu": 0.07,
        "gap_std": 0.035,
        "learned_mu": np.array([[0.0, 0.0], [0.444, 0.02]]),
        "mean_x": np.array([0.433, 0.025]),
    }
    blur = pd.DataFrame(
        {"pixel std, blurred": [0.074, 0.228, 0.284, 0.302, 0.308, 0.314]},
        index=pd.Index([0.0, 0.25, 0.5, 0.75, 0.9, 1.0], name="t/T"),
    )
    return fd.one_line_numbers(fd.tau_table(TAUS), near, track, blur, 1000)


def test_one_line_findings_hold_on_the_chapters_numbers_and_glue_plain_numbers():
    numbers = _one_line_numbers()
    learned = fd.one_line_learned(numbers)
    assert not learned.failing and len(learned.items) == 6
    assert numbers["t2_realnvp"] == numbers["t1_vae"] == 191.98 and numbers["n_disagreements"] == 1
    assert all(isinstance(v, (int, float)) for v in glue_all(numbers).values())  # glued as plain numbers


@pytest.mark.parametrize(
    "key, wrong",
    [
        ("near_end", 0.9),
        ("blur_share", 0.5),
        ("gap_mu", 0.3),
        ("cross_07", 0.5),
        ("t2_realnvp", 131.15),
        ("crossings_rise", False),
    ],
)
def test_one_line_findings_raise_when_a_number_stops_holding(key, wrong):
    numbers = _one_line_numbers() | {key: wrong}
    with pytest.raises(AssertionError, match="no longer hold"):
        fd.one_line_learned(numbers)


def test_one_line_findings_raise_on_a_blur_table_that_falls():
    numbers = _one_line_numbers()
    blur = pd.DataFrame({"pixel std, blurred": [0.074, 0.3, 0.2, 0.314]}, index=[0.0, 0.5, 0.9, 1.0])
    numbers |= {
        k: v
        for k, v in fd.one_line_numbers(
            fd.tau_table(TAUS),
            {0.0: 0.25, 0.5: 0.37, 0.9: 0.9, 1.0: 1.0},
            {"gap_mu": 0.07, "gap_std": 0.035, "learned_mu": np.zeros((1, 2)), "mean_x": np.zeros(2)},
            blur,
            1000,
        ).items()
        if k.startswith("blur")
    }
    with pytest.raises(AssertionError, match="blurred photo"):
        fd.one_line_learned(numbers)


# ------------------------------------------------------------------ chapter 2


def test_stored_divergence_reads_the_shipped_toy_results():
    stored = results.load("toy2d.csv")
    out = fd.stored_divergence(stored)
    circle = stored[(stored.dataset == "von_mises") & (stored.activation == "relu")]
    vanilla = circle[circle["mode"] == "vanilla"]
    assert out["n_vanilla_circle"] == len(vanilla) >= 2
    assert int(out["diverged_step"].replace(",", "")) == int(vanilla["diverged_at"].min())


def test_stored_divergence_raises_when_no_stored_run_diverged():
    stored = results.load("toy2d.csv").copy()
    stored["diverged_at"] = np.nan
    with pytest.raises(AssertionError, match="diverged"):
        fd.stored_divergence(stored)


def test_collapses_counts_each_fall_below_the_best_once():
    assert why._collapses([0.0, 1.0, 2.0, 0.5, 0.4, 2.5, 1.0, np.nan, 3.0]) == 2
    assert why._collapses([0.0, 0.5, 1.0]) == 0


def _fake_runs():
    steps = np.arange(0, 101, 10)
    evals = lambda off, tv: pd.DataFrame({"step": steps, "off_circle": off, "angle_tv": tv})  # noqa: E731
    van = {
        "ll_step": steps,
        "ll": np.array([-2, 0, 0.3, -1, 0.4, -1, 0.2, -0.8, 0.3, -0.5, -0.6]),
        "end_step": 100,
        "evals": evals(np.linspace(0.5, 0.04, 11), np.full(11, 0.17)),
    }
    mol = {
        "ll_step": steps,
        "ll": np.linspace(-2.3, 0.2, 11),
        "end_step": 100,
        "evals": evals(np.linspace(0.9, 0.03, 11), np.linspace(0.2, 0.06, 11)),
    }
    return {"vanilla": van, "mollified": mol}


def _why_inputs():
    deltas = np.geomspace(1.0, 0.01, 13)
    base = -np.log(deltas) - 2.5
    train_ll = {"true von Mises": base, "uniform": base - 0.2, "flipped von Mises": base - 0.9}
    test_ll = {k: v - 0.001 for k, v in train_ll.items()}
    mmd = pd.DataFrame(
        {
            "true von Mises": [0.098, 0.014, 1e-4, -3e-4],
            "uniform": [0.15, 0.09, 0.08, 0.07],
            "flipped von Mises": [0.22, 0.26, 0.31, 0.31],
        },
        index=deltas[::4],
    )
    summary = fd.flow_summary(_fake_runs(), Mollifier("gaussian", horizon=100), 100)
    scores = pd.DataFrame(
        {"mmd2_ls1": [-2.7e-4, -3.6e-4], "mmd2_ls0.1": [-1.5e-4, 0.009], "circle_dist_mean": [0.0, 0.08]},
        index=["data", "data + N(0, 0.1^2)"],
    )
    best_fit = fd.best_bandwidths(
        deltas,
        {
            "true von Mises": -np.abs(np.log(deltas / 0.1)) * 20 - 0.7,
            "uniform": -np.abs(np.log(deltas / 0.1)) * 20 - 0.9,
            "flipped von Mises": -np.abs(np.log(deltas / 0.1)) * 20 - 1.6,
        },
    )
    cont = {
        "theta0": 5.0,
        "total": 4200,
        "theta_plain": 4.86,
        "theta_cont": 0.453,
        "theta_star": 0.453,
        "f_plain": 0.36,
        "f_cont": -1.45,
    }
    return dict(
        deltas=deltas,
        train_ll=train_ll,
        test_ll=test_ll,
        mmd=mmd,
        summary=summary,
        floor_tv=0.049,
        scores=scores,
        best_fit=best_fit,
        gamma=0.01,
        continuation=cont,
    )


def test_flow_summary_counts_collapses_and_wins():
    summary = fd.flow_summary(_fake_runs(), Mollifier("gaussian", horizon=100), 100)
    assert summary.loc["vanilla", "collapses"] > summary.loc["mollified", "collapses"] == 0
    assert summary.loc["mollified", "lower angle TV"] + summary.loc["vanilla", "lower angle TV"] == 10


def test_why_findings_hold_on_numbers_like_the_chapters():
    numbers = fd.why_numbers(**_why_inputs())
    assert numbers["slope_max"] == pytest.approx(-1.0) and numbers["fit_delta"] == pytest.approx(0.1)
    learned = fd.why_learned(numbers)
    assert not learned.failing and len(learned.items) == 7


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda i: i["scores"].__setitem__("mmd2_ls1", [-2.7e-4, 0.02]), "lengthscale 1"),
        (lambda i: i["mmd"].__setitem__("uniform", [0.15, 0.09, 0.08, 1e-4]), "MMD² of the wrong"),
        (
            lambda i: i["train_ll"].__setitem__("flipped von Mises", i["train_ll"]["true von Mises"] - 5),
            "flipped candidate",
        ),
        (lambda i: i["continuation"].__setitem__("theta_cont", 2.0), "continuation ends"),
    ],
)
def test_why_findings_raise_on_a_flipped_value(change, match):
    inputs = _why_inputs()
    change(inputs)
    with pytest.raises(AssertionError, match=match):
        fd.why_learned(fd.why_numbers(**inputs))


def test_why_findings_raise_when_the_vanilla_run_does_not_collapse():
    runs = _fake_runs()
    runs["vanilla"]["ll"] = np.linspace(-2, 0.4, 11)  # climbs smoothly: no collapse
    inputs = _why_inputs() | {"summary": fd.flow_summary(runs, Mollifier("gaussian", horizon=100), 100)}
    with pytest.raises(AssertionError, match="vanilla REAL-NVP"):
        fd.why_learned(fd.why_numbers(**inputs))


def test_candidate_mmd_separates_the_wrong_candidates():
    from molli_utils.data import VonMisesCircle, load_toy2d

    _, x_test = load_toy2d("von_mises", n_train=10, n_test=500, seed=0)
    mmd = fd.candidate_mmd(VonMisesCircle(), x_test.double(), [0.1], 500)
    assert mmd.loc[0.1, "flipped von Mises"] > 10 * abs(mmd.loc[0.1, "true von Mises"])
    assert math.isfinite(mmd.loc[0.1, "uniform"])
