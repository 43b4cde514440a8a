"""Every example in examples/ runs in its quick mode, imports only public names and has notebook cells.

Each example runs as its notebook (examples/notebooks/, made from the script and checked to be the
script as it stands), executed by nbclient in one shared Jupyter kernel in quick mode; one example
also runs as a script with ``--quick --out TMP`` (its command-line path). Without the notebook tools
(the dev extra) every example runs as a script, in this process (``runpy``). Each leaves its numbers
in a module-level ``RESULTS``, checked here against what the example shows.
"""

from __future__ import annotations

import ast
import base64
import importlib
import importlib.util
import os
import pickle
import runpy
import sys
from collections.abc import Iterator
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


NOTEBOOK_TOOLS = ("jupytext", "nbclient", "nbformat", "ipykernel")
SCRIPT_RUN = "05_drift_and_compensation.py"
"""The one example also run as a script (``--quick --out``): the others run only as notebooks."""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path] | None]:
    """One Jupyter kernel for every notebook (a kernel's start and imports cost seconds each), in
    examples/notebooks/ where a user opens them, in quick mode, writing under a temporary folder.
    None when the notebook tools (the dev extra) are not installed: the examples then run as scripts."""
    if not all(importlib.util.find_spec(name) for name in NOTEBOOK_TOOLS):
        yield None
        return
    from jupyter_client.manager import KernelManager

    out = tmp_path_factory.mktemp("notebooks")
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(EXAMPLES / "notebooks"),
                    env={**os.environ, "PCMSIM_EXAMPLES_QUICK": "1", "PCMSIM_EXAMPLES_OUT": str(out)})
    try:
        yield km, out
    finally:
        km.shutdown_kernel(now=True)


def _run_notebook(stem: str, km: Any) -> Any:
    """Execute examples/notebooks/STEM.ipynb in the shared kernel (its namespace reset first) and
    return the notebook's RESULTS."""
    import nbclient
    import nbformat

    nb = nbformat.read(EXAMPLES / "notebooks" / f"{stem}.ipynb", as_version=4)
    kinds = [c.cell_type for c in nb.cells]
    assert kinds.count("markdown") >= 2 and kinds.count("code") >= 2
    nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))  # nothing left from the notebook before
    nb.cells.append(nbformat.v4.new_code_cell(
        "import base64 as _b, pickle as _p\nprint(_b.b64encode(_p.dumps(RESULTS)).decode())"))
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", km=km)
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    return pickle.loads(base64.b64decode(text))  # noqa: S301 - our own notebook's output


def _run(script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel: tuple[Any, Path] | None,
         ) -> tuple[Any, Path]:
    """An example's RESULTS and output folder: its notebook executed (the committed notebook, the
    same code as the script: test_the_notebooks_are_made_from_the_examples), or the script run with
    ``--quick --out`` in this process where the notebook tools are missing or for SCRIPT_RUN."""
    if kernel is not None and script != SCRIPT_RUN:
        km, out = kernel
        return _run_notebook(Path(script).stem, km), out / f"{script[:2]}-quick"
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", [script, "--quick", "--out", str(tmp_path)])
    try:
        namespace = runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    except SystemExit as exc:  # an example without its data or optional package says so and stops
        pytest.skip(f"{script} stopped: {exc}")
    return namespace["RESULTS"], tmp_path


def test_01_single_analog_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                kernel: tuple[Any, Path] | None) -> None:
    r, out = _run("01_single_analog_layer.py", tmp_path, monkeypatch, kernel)
    assert r["trained_error"] < 0.7 * r["initial_error"] and r["pulses_set"] > 0
    at = {(row["compensation"], row["delay"]): row["error"] for row in r["drift"]}
    assert at[("global", "1y")] < at[("none", "1y")]  # compensation undoes most of a year's drift


def test_02_snu_on_jsb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, music_data_dir: Path,
                       kernel: tuple[Any, Path] | None) -> None:
    r, out = _run("02_snu_on_jsb.py", tmp_path, monkeypatch, kernel)
    assert r["pcm"]["n_devices"] == 52_800 and r["pcm"]["pulses_set"] > 0
    assert 0 < r["fp32"]["test_nll"] < 20 and 0 < r["pcm"]["test_nll"] < 20
    assert {(row["compensation"], row["delay"]) for row in r["pcm"]["drift"]} >= {("none", "1d"), ("global", "1d")}
    assert (out / "pcm" / "snapshots" / "end.pt").is_file()


def test_03_swap_device_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               kernel: tuple[Any, Path] | None) -> None:
    rows, out = _run("03_swap_device_models.py", tmp_path, monkeypatch, kernel)
    assert [r["device_model"] for r in rows] == ["pcm-nandakumar2018", "pcm-joshi2020"]
    assert all(r["pulses_set"] > 0 and r["accuracy"] > 0.3 for r in rows)  # chance is 0.1


def test_04_conductance_histograms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   kernel: tuple[Any, Path] | None) -> None:
    r, out = _run("04_conductance_histograms.py", tmp_path, monkeypatch, kernel)
    assert [(tag, epoch) for tag, epoch, _ in r["snapshots"]] == [("start", 0), ("epoch1", 1), ("end", 2)]
    assert_figure(Path(r["figure"]))


def test_05_drift_and_compensation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   kernel: tuple[Any, Path] | None) -> None:
    r, out = _run("05_drift_and_compensation.py", tmp_path, monkeypatch, kernel)
    at = {(row["compensation"], row["delay"]): row["loss"] for row in r["drift"]}
    assert at[("none", "1y")] > 1.5 * at[("none", "1min")]  # a year of drift shrinks the logits
    assert at[("global", "1y")] < 0.5 * at[("none", "1y")]
    assert_figure(Path(r["figure"]))


def test_06_convert_snntorch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             kernel: tuple[Any, Path] | None) -> None:
    pytest.importorskip("snntorch")
    r, out = _run("06_convert_snntorch.py", tmp_path, monkeypatch, kernel)
    assert r["n_devices"] == 2 * (64 * 100 + 100 * 10) and r["pulses_set"] > 0 and r["accuracy"] > 0.2
    assert r["nir_output_shape"] == [10, 8, 10] and (out / "digits.nir").is_file()


def test_07_fit_your_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            kernel: tuple[Any, Path] | None) -> None:
    r, out = _run("07_fit_your_device.py", tmp_path, monkeypatch, kernel)
    measured, fitted = r["curves"]["measured device"], r["curves"]["fitted model"]
    for k in (4, 9, len(measured) - 1):  # the fitted programming curve follows the measured device's
        assert fitted[k] == pytest.approx(measured[k], rel=0.1)


def test_08_sweep_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             kernel: tuple[Any, Path] | None) -> None:
    r, out = _run("08_sweep_and_report.py", tmp_path, monkeypatch, kernel)
    assert len(r["summary"]["settings"]) == 2 and r["report_status"] == 0
    assert (out / "summary.csv").is_file() and len(list((out / "points").iterdir())) == 4


def test_09_energy_of_a_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            kernel: tuple[Any, Path] | None) -> None:
    r, out = _run("09_energy_of_a_run.py", tmp_path, monkeypatch, kernel)
    assert r["cost_status"] == 0 and "PCM chip" in r["cost_output"] and "TOPS/W" in r["cost_output"]
    assert_figure(out / "plots" / "cost.png")


def test_the_notebooks_are_made_from_the_examples() -> None:
    """Every example has its notebook, none other, and each is made from the script as it stands (so
    executing a notebook above runs the script's code)."""
    pytest.importorskip("jupytext", reason="jupytext is not installed (the dev extra: pip install -e .[dev])")
    make = runpy.run_path(str(REPO / "scripts" / "make_notebooks.py"))
    assert [p.stem for p in sorted((EXAMPLES / "notebooks").glob("*.ipynb"))] == [p.stem for p in SCRIPTS]
    assert make["main"](["--check"]) == 0, "examples/notebooks is stale: run python scripts/make_notebooks.py"
