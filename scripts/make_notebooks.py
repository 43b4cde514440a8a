"""Write examples/notebooks/*.ipynb from the example scripts (jupytext percent format, `# %%` cells).

    python scripts/make_notebooks.py            # (re)write every notebook
    python scripts/make_notebooks.py --check    # exit 1 and name the notebooks that are missing or stale
    python scripts/make_notebooks.py --out DIR  # write them elsewhere

The notebooks carry no outputs; run one in its quick mode with ``PCMSIM_EXAMPLES_QUICK=1`` in the
kernel's environment (``tests/test_examples.py`` executes them so with nbclient). Needs jupytext
(the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def scripts() -> list[Path]:
    """The numbered example scripts, in order."""
    return sorted(EXAMPLES.glob("[0-9][0-9]_*.py"))


def notebook_text(script: Path) -> str:
    """The notebook of one example script, as the text of its ``.ipynb`` file."""
    import jupytext

    nb = jupytext.read(script, fmt="py:percent")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.pop("jupytext", None)  # the script is the source; the notebook is made from it, not paired
    for i, cell in enumerate(nb.cells):  # stable cell ids (nbformat would draw random ones): --check compares text
        cell["id"] = f"cell-{i}"
    return jupytext.writes(nb, fmt="ipynb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES / "notebooks", help="folder of the notebooks")
    parser.add_argument("--check", action="store_true", help="only say which notebooks are missing or stale")
    args = parser.parse_args(argv)
    try:
        import jupytext  # noqa: F401
    except ImportError:
        print("make_notebooks: jupytext is not installed (pip install -e .[dev])", file=sys.stderr)
        return 2
    stale = []
    for script in scripts():
        target = args.out / f"{script.stem}.ipynb"
        text = notebook_text(script)
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        stale.append(target)
        if not args.check:
            args.out.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)  # atomic: a reader never sees half a notebook
    verb = "stale or missing" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
