"""Every example in examples/ runs in its quick mode, imports only public names and has notebook cells.

The examples run in this process (``runpy``) with ``--quick --out TMP``, from the repository's root;
each leaves its numbers in a module-level ``RESULTS``, checked here against what the example shows.
"""

from __future__ import annotations

import ast
import importlib
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, assert_figure

EXAMPLES = REPO / "examples"
SCRIPTS = sorted(EXAMPLES.glob("[0-9][0-9]_*.py"))
OURS = ("pcmsim", "hardware_in_loop", "device_models")


def test_there_are_the_numbered_examples_the_manual_promises() -> None:
    names = [p.stem for p in SCRIPTS]
    assert len(names) >= 9 and names == sorted(names)
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)]


def _public(module: str) -> set[str]:
    return set(importlib.import_module(module).__all__)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_an_example_imports_only_public_names_and_has_cells_and_a_quick_mode(script: Path) -> None:
    text = script.read_text(encoding="utf-8")
    tree = ast.parse(text)
    imported: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in OURS:
            assert node.module in OURS, f"{script.name}: imports from {node.module} (not a package's public face)"
            for alias in node.names:
                assert alias.name in _public(node.module), f"{script.name}: {node.module}.{alias.name} is not public"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OURS:
                    assert alias.name in OURS, f"{script.name}: imports {alias.name}"
                    imported[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in imported:
            module = imported[node.value.id]
            assert node.attr in _public(module), f"{script.name}: {module}.{node.attr} is not public"
    assert text.startswith("# %% [markdown]\n# # "), f"{script.name}: starts with a markdown title cell"
    assert text.count("\n# %%") >= 3 and "--quick" in text and "PCMSIM_EXAMPLES_QUICK" in text


def _run(script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", [script, "--quick", "--out", str(tmp_path)])
    try:
        namespace = runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    except SystemExit as exc:  # an example without its data or optional package says so and stops
        pytest.skip(f"{script} stopped: {exc}")
    return namespace["RESULTS"]


def test_01_single_analog_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _run("01_single_analog_layer.py", tmp_path, monkeypatch)
    assert r["trained_error"] < 0.7 * r["initial_error"] and r["pulses_set"] > 0
    at = {(row["compensation"], row["delay"]): row["error"] for row in r["drift"]}
    assert at[("global", "1y")] < at[("none", "1y")]  # compensation undoes most of a year's drift


def test_02_snu_on_jsb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, music_data_dir: Path) -> None:
    r = _run("02_snu_on_jsb.py", tmp_path, monkeypatch)
    assert r["pcm"]["n_devices"] == 52_800 and r["pcm"]["pulses_set"] > 0
    assert 0 < r["fp32"]["test_nll"] < 20 and 0 < r["pcm"]["test_nll"] < 20
    assert {(row["compensation"], row["delay"]) for row in r["pcm"]["drift"]} >= {("none", "1d"), ("global", "1d")}
    assert (tmp_path / "pcm" / "snapshots" / "end.pt").is_file()


def test_03_swap_device_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _run("03_swap_device_models.py", tmp_path, monkeypatch)
    assert [r["device_model"] for r in rows] == ["pcm-nandakumar2018", "pcm-joshi2020"]
    assert all(r["pulses_set"] > 0 and r["accuracy"] > 0.3 for r in rows)  # chance is 0.1


def test_04_conductance_histograms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _run("04_conductance_histograms.py", tmp_path, monkeypatch)
    assert [(tag, epoch) for tag, epoch, _ in r["snapshots"]] == [("start", 0), ("epoch1", 1), ("end", 2)]
    assert_figure(Path(r["figure"]))


def test_05_drift_and_compensation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _run("05_drift_and_compensation.py", tmp_path, monkeypatch)
    at = {(row["compensation"], row["delay"]): row["loss"] for row in r["drift"]}
    assert at[("none", "1y")] > 1.5 * at[("none", "1min")]  # a year of drift shrinks the logits
    assert at[("global", "1y")] < 0.5 * at[("none", "1y")]
    assert_figure(Path(r["figure"]))


def test_06_convert_snntorch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("snntorch")
    r = _run("06_convert_snntorch.py", tmp_path, monkeypatch)
    assert r["n_devices"] == 2 * (64 * 100 + 100 * 10) and r["pulses_set"] > 0 and r["accuracy"] > 0.2
    assert r["nir_output_shape"] == [10, 8, 10] and (tmp_path / "digits.nir").is_file()


def test_07_fit_your_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _run("07_fit_your_device.py", tmp_path, monkeypatch)
    measured, fitted = r["curves"]["measured device"], r["curves"]["fitted model"]
    for k in (4, 9, len(measured) - 1):  # the fitted programming curve follows the measured device's
        assert fitted[k] == pytest.approx(measured[k], rel=0.1)


def test_08_sweep_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _run("08_sweep_and_report.py", tmp_path, monkeypatch)
    assert len(r["summary"]["settings"]) == 2 and r["report_status"] == 0
    assert (tmp_path / "summary.csv").is_file() and len(list((tmp_path / "points").iterdir())) == 4


def test_09_energy_of_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _run("09_energy_of_a_run.py", tmp_path, monkeypatch)
    assert r["cost_status"] == 0 and "PCM chip" in r["cost_output"] and "TOPS/W" in r["cost_output"]
    assert_figure(tmp_path / "plots" / "cost.png")


EXECUTED_NOTEBOOKS = {"01_single_analog_layer", "05_drift_and_compensation", "06_convert_snntorch"}
"""The notebooks executed with nbclient (every notebook is generated and checked against its script)."""


def _notebook_tools() -> None:
    for name in ("jupytext", "nbclient", "nbformat", "ipykernel"):
        pytest.importorskip(name, reason=f"{name} is not installed (the dev extra: pip install -e .[dev])")


def test_the_notebooks_are_made_from_the_examples_and_run_in_quick_mode(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _notebook_tools()
    import nbclient
    import nbformat

    make = runpy.run_path(str(REPO / "scripts" / "make_notebooks.py"))
    assert make["main"](["--out", str(tmp_path / "notebooks")]) == 0
    notebooks = sorted((tmp_path / "notebooks").glob("*.ipynb"))
    assert [p.stem for p in notebooks] == [p.stem for p in SCRIPTS]
    if list((EXAMPLES / "notebooks").glob("*.ipynb")):  # committed notebooks are those of the scripts as they stand
        assert make["main"](["--check"]) == 0, "examples/notebooks is stale: run python scripts/make_notebooks.py"
    monkeypatch.setenv("PCMSIM_EXAMPLES_QUICK", "1")  # the kernel inherits both: every example in its quick
    monkeypatch.setenv("PCMSIM_EXAMPLES_OUT", str(tmp_path / "out"))  # mode, writing under tmp_path/out
    (EXAMPLES / "notebooks").mkdir(exist_ok=True)
    for path in notebooks:
        if path.stem not in EXECUTED_NOTEBOOKS:  # the scripts themselves run above; a kernel per notebook costs
            continue                              # seconds, so three notebooks stand for the nine
        nb = nbformat.read(path, as_version=4)
        kinds = [c.cell_type for c in nb.cells]
        assert kinds.count("markdown") >= 2 and kinds.count("code") >= 2
        # run where a user opens it (examples/notebooks/), its files going to the temporary folder
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(EXAMPLES / "notebooks")}}).execute()
        assert not [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                    if o.get("output_type") == "error"], path.name
