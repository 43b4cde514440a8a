"""Every Python block of the manual runs as printed (in a scratch folder, the repository's configs beside
it), page by page in one namespace; a block preceded by ``<!-- not run in the tests: REASON -->`` says why
it cannot run here. The snnTorch tutorial page runs through its own script (tests/test_tutorial.py)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEPARATE = {"tutorial-snntorch.md": "tests/test_tutorial.py runs docs/tutorial_snntorch.py",
            "extending.md": "tests/test_readme_examples.py runs both examples and trains with them",
            "snapshots.md": "tests/test_snapshots.py runs it on a real run's folder"}
BLOCK = re.compile(r"(<!-- not run in the tests: [^>]+-->\s*)?```python\n(.*?)```", re.S)
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md")
               if p.name not in SEPARATE and any(not skip for skip, _ in BLOCK.findall(p.read_text())))


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_the_python_blocks_of_a_page_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         music_data_dir: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look their module up
    scope = module.__dict__
    ran = 0
    for skipped, code in BLOCK.findall(page.read_text()):
        if skipped:
            continue
        exec(compile(code, str(page), "exec"), scope)  # noqa: S102 - our own manual
        ran += 1
    assert ran > 0
    if page.name == "python-api.md":
        _check_python_api(scope)


def _check_python_api(scope: dict[str, Any]) -> None:
    """The page's training loop moved the clock as the trainer would, and started from the marginal bias."""
    hil, rows = scope["hil"], scope["rows"]
    assert hil.totals.pulses_set > 0
    steps = sum(len(s) - 1 for s in scope["train"])  # the forward passes' time steps, then pulses and overheads
    cfg = hil.clock.config
    assert hil.clock.now_s >= cfg.t_start_s + steps * cfg.mvm_per_step_s + len(scope["train"]) * cfg.batch_overhead_s
    assert [r["delay"] for r in rows] == ["0s", "1h", "1d", "1y"] * 2
    none = {r["delay"]: r["metric"] for r in rows if r["compensation"] == "none"}
    assert 5.0 < none["0s"] < 20.0  # the output bias starts at the keys' marginal (NLL ≈ 10.6, not 61)
    assert tuple(scope["w"].shape) == (150, 88)
    assert scope["results"]["flavour"] == "pcm" and scope["results"]["epochs"] == 1


def test_every_python_block_of_the_manual_is_run_somewhere() -> None:
    for page in sorted((ROOT / "docs").glob("*.md")):
        blocks = BLOCK.findall(page.read_text())
        if not blocks:
            continue
        assert page in PAGES or page.name in SEPARATE or all(skip for skip, _ in blocks), page.name
