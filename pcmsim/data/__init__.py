"""Polyphonic music datasets as 88-key piano rolls, and batches of them for next-step prediction.

JSB Chorales, Nottingham, Piano-midi.de and MuseData, as prepared by N. Boulanger-Lewandowski,
Y. Bengio and P. Vincent, "Modeling Temporal Dependencies in High-Dimensional Sequences: Application
to Polyphonic Music Generation and Transcription", ICML 2012, with their standard train/valid/test
splits. ::

    from pcmsim.data import load_dataset, make_batches
    train = load_dataset("jsb", "train")              # list of [T, 88] float32 0/1 rolls
    for batch in make_batches(train, 32, shuffle=True, generator=torch.Generator().manual_seed(0)):
        batch.inputs, batch.targets, batch.mask       # [T-1, B, 88], [T-1, B, 88], [T-1, B]

Files are read from ``data_dir``, else ``$PCMSIM_DATA``, else ``~/.cache/pcmsim/data`` (honouring
``XDG_CACHE_HOME``), and downloaded there from their public sources when missing, SHA-256 verified.
"""

from .batching import Batch, make_batches, pad_batch
from .classification import (
    ClassificationData,
    default_mnist_root,
    load_classification_data,
    load_digits_data,
    load_iris_data,
    load_mnist,
)
from .datasets import (
    DATA_ENV_VAR,
    MNIST_PARTS,
    DataFile,
    DatasetInfo,
    Fetcher,
    available_datasets,
    clear_caches,
    dataset_files,
    dataset_info,
    default_cache_dir,
    download_file,
    ensure_file,
    fetch_url,
    file_sha256,
    load_dataset,
    load_rolls,
    resolve_data_dir,
    verify_file,
)
from .errors import DataError
from .formats import (
    HIGHEST_NOTE,
    LOWEST_NOTE,
    N_KEYS,
    SPLITS,
    notes_to_roll,
    read_json_rolls,
    read_mat_rolls,
    read_pickle_rolls,
    read_rolls,
)
from .idx import IDXError, read_idx, write_idx

__all__ = [
    "DATA_ENV_VAR",
    "HIGHEST_NOTE",
    "LOWEST_NOTE",
    "N_KEYS",
    "MNIST_PARTS",
    "SPLITS",
    "Batch",
    "ClassificationData",
    "IDXError",
    "DataError",
    "DataFile",
    "DatasetInfo",
    "Fetcher",
    "available_datasets",
    "clear_caches",
    "dataset_files",
    "dataset_info",
    "default_cache_dir",
    "default_mnist_root",
    "download_file",
    "ensure_file",
    "fetch_url",
    "file_sha256",
    "load_classification_data",
    "load_dataset",
    "load_digits_data",
    "load_iris_data",
    "load_mnist",
    "load_rolls",
    "make_batches",
    "notes_to_roll",
    "pad_batch",
    "read_idx",
    "read_json_rolls",
    "read_mat_rolls",
    "read_pickle_rolls",
    "read_rolls",
    "resolve_data_dir",
    "verify_file",
    "write_idx",
]
