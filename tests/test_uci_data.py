"""molli_utils.data.uci: the paper's split and scaling, verified rebuilds from original-format files, clear errors."""

import hashlib
import pathlib

import numpy as np
import pytest

from molli_utils.data import uci
from molli_utils.data.uci import PARKINSONS_COLUMNS, SOURCES, load_uci, rebuild_uci, split_standardise

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "uci"
needs_shared = pytest.mark.skipif(not (SHARED / "redwine" / "data.npy").exists(), reason="../shared/data/uci is absent")


def _real(name):
    return np.load(SHARED / name / "data.npy")


def _write_wine(path, array):
    """The Wine Quality format: quoted ';'-separated header, 11 features and an integer quality."""
    header = [
        '"fixed acidity"',
        '"volatile acidity"',
        '"citric acid"',
        '"residual sugar"',
        '"chlorides"',
        '"free sulfur dioxide"',
        '"total sulfur dioxide"',
        '"density"',
        '"pH"',
        '"sulphates"',
        '"alcohol"',
        '"quality"',
    ]
    lines = [";".join(header)] + [";".join([repr(float(v)) for v in row] + ["5"]) for row in array]
    path.write_text("\n".join(lines) + "\n")


def _write_parkinsons(path, array):
    """parkinsons_updrs.data: 22 comma-separated columns; fill the dropped ones with plausible values."""
    header = [
        "subject#",
        "age",
        "sex",
        "test_time",
        "motor_UPDRS",
        "total_UPDRS",
        "Jitter(%)",
        "Jitter(Abs)",
        "Jitter:RAP",
        "Jitter:PPQ5",
        "Jitter:DDP",
        "Shimmer",
        "Shimmer(dB)",
        "Shimmer:APQ3",
        "Shimmer:APQ5",
        "Shimmer:APQ11",
        "Shimmer:DDA",
        "NHR",
        "HNR",
        "RPDE",
        "DFA",
        "PPE",
    ]
    lines = [",".join(header)]
    for i, row in enumerate(array):
        kept = dict(zip(PARKINSONS_COLUMNS, row))
        vals = [
            str(kept[h]) if h in kept else {"subject#": str(i % 42 + 1), "age": "72", "sex": "0"}.get(h, "0.0049")
            for h in header
        ]
        lines.append(",".join(vals))
    path.write_text("\r\n".join(lines) + "\r\n")


def _sha(array):
    return hashlib.sha256(uci._npy_bytes(array)).hexdigest()


@needs_shared
@pytest.mark.parametrize("name", ["redwine", "whitewine", "parkinsons"])
def test_split_and_standardisation_follow_the_paper(name):
    data = load_uci(name, SHARED)
    raw = _real(name)
    n_test = int(0.1 * len(raw))
    n_val = int(0.1 * (len(raw) - n_test))
    assert (len(data.train), len(data.val), len(data.test)) == (len(raw) - n_test - n_val, n_val, n_test)
    rest = raw[:-n_test]
    mu, sd = rest.mean(0), rest.std(0)
    np.testing.assert_array_equal(data.test, ((raw[-n_test:] - mu) / sd).astype(np.float32))
    np.testing.assert_array_equal(data.val, ((rest[-n_val:] - mu) / sd).astype(np.float32))
    both = np.concatenate([data.train, data.val]).astype(np.float64)
    np.testing.assert_allclose(both.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(both.std(0), 1, atol=1e-5)
    assert data.train.dtype == np.float32 and data.dim == raw.shape[1]


@needs_shared
def test_default_root_comes_from_molli_data(monkeypatch):
    monkeypatch.setenv("MOLLI_DATA", str(SHARED.parent))
    assert uci.uci_root() == SHARED
    assert load_uci("redwine").train.shape == (1296, 11)
    monkeypatch.delenv("MOLLI_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", "/some/cache")
    assert uci.uci_root() == pathlib.Path("/some/cache/molli_utils/uci")


@needs_shared
@pytest.mark.parametrize(
    "name,writer", [("redwine", _write_wine), ("whitewine", _write_wine), ("parkinsons", _write_parkinsons)]
)
def test_rebuild_from_original_format_reproduces_the_paper_array_exactly(tmp_path, name, writer):
    real = _real(name)
    writer(tmp_path / SOURCES[name].filename, real)
    rebuilt = rebuild_uci(name, tmp_path / SOURCES[name].filename)
    np.testing.assert_array_equal(rebuilt, real)
    assert _sha(rebuilt) == SOURCES[name].sha256


@needs_shared
def test_load_rebuilds_a_missing_array_from_a_local_original_file_and_caches_it(tmp_path):
    folder = tmp_path / "redwine"
    folder.mkdir()
    _write_wine(folder / "winequality-red.csv", _real("redwine"))
    data = load_uci("redwine", tmp_path, download=False)
    assert (folder / "data.npy").exists() and _sha(np.load(folder / "data.npy")) == SOURCES["redwine"].sha256
    np.testing.assert_array_equal(data.test, load_uci("redwine", SHARED).test)


@needs_shared
def test_download_goes_through_a_verified_rebuild(tmp_path, monkeypatch):
    """The real download code, fed from a local file:// URL (no network here)."""
    src = tmp_path / "mirror" / "winequality-red.csv"
    src.parent.mkdir()
    _write_wine(src, _real("redwine"))
    monkeypatch.setitem(
        SOURCES,
        "redwine",
        SOURCES["redwine"].__class__(
            src.as_uri(), "winequality-red.csv", (1599, 11), SOURCES["redwine"].sha256, uci._read_wine
        ),
    )
    load_uci("redwine", tmp_path / "root")
    assert (tmp_path / "root" / "redwine" / "data.npy").exists()
    assert not list((tmp_path / "root" / "redwine").glob("*.part")), "temporary download file left behind"


@needs_shared
def test_corrupt_download_is_deleted_and_reported(tmp_path, monkeypatch):
    real = _real("redwine").copy()
    real[10, 3] += 0.1  # one wrong value: right shape, wrong checksum
    src = tmp_path / "winequality-red.csv"
    _write_wine(src, real)
    monkeypatch.setitem(
        SOURCES,
        "redwine",
        SOURCES["redwine"].__class__(
            src.as_uri(), "winequality-red.csv", (1599, 11), SOURCES["redwine"].sha256, uci._read_wine
        ),
    )
    with pytest.raises(ValueError, match="corrupt or partial and was deleted"):
        load_uci("redwine", tmp_path / "root")
    assert not (tmp_path / "root" / "redwine" / "winequality-red.csv").exists()
    assert not (tmp_path / "root" / "redwine" / "data.npy").exists()


@needs_shared
def test_truncated_original_file_gets_a_clear_error(tmp_path):
    path = tmp_path / "winequality-red.csv"
    _write_wine(path, _real("redwine"))
    path.write_text(path.read_text()[:5000])  # a partial download: fewer rows, maybe a cut line
    with pytest.raises(ValueError, match="winequality-red.csv"):
        rebuild_uci("redwine", path)


@needs_shared
def test_corrupt_cached_array_is_refused(tmp_path):
    (tmp_path / "redwine").mkdir()
    bad = _real("redwine").copy()
    bad[0, 0] = 0.0
    np.save(tmp_path / "redwine" / "data.npy", bad)
    with pytest.raises(ValueError, match="not the paper's values.*corrupt or truncated: delete it"):
        load_uci("redwine", tmp_path)


@needs_shared
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "pickled"])
def test_unreadable_cached_array_gets_the_same_clear_error(tmp_path, damage):
    folder = tmp_path / "redwine"
    folder.mkdir()
    good = (SHARED / "redwine" / "data.npy").read_bytes()
    content = {"truncated": good[: len(good) // 3], "garbage": b"not an array at all" * 10, "empty": b""}
    if damage == "pickled":
        np.save(folder / "data.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        (folder / "data.npy").write_bytes(content[damage])
    with pytest.raises(
        ValueError, match=r"data\.npy cannot be read.*corrupt or truncated: delete it and load again"
    ) as err:
        load_uci("redwine", tmp_path)
    assert str(folder / "data.npy") in str(err.value) and "winequality-red.csv" in str(err.value)


def test_offline_without_files_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setitem(
        SOURCES,
        "redwine",
        SOURCES["redwine"].__class__(
            "http://127.0.0.1:9/nothing.csv", "winequality-red.csv", (1599, 11), None, uci._read_wine
        ),
    )
    with pytest.raises(FileNotFoundError, match=r"Put the paper's array at .*redwine.*data\.npy"):
        load_uci("redwine", tmp_path)
    with pytest.raises(FileNotFoundError, match="download=False"):
        load_uci("whitewine", tmp_path, download=False)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown UCI data set 'power'.*redwine"):
        load_uci("power")


def _write_miniboone(path, signal, background):
    lines = [f" {len(signal)} {len(background)}"]
    lines += ["  " + "  ".join(f"{v:.6E}" for v in row) for row in np.concatenate([signal, background])]
    path.write_text("\n".join(lines) + "\n")


def test_miniboone_preprocessing_on_a_synthetic_file(tmp_path):
    """Signal events only, -999 outlier events dropped, features with a repeated minimum dropped."""
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(60, 50))
    signal[8:14, 3] = -5.0  # feature 3: its minimum occurs 6 times -> dropped
    signal[8:13, 7] = -5.0  # feature 7: 5 times -> kept (the criterion is > 5)
    signal[[5, 17], :] = -999.0  # two outlier events (placeholders in every feature)
    background = rng.normal(size=(30, 50)) + 100.0
    _write_miniboone(tmp_path / "MiniBooNE_PID.txt", signal, background)
    out = uci._read_miniboone(tmp_path / "MiniBooNE_PID.txt")
    clean = np.delete(signal, [5, 17], axis=0)
    keep = [j for j in range(50) if j != 3]
    np.testing.assert_allclose(out, clean[:, keep], rtol=1e-6)
    assert out.shape == (58, 49)
    with pytest.raises(ValueError, match="MiniBooNE_PID.txt"):  # wrong shape for the paper's array
        rebuild_uci("miniboone", tmp_path / "MiniBooNE_PID.txt")


def test_split_refuses_constant_columns():
    with pytest.raises(ValueError, match="constant"):
        split_standardise(np.ones((50, 3)))
