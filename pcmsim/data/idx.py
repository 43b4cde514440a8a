"""IDX files (LeCun et al.): the format of MNIST and its relatives, raw or gzipped.

Format: magic ``0x00 0x00 <type> <ndim>``, then ``ndim`` big-endian uint32 dimensions, then the
data, big-endian, row-major. Every malformed file raises :class:`IDXError`, a
:class:`pcmsim.data.DataError` whose one-line message names the file, the problem and what was
expected.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["IDXError", "read_idx", "write_idx"]


class IDXError(DataError):
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
    with opener(path, "wb") as f:
        f.write(payload)
