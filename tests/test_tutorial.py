"""The snnTorch tutorial runs (its quick mode), and its page shows only code that the script runs."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
SCRIPT = DOCS / "tutorial_snntorch.py"
PAGE = DOCS / "tutorial-snntorch.md"


def test_every_line_of_the_tutorial_page_code_is_in_the_script() -> None:
    script_lines = {line.strip() for line in SCRIPT.read_text(encoding="utf-8").splitlines()}
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 5
    missing = [line.strip() for block in blocks for line in block.splitlines()
               if line.strip() and line.strip() not in script_lines]
    assert not missing, "lines of docs/tutorial-snntorch.md that docs/tutorial_snntorch.py does not run:\n" + "\n".join(
        missing)


def test_the_tutorial_runs_in_its_quick_mode(tmp_path: Path) -> None:
    pytest.importorskip("snntorch")
    pytest.importorskip("matplotlib")
    module = runpy.run_path(str(SCRIPT), run_name="tutorial_snntorch")
    results = module["main"](["--quick", "--out", str(tmp_path)])
    assert results["n_devices"] == 52_836 == results["nir_devices"]
    assert results["pulses_set"] > 0 and results["losses"][-1] < results["losses"][0]
    assert {(r["compensation"], r["delay"]) for r in results["drift"]} >= {("none", "1 day"), ("global", "1 day")}
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in results["drift"])
    assert results["nir_output_shape"] == [25, 8, 10]
    assert (tmp_path / "tutorial-snntorch.png").stat().st_size > 10_000
    assert (tmp_path / "results.json").is_file()
