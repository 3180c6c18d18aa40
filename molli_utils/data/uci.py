"""UCI tabular data sets of the paper's density-estimation experiment (Sec. 4.3, Table 4).

:func:`load_uci` returns the train/validation/test splits of the paper's protocol
(Appendix D.1, the MAF paper's code): the last 10% of the rows is the test set, the
last 10% of the remaining rows the validation set, the rest the training set, and
every split is standardised with the mean and standard deviation (``ddof=0``) of
train + validation.

The arrays live in ``ROOT/NAME/data.npy`` (float64, one row per record, in the order
of the original file), where ``ROOT`` is the ``root`` argument, else ``$MOLLI_DATA/uci``,
else ``~/.cache/molli_utils/uci``. When ``data.npy`` is missing, the loader rebuilds
it from the original UCI file -- ``ROOT/NAME/<original file name>`` if you put it
there, else downloaded (Colab has a network; the CI machine does not) -- and checks
the result against the SHA-256 of the paper's array before saving it. A corrupt or
partial download is deleted and reported, never silently used; a failed one leaves nothing
behind (the file is downloaded to a temporary name and renamed at the end, and the data
folders it created are removed again).

=========== ================ ==================================================
name        shape            original file (UCI ML repository, CC BY 4.0)
=========== ================ ==================================================
redwine     1599 x 11        ``winequality-red.csv``; ``quality`` dropped
whitewine   4898 x 11        ``winequality-white.csv``; ``quality`` dropped
parkinsons  5875 x 15        ``parkinsons_updrs.data``; 15 of 22 columns kept
miniboone   36488 x 43       ``MiniBooNE_PID.txt``, the MAF paper's preprocessing
=========== ================ ==================================================
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from ..runtime import data_root, new_folders

__all__ = ["UCI_NAMES", "UCIData", "UCISource", "SOURCES", "load_uci", "uci_root", "rebuild_uci", "split_standardise"]

_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"

#: Columns of ``parkinsons_updrs.data`` that the paper's array keeps, in order.
PARKINSONS_COLUMNS = (
    "test_time",
    "motor_UPDRS",
    "total_UPDRS",
    "Jitter(Abs)",
    "Jitter:PPQ5",
    "Jitter:DDP",
    "Shimmer(dB)",
    "Shimmer:APQ5",
    "Shimmer:APQ11",
    "Shimmer:DDA",
    "NHR",
    "HNR",
    "RPDE",
    "DFA",
    "PPE",
)


def _read_wine(path: Path) -> np.ndarray:
    """Wine Quality CSV (``;``-separated, quoted header): the 11 features, ``quality`` dropped."""
    with open(path, encoding="utf-8") as f:
        header = [h.strip().strip('"') for h in f.readline().split(";")]
        if header[-1] != "quality" or len(header) != 12:
            raise ValueError(f"expected the Wine Quality header (11 features and 'quality'), got {header}")
        rows = np.loadtxt(f, delimiter=";", dtype=np.float64, ndmin=2)
    return np.ascontiguousarray(rows[:, :11])


def _read_parkinsons(path: Path) -> np.ndarray:
    """Parkinsons Telemonitoring CSV: the 15 columns of :data:`PARKINSONS_COLUMNS`, by name."""
    with open(path, encoding="utf-8") as f:
        header = [h.strip() for h in f.readline().split(",")]
        missing = [c for c in PARKINSONS_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"expected the parkinsons_updrs.data header; columns {missing} are missing from {header}")
        rows = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    return np.ascontiguousarray(rows[:, [header.index(c) for c in PARKINSONS_COLUMNS]])


def _read_miniboone(path: Path) -> np.ndarray:
    """MiniBooNE PID, preprocessed as in the MAF paper (Papamakarios et al., 2017).

    The first line holds the numbers of signal and background events; the signal
    events come first. Keep the signal events, drop the outlier events (first
    feature below -100: the file's -999 placeholders) and drop every feature whose
    smallest value occurs more than 5 times (the MAF code's criterion for "too many
    re-occurring values").
    """
    with open(path, encoding="utf-8") as f:
        counts = f.readline().split()
        if len(counts) != 2 or not all(c.isdigit() for c in counts):
            raise ValueError(f"expected a first line with two event counts (signal background), got {counts}")
        n_signal = int(counts[0])
        rows = np.loadtxt(f, dtype=np.float64, ndmin=2, max_rows=n_signal)
    if rows.shape != (n_signal, 50):
        raise ValueError(f"expected {n_signal} signal events with 50 features each, got an array of shape {rows.shape}")
    rows = rows[rows[:, 0] >= -100]
    keep = [j for j in range(rows.shape[1]) if np.count_nonzero(rows[:, j] == rows[:, j].min()) <= 5]
    return np.ascontiguousarray(rows[:, keep])


@dataclass(frozen=True)
class UCISource:
    """Where a data set comes from and what its rebuilt array must be."""

    url: str
    filename: str
    shape: tuple[int, int]
    sha256: Optional[str]  # of the saved data.npy; None: not known, the shape is checked instead
    read: Callable[[Path], np.ndarray]


SOURCES: dict[str, UCISource] = {
    "redwine": UCISource(
        f"{_UCI}/wine-quality/winequality-red.csv",
        "winequality-red.csv",
        (1599, 11),
        "28561e18d5bcc60aae41d7e332d98dfc1c003ac62180ca747271797ec18cbeaa",
        _read_wine,
    ),
    "whitewine": UCISource(
        f"{_UCI}/wine-quality/winequality-white.csv",
        "winequality-white.csv",
        (4898, 11),
        "cbc23a12792faba0f269dbc07fd5a8400c71d5680e3ac6acab9eaf32affe0fd7",
        _read_wine,
    ),
    "parkinsons": UCISource(
        f"{_UCI}/parkinsons/telemonitoring/parkinsons_updrs.data",
        "parkinsons_updrs.data",
        (5875, 15),
        "4be5fd9b9940597a969a292725c6c2ae6f23b30293b0b7c4a2c23996dede912e",
        _read_parkinsons,
    ),
    "miniboone": UCISource(f"{_UCI}/00199/MiniBooNE_PID.txt", "MiniBooNE_PID.txt", (36488, 43), None, _read_miniboone),
}
UCI_NAMES = tuple(SOURCES)


@dataclass(frozen=True)
class UCIData:
    """Standardised float32 splits of one data set; ``mean``/``std`` are those of train + validation."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def dim(self) -> int:
        return self.train.shape[1]


def uci_root(root: Union[str, Path, None] = None) -> Path:
    """``root``, else ``$MOLLI_DATA/uci``, else ``$XDG_CACHE_HOME/molli_utils/uci`` (default ``~/.cache/...``)."""
    return data_root("uci", root)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float64))
    return buf.getvalue()


def _check_array(name: str, array: np.ndarray, what: str) -> None:
    """Raise ``ValueError`` unless ``array`` is the paper's array (checksum, else shape and finiteness)."""
    src = SOURCES[name]
    if array.shape != src.shape or not np.isfinite(array).all():
        raise ValueError(
            f"{what} gives an array of shape {array.shape} (finite: {bool(np.isfinite(array).all())}); "
            f"the paper's {name} array has shape {src.shape}"
        )
    if src.sha256 is not None and hashlib.sha256(_npy_bytes(array)).hexdigest() != src.sha256:
        raise ValueError(f"{what} has the right shape but not the paper's values (SHA-256 of data.npy differs)")


def rebuild_uci(name: str, raw_file: Union[str, Path]) -> np.ndarray:
    """Rebuild the paper's array of data set ``name`` from its original UCI file, and verify it."""
    name = _check_name(name)
    try:
        array = SOURCES[name].read(Path(raw_file))
    except (ValueError, UnicodeDecodeError, IndexError) as err:
        raise ValueError(f"{raw_file} is not a valid {SOURCES[name].filename} (corrupt or partial?): {err}") from err
    _check_array(name, array, str(raw_file))
    return array


def _download(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` through a temporary file, so a broken transfer leaves nothing behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, out)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _check_name(name: str) -> str:
    if name not in SOURCES:
        raise ValueError(f"unknown UCI data set {name!r}; choose one of {list(SOURCES)}")
    return name


def _load_array(name: str, folder: Path, download: bool) -> np.ndarray:
    """``folder/data.npy`` (verified), rebuilt from the original file (local or downloaded) when missing."""
    src, npy = SOURCES[name], folder / "data.npy"
    if npy.exists():
        try:
            try:
                array = np.load(npy, allow_pickle=False)
            except (ValueError, OSError, EOFError) as err:  # truncated, not a .npy file, or pickled objects
                raise ValueError(f"{npy} cannot be read as a NumPy array ({type(err).__name__}: {err})") from None
            _check_array(name, array, str(npy))
        except ValueError as err:
            raise ValueError(
                f"{err}. The cached file is corrupt or truncated: delete it and load again to rebuild it "
                f"from the original UCI file ({src.url})."
            ) from None
        return array
    raw = folder / src.filename
    if not raw.exists() and not download:
        raise FileNotFoundError(_missing_message(name, folder, "download=False"))
    with new_folders(folder):  # a failure removes the folders made here
        downloaded = False
        if not raw.exists():
            try:
                _download(src.url, raw)
            except (urllib.error.URLError, OSError) as err:
                raise FileNotFoundError(_missing_message(name, folder, f"downloading {src.url} failed: {err}")) from err
            downloaded = True
        try:
            array = rebuild_uci(name, raw)
        except ValueError as err:
            if downloaded:
                raw.unlink(missing_ok=True)
                raise ValueError(
                    f"the download of {src.url} is corrupt or partial and was deleted ({err}); load again to retry"
                ) from err
            raise
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="data.npy", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(_npy_bytes(array))
            os.replace(tmp, npy)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return array


def _missing_message(name: str, folder: Path, why: str) -> str:
    src = SOURCES[name]
    return (
        f"UCI data set {name!r} is not available offline ({why}). Put the paper's array at {folder / 'data.npy'} "
        f"or the original file at {folder / src.filename} (from {src.url}); or set MOLLI_DATA to a folder "
        f"holding uci/{name}/data.npy, or pass root=..."
    )


def split_standardise(array: np.ndarray, name: str = "") -> UCIData:
    """The paper's split (test = last 10%, validation = last 10% of the rest) and standardisation."""
    n_test = int(0.1 * array.shape[0])
    rest, test = array[:-n_test], array[-n_test:]
    n_val = int(0.1 * rest.shape[0])
    train, val = rest[:-n_val], rest[-n_val:]
    mean, std = rest.mean(axis=0), rest.std(axis=0)
    if np.any(std == 0):
        raise ValueError(f"column(s) {np.flatnonzero(std == 0).tolist()} are constant: they cannot be standardised")

    def scale(a: np.ndarray) -> np.ndarray:
        return ((a - mean) / std).astype(np.float32)

    return UCIData(name, scale(train), scale(val), scale(test), mean, std)


def load_uci(name: str, root: Union[str, Path, None] = None, *, download: bool = True) -> UCIData:
    """Data set ``name`` (one of :data:`UCI_NAMES`) split and standardised as in the paper.

    ``root``: a folder holding ``NAME/data.npy`` (see :func:`uci_root` for the default).
    Missing arrays are rebuilt from the original UCI file, downloaded if ``download``.
    """
    name = _check_name(name)
    return split_standardise(_load_array(name, uci_root(root) / name, download), name)
