"""Classification datasets with features scaled to [0, 1]: Iris, 8×8 digits, MNIST.

- Iris (Fisher 1936) and the 8×8 handwritten digits (UCI optdigits test set) ship with
  scikit-learn (``load_iris``, ``load_digits``), so they load offline; a fixed stratified
  train/test split is drawn from a seed.
- MNIST (LeCun, Cortes & Burges) is read from the standard IDX files
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-…``) in a folder
  the user names, or ``$PCMSIM_DATA/mnist``. Missing files are downloaded (gzipped, SHA-256
  checked) through an injectable ``fetch`` function.

Gerum & Schilling (Neural Computation 33(10), 2021) classify MNIST-type images with LIF networks;
Iris and the 8×8 digits are small stand-ins that train in seconds.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

DATASETS: tuple[str, ...] = ("iris", "digits", "mnist")


@dataclass(frozen=True)
class ClassificationData:
    """A train/test split: features ``[N, n_features]`` float32 in [0, 1], labels ``[N]`` int64."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    n_classes: int

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


def _stratified_split(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction} is invalid; expected 0 < test_fraction < 1")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return x_tr, x_te, y_tr, y_te


def _to_data(
    name: str, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray
) -> ClassificationData:
    return ClassificationData(
        name=name,
        x_train=torch.as_tensor(np.ascontiguousarray(x_tr), dtype=torch.float32),
        y_train=torch.as_tensor(np.ascontiguousarray(y_tr), dtype=torch.int64),
        x_test=torch.as_tensor(np.ascontiguousarray(x_te), dtype=torch.float32),
        y_test=torch.as_tensor(np.ascontiguousarray(y_te), dtype=torch.int64),
        n_classes=int(max(y_tr.max(), y_te.max())) + 1,
    )


def load_iris_data(seed: int = 0, test_fraction: float = 0.3) -> ClassificationData:
    """Iris (150 × 4, 3 classes), stratified split; min–max scaled with the *training* set's range.

    Test features are clipped into [0, 1] (a test value outside the training range saturates).
    """
    from sklearn.datasets import load_iris

    bunch = load_iris()
    x_tr, x_te, y_tr, y_te = _stratified_split(bunch.data, bunch.target, test_fraction, seed)
    lo, hi = x_tr.min(axis=0), x_tr.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    x_tr = (x_tr - lo) / span
    x_te = np.clip((x_te - lo) / span, 0.0, 1.0)
    return _to_data("iris", x_tr, y_tr, x_te, y_te)


def load_digits_data(seed: int = 0, test_fraction: float = 0.25) -> ClassificationData:
    """8×8 digits (1797 × 64, 10 classes, pixel values 0…16 scaled by 1/16), stratified split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x_tr, x_te, y_tr, y_te = _stratified_split(bunch.data / 16.0, bunch.target, test_fraction, seed)
    return _to_data("digits", x_tr, y_tr, x_te, y_te)


# ---------------------------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------------------------


class IDXError(ValueError):
    """A malformed IDX file; the message is one line: file, problem, what was expected."""


_IDX_DTYPES: dict[int, tuple[str, np.dtype]] = {
    0x08: ("unsigned byte", np.dtype(">u1")),
    0x09: ("signed byte", np.dtype(">i1")),
    0x0B: ("short", np.dtype(">i2")),
    0x0C: ("int", np.dtype(">i4")),
    0x0D: ("float", np.dtype(">f4")),
    0x0E: ("double", np.dtype(">f8")),
}


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    try:
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as g:
                return g.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise IDXError(f"{path}: cannot read ({exc}); expected a complete IDX file, raw or gzipped") from None


def read_idx(path: str | os.PathLike[str], ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzipped, detected by content) into a numpy array.

    Format (LeCun et al.): magic ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32
    dimensions, then the data, big-endian, row-major.

    Args:
        path: the file.
        ndim: the expected number of dimensions (3 for images, 1 for labels), or None.

    Raises:
        IDXError: bad magic, wrong number of dimensions, truncated or over-long data.
    """
    p = Path(path)
    raw = _read_bytes(p)
    if len(raw) < 4:
        raise IDXError(f"{p}: truncated header ({len(raw)} bytes); expected at least a 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise IDXError(
            f"{p}: bad magic number 0x{raw[:4].hex()}; expected 0x0000TTNN with type TT in "
            f"{{08, 09, 0b, 0c, 0d, 0e}} (e.g. 0x00000803 for images, 0x00000801 for labels)"
        )
    n_dims = raw[3]
    if ndim is not None and n_dims != ndim:
        raise IDXError(f"{p}: wrong number of dimensions {n_dims}; expected {ndim}")
    header = 4 + 4 * n_dims
    if len(raw) < header:
        raise IDXError(
            f"{p}: truncated header ({len(raw)} bytes); expected {header} bytes for {n_dims} dimensions"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=n_dims, offset=4))
    _, dtype = _IDX_DTYPES[raw[2]]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got < expected:
        raise IDXError(f"{p}: truncated data ({got} bytes); expected {expected} bytes for shape {dims}")
    if got > expected:
        raise IDXError(
            f"{p}: {got - expected} trailing bytes after the data; expected {expected} bytes for shape {dims}"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=int(np.prod(dims, dtype=np.int64)), offset=header)
    return arr.reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool = False) -> None:
    """Write ``array`` as an IDX file (gzipped when ``compress``); for tests and small exports."""
    codes = {np.dtype(v[1]).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    a = np.asarray(array)
    native = a.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(
            f"dtype {a.dtype} cannot be stored in IDX; expected uint8, int8, int16, int32, float32, float64"
        )
    code = codes[native]
    big = a.astype(_IDX_DTYPES[code][1])
    payload = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes() + big.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:  # type: ignore[operator]
        f.write(payload)


# ---------------------------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------------------------

MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
"""SHA-256 of the gzipped files as distributed by LeCun et al. (the same on the mirrors below)."""

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

Fetch = Callable[[str, Path], None]
"""``fetch(url, destination)`` writes the resource at ``url`` to the file ``destination``."""


def urllib_fetch(url: str, destination: Path) -> None:
    """Download ``url`` to ``destination`` with urllib (60 s timeout)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(destination, "wb") as out:
        shutil.copyfileobj(response, out)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_mnist_root() -> Path:
    """``$PCMSIM_DATA/mnist``, or ``./data/mnist`` when ``PCMSIM_DATA`` is not set."""
    base = os.environ.get("PCMSIM_DATA")
    return (Path(base) if base else Path("data")) / "mnist"


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def download_mnist_file(
    root: Path, filename: str, *, fetch: Fetch = urllib_fetch, mirrors: Sequence[str] = MNIST_MIRRORS
) -> Path:
    """Download one gzipped MNIST file into ``root``, check its SHA-256, and move it into place."""
    expected = MNIST_SHA256[filename]
    root.mkdir(parents=True, exist_ok=True)
    errors = []
    for base in mirrors:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=root)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            fetch(base + filename, tmp)
            digest = sha256_of(tmp)
            if digest != expected:
                errors.append(f"{base + filename}: SHA-256 {digest}, expected {expected}")
                continue
            target = root / filename
            os.replace(tmp, target)
            return target
        except Exception as exc:  # network errors differ by fetch; report them all
            errors.append(f"{base + filename}: {type(exc).__name__}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)
    raise OSError(
        f"could not download {filename} into {root} ({'; '.join(errors)}); "
        f"place the MNIST IDX files there by hand or check the network"
    )


def load_mnist(
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    fetch: Fetch = urllib_fetch,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> ClassificationData:
    """MNIST (60,000 / 10,000 images of 28×28, flattened to 784, scaled by 1/255).

    Args:
        root: folder with the IDX files (raw or ``.gz``); default :func:`default_mnist_root`.
        download: fetch missing files (gzipped, SHA-256 checked) with ``fetch``.
        fetch: ``fetch(url, path)``; inject a fake in tests.
        train_limit, test_limit: keep only the first N examples of each split.
    """
    folder = Path(root) if root is not None else default_mnist_root()
    paths: dict[str, Path] = {}
    for key, stem in MNIST_FILES.items():
        found = _find(folder, stem)
        if found is None:
            if not download:
                raise FileNotFoundError(
                    f"{folder / stem}[.gz] is missing; expected the MNIST IDX files in {folder} "
                    f"(download=False)"
                )
            found = download_mnist_file(folder, stem + ".gz", fetch=fetch)
        paths[key] = found
    arrays = {}
    for key, p in paths.items():
        arrays[key] = read_idx(p, ndim=3 if key.endswith("images") else 1)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise IDXError(
                f"{paths[split + '_labels']}: {labels.shape[0]} labels for {images.shape[0]} images in "
                f"{paths[split + '_images']}; expected equal counts"
            )

    def cut(a: np.ndarray, n: int | None) -> np.ndarray:
        return a if n is None else a[:n]

    images_tr, images_te = cut(arrays["train_images"], train_limit), cut(arrays["test_images"], test_limit)
    x_tr = images_tr.reshape(images_tr.shape[0], -1)
    x_te = images_te.reshape(images_te.shape[0], -1)
    y_tr = cut(arrays["train_labels"], train_limit).astype(np.int64)
    y_te = cut(arrays["test_labels"], test_limit).astype(np.int64)
    return _to_data("mnist", x_tr.astype(np.float32) / 255.0, y_tr, x_te.astype(np.float32) / 255.0, y_te)


def load_classification_data(
    name: str,
    *,
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    fetch: Fetch = urllib_fetch,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> ClassificationData:
    """Load a dataset by name (``iris``, ``digits``, ``mnist``); ``seed`` fixes the iris/digits split."""
    if name == "iris":
        data = load_iris_data(seed)
    elif name == "digits":
        data = load_digits_data(seed)
    elif name == "mnist":
        return load_mnist(
            root, download=download, fetch=fetch, train_limit=train_limit, test_limit=test_limit
        )
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if train_limit is not None or test_limit is not None:
        data = ClassificationData(
            name=data.name,
            x_train=data.x_train[:train_limit],
            y_train=data.y_train[:train_limit],
            x_test=data.x_test[:test_limit],
            y_test=data.y_test[:test_limit],
            n_classes=data.n_classes,
        )
    return data
