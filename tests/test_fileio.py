"""Atomic writes: nothing half-written, ordinary permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pcmsim.fileio import atomic_write


def test_atomic_write_replaces_whole_and_uses_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    atomic_write(target, lambda fh: fh.write("first"))
    atomic_write(target, lambda fh: fh.write("second"))
    assert target.read_text() == "second"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def boom(fh: object) -> None:
        fh.write("partial")  # type: ignore[attr-defined]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
