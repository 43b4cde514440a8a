"""Classification datasets with features scaled to [0, 1]: Iris, 8×8 digits, MNIST.

They are registered with the music datasets (:func:`pcmsim.data.available_datasets`
``("classification")``) and read through the same folder, fetcher, checksums and
:class:`pcmsim.data.DataError`:

- Iris (Fisher 1936) and the 8×8 handwritten digits (UCI optdigits test set) ship with
  scikit-learn (``load_iris``, ``load_digits``), so they load offline; a fixed stratified
  train/test split is drawn from a seed.
- MNIST (LeCun, Cortes & Burges) is read from the standard IDX files
  (``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``, ``t10k-…``) in a folder
  the user names, else ``mnist/`` in the data folder (:func:`pcmsim.data.resolve_data_dir`:
  ``$PCMSIM_DATA``, else the user cache). Missing files are downloaded (gzipped, SHA-256
  checked, a second mirror tried when the first fails). A raw (un-gzipped) file found there is read
  as it is: the published checksums are of the gzipped files.

Gerum & Schilling (Neural Computation 33(10), 2021) classify MNIST-type images with LIF networks;
Iris and the 8×8 digits are small stand-ins that train in seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .datasets import MNIST_PARTS, Fetcher, available_datasets, dataset_info, ensure_file, resolve_data_dir
from .errors import DataError
from .idx import IDXError, read_idx

__all__ = ["ClassificationData", "default_mnist_root", "load_classification_data", "load_digits_data",
           "load_iris_data", "load_mnist"]


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
# MNIST
# ---------------------------------------------------------------------------------------------


def default_mnist_root() -> Path:
    """``mnist/`` in the data folder (``$PCMSIM_DATA``, else the user cache)."""
    return resolve_data_dir() / "mnist"


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def load_mnist(
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    fetch: Fetcher | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> ClassificationData:
    """MNIST (60,000 / 10,000 images of 28×28, flattened to 784, scaled by 1/255).

    Args:
        root: folder with the IDX files (raw or ``.gz``); default :func:`default_mnist_root`.
        download: fetch missing files (gzipped, SHA-256 checked) with ``fetch``.
        fetch: a :data:`pcmsim.data.Fetcher` (default :func:`pcmsim.data.fetch_url`); tests inject one.
        train_limit, test_limit: keep only the first N examples of each split.

    Raises:
        DataError: a missing file (without ``download``), a failed download or checksum, a
            malformed IDX file (:class:`pcmsim.data.idx.IDXError`).
    """
    folder = Path(root) if root is not None else default_mnist_root()
    files = dataset_info("mnist").files
    paths: dict[str, Path] = {}
    for part, stem in MNIST_PARTS.items():
        found = _find(folder, stem)
        if found is not None and found.name.endswith(".gz"):
            found = ensure_file(files[part], folder, download=False)  # checks the SHA-256
        if found is None:
            if not download:
                raise DataError(f"{folder / stem}[.gz]: not found; expected the MNIST IDX files in {folder} "
                                "(download is off)")
            found = ensure_file(files[part], folder, download=True, fetch=fetch)
        paths[part] = found
    arrays = {part: read_idx(p, ndim=3 if part.endswith("images") else 1) for part, p in paths.items()}
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
    fetch: Fetcher | None = None,
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
        raise ValueError(
            f"unknown dataset {name!r}; expected one of {', '.join(available_datasets('classification'))}"
        )
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
