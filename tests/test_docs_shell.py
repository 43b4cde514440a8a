"""Every shell block of the manual is accounted for, command by command (the Python blocks are
tests/test_docs_code.py's).

The pages: docs/*.md, README.md, CONTRIBUTING.md, BENCHMARKS.md, examples/README.md. Every fenced
block names its language; in a ``bash``/``sh`` block (``console``: the lines after ``$ ``) each command
is, in one scratch folder shared by the pages (the repository's configs beside it, README first):

- **run** as printed (:data:`RUN`) or in the quick form of :data:`QUICK` (the same command, smaller),
  through ``hardware_in_loop.cli.main``, expected to exit 0;
- **parsed** by the real parser where running takes minutes or needs a folder of a long run:
  ``pcmsim`` commands by ``hardware_in_loop.cli.build_parser()`` (sweep files are also loaded with the
  command's ``--set``/``--seeds``, which validates every point's config), ``python SCRIPT.py`` by the
  script's own argparse parser (the script runs up to its ``parse_args`` and stops there), with the
  reason in :data:`NOT_RUN` / :data:`NOT_RUN_SCRIPTS`;
- a usage synopsis (``[--option VALUE]``, ``a|b``): the line without its optional parts parses, and
  every option in brackets exists on that command, with the listed choices all of the option's;
- anything else (``make``, ``pytest``, ``less``, ``dask``, a GPU script) is checked where it can be
  (the make target and variables exist, the test files and markers exist) and listed in
  :data:`OTHER` with its reason.

An unknown program, an unparseable command, or a ``pcmsim`` command that is neither run nor given a
reason fails the test.
"""

from __future__ import annotations

import argparse
import re
import runpy
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "CONTRIBUTING.md",
         ROOT / "BENCHMARKS.md", ROOT / "examples" / "README.md"]
SHELL = ("bash", "sh", "console")

RUN = {  # pcmsim commands of the manual run as printed (seconds each)
    "pcmsim evaluate runs/digits --times 1h,1d,1y --compensation none,global",
    "pcmsim cost runs/digits",
    "pcmsim cost RUN --cost-profile legallo-64core",
    "pcmsim cost RUN --cost-profile my_chip.json",
}
QUICK = {  # a command of the manual → the quick form the test runs (the same command, smaller)
    "pcmsim train configs/digits-lif.json --flavour pcm --out runs/digits":
        "pcmsim train configs/digits-lif.json --flavour pcm --out runs/digits --epochs 1",
    "pcmsim device measure pcm-nandakumar2018 measured/":
        "pcmsim device measure pcm-nandakumar2018 measured/ --n-devices 40 --n-pulses 5",
}
MET: set[str] = set()
"""The commands of RUN and QUICK and the NOT_RUN entries the test met on the pages (each must still be met)."""
PLACEHOLDERS = {"RUN": "runs/digits"}
"""Placeholders of the manual's commands → what the test puts there (runs/digits: the README's run)."""
FILES = {"my_chip.json": "configs/cost_profiles/pcm-hermes-45nm.json"}
"""Files the manual asks the reader to write → the repository file the test copies there."""

NOT_RUN = {  # pcmsim (sub)command → why its commands in the manual are only parsed
    "reproduce": "the reproduction takes minutes (make demo); its --quick form runs in tests/test_cli.py "
                 "and tests/test_resume.py",
    "sweep": "a sweep is many runs (minutes to hours); the file is loaded and every point validated here, "
             "tests/test_sweep.py runs small sweeps",
    "sweep-report": "needs a finished sweep's folder; tests/test_sweep.py reports one",
    "evaluate": "on the folder of the full reproduction (make demo); the README's evaluate runs here",
    "plot": "on the folder of the full reproduction (make demo); tests/test_figures.py plots runs",
    "cost": "on the folder of the full reproduction (make demo); energy.md's cost commands run here on a run",
    "device plot": "five figures of 10,000 devices (seconds); tests/test_device_fit_failures.py runs the "
                   "command, tests/test_figures.py the figures",
    "device fit": "the fit of the measured files takes over a minute; examples/07 runs measure → fit → use "
                  "in its quick mode (tests/test_examples.py), tests/test_device_fit.py the command",
}
NOT_RUN_SCRIPTS = {  # a script's folder or path → why it is only parsed
    "bench/": "a benchmark or study (minutes to hours) that writes bench/results/",
    "docs/tutorial_snntorch.py": "tests/test_tutorial.py runs it in its quick mode",
}
OTHER = {  # programs that are not run → the reason
    "make": "make test is the suite itself, make demo the reproduction (parsed as pcmsim reproduce "
            "elsewhere), make docs tests/test_docs.py, make lint ruff; the target and variables are checked",
    "pytest": "the test suite itself; its files and markers are checked",
    "less": "a pager on a file the block's previous command writes",
    "dask": "a Dask cluster on several machines; tests/test_sweep.py runs a local one",
    "bash": "a GPU session script (needs a GPU machine); the script is checked to exist",
    "export": "sets an environment variable for the commands after it",
    "mypy": "the type checker over the three packages; make test runs it ([tool.mypy] in pyproject.toml)",
}


def fenced_blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """(language, line of the opening fence, body lines) of every fenced block."""
    blocks, current = [], None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if current is None:
            opening = re.match(r"(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if opening:
                current = (opening.group(1), opening.group(2), number, [])
        elif stripped.startswith(current[0]) and not stripped.strip(current[0][0]):
            blocks.append(current[1:])
            current = None
        else:
            current[3].append(line)
    assert current is None, f"a fence opened at line {current[2]} is never closed"
    return blocks


def commands(lang: str, body: list[str]) -> list[str]:
    """The block's commands, continuation lines joined, comments and console output dropped."""
    if lang == "console":
        body = [line.strip()[2:] for line in body if line.strip().startswith("$ ")]
    out, pending = [], ""
    for line in body:
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        words = shlex.split(pending, comments=True)
        if words:
            out.append(pending)
        pending = ""
    return out


def shell_blocks() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for lang, line, body in fenced_blocks(page.read_text(encoding="utf-8")):
            if lang in SHELL:
                found.append((f"{page.relative_to(ROOT)}:{line}", commands(lang, body)))
    return found


def test_every_fenced_block_names_its_language() -> None:
    """An unlabelled block would be neither a shell block nor text: the labels decide what is checked."""
    unlabelled = [f"{page.relative_to(ROOT)}:{line}" for page in PAGES
                  for lang, line, _ in fenced_blocks(page.read_text(encoding="utf-8")) if not lang]
    assert not unlabelled, f"fenced blocks without a language (bash, text, ...): {unlabelled}"


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser of the (sub)command that ``words`` name, and the command's name path."""
    path: list[str] = []
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or not words or words[0] not in subs[0].choices:
            return parser, path
        parser, path, words = subs[0].choices[words[0]], [*path, words[0]], words[1:]


def _parse(argv: list[str], capsys: pytest.CaptureFixture[str]) -> argparse.Namespace:
    from hardware_in_loop.cli import build_parser

    try:
        return build_parser().parse_args(argv)
    except SystemExit:
        raise AssertionError(capsys.readouterr().err.strip().splitlines()[-1]) from None


def _synopsis(line: str, capsys: pytest.CaptureFixture[str]) -> str:
    """A usage line: its mandatory part parses; each bracketed option exists, with all its choices."""
    from hardware_in_loop.cli import build_parser

    text = " ".join(shlex.split(line, comments=True))
    mandatory = shlex.split(re.sub(r"\[[^\[\]]*\]", " ", text))[1:]
    _parse(mandatory, capsys)
    parser, path = _subparser(build_parser(), mandatory)
    options = {s: a for a in parser._actions for s in a.option_strings}
    for group in re.findall(r"\[([^\[\]]*)\]", text):
        for alternative in group.split(" | "):
            words = alternative.split()
            if not words[0].startswith("-"):
                continue
            assert words[0] in options, f"{words[0]} is no option of pcmsim {' '.join(path)}"
            action = options[words[0]]
            if len(words) > 1 and "|" in words[1] and action.choices:
                assert set(words[1].split("|")) == set(action.choices), (
                    f"{words[0]} {words[1]}: the option's choices are {'|'.join(action.choices)}")
    return "synopsis: parsed, options checked"


def _check_exact_options(parser: argparse.ArgumentParser, argv: list[str], what: str) -> None:
    """argparse takes an abbreviated option (``--epoch`` for ``--epochs``): the manual spells them out."""
    for word in argv:
        if word.startswith("--"):
            assert word.split("=")[0] in parser._option_string_actions, f"{what}: {word} is no option (spelled out)"


def _check_repo_paths(argv: list[str]) -> None:
    for word in argv:
        if re.match(r"(configs|bench|docs|examples|scripts|tests)/", word):
            assert (ROOT / word).exists(), f"{word} does not exist"


def _pcmsim(argv: list[str], workdir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    from hardware_in_loop.cli import build_parser, main

    key = shlex.join(["pcmsim", *argv])
    argv = [PLACEHOLDERS.get(word, word) for word in argv]
    args = _parse(argv, capsys)
    _check_exact_options(_subparser(build_parser(), argv)[0], argv, key)
    _check_repo_paths(argv)
    if key in RUN or key in QUICK:
        MET.add(key)
        argv = shlex.split(QUICK[key])[1:] if key in QUICK else argv
        for name, source in FILES.items():
            if name in argv and not (workdir / name).exists():
                shutil.copy(ROOT / source, workdir / name)
        status = main(argv)
        out = capsys.readouterr()
        assert status == 0, f"exit status {status}: {out.err.strip()[-2000:]}"
        return "ran" + (" (quick form)" if key in QUICK else "")
    _, path = _subparser(build_parser(), argv)
    name = " ".join(path)
    entry = name if name in NOT_RUN else path[0]
    assert entry in NOT_RUN, f"'{key}' is neither run nor given a reason (RUN, QUICK or NOT_RUN of this test)"
    reason = NOT_RUN[entry]
    MET.add(entry)
    if path[0] == "sweep":
        from hardware_in_loop.cli.options import parse_set
        from hardware_in_loop.cli.sweep import _parse_seeds
        from hardware_in_loop.sweep_spec import load_sweep

        load_sweep(ROOT / args.sweep, overrides=parse_set(args.set), seeds=_parse_seeds(args.seeds))
    return f"parsed: {reason}"


class _Parsed(Exception):
    """Raised by the intercepted ``parse_known_args`` once a script's command line has parsed."""


def _script(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``python SCRIPT ARGS`` up to its argument parsing (its own parser), not further."""
    script = argv[0]
    reason = next((why for prefix, why in NOT_RUN_SCRIPTS.items() if script.startswith(prefix)), None)
    assert reason, f"python {script}: neither run nor given a reason (NOT_RUN_SCRIPTS of this test)"
    assert (ROOT / script).is_file(), f"{script} does not exist"
    _check_repo_paths(argv[1:])
    original = argparse.ArgumentParser.parse_known_args
    depth = [0]

    def intercept(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        depth[0] += 1
        try:
            parsed = original(self, args, namespace)
        finally:
            depth[0] -= 1
        if depth[0] == 0:
            _check_exact_options(self, argv[1:], f"python {script}")
            raise _Parsed(parsed)
        return parsed

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_known_args", intercept)
        m.setattr(sys, "argv", [str(ROOT / script), *argv[1:]])
        m.setattr(sys, "path", [str((ROOT / script).parent), *sys.path])  # as `python SCRIPT` has it
        try:
            runpy.run_path(str(ROOT / script), run_name="__main__")
        except _Parsed as done:
            _, extra = done.args[0]
            assert not extra, f"python {script}: unrecognised arguments {extra}"
            return f"parsed by its own parser: {reason}"
        except SystemExit:
            error = capsys.readouterr().err.strip().splitlines()[-1:]
            raise AssertionError(f"python {shlex.join(argv)}: {error}") from None
    raise AssertionError(f"python {script} never parsed its arguments")


def _make(argv: list[str]) -> str:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w.-]+):", makefile, re.M))
    for word in argv:
        if "=" in word:
            variable = word.split("=")[0]
            assert re.search(rf"\b{variable}\b", makefile), f"make {word}: the Makefile has no {variable}"
        else:
            assert word in targets, f"make {word}: no such target"
    return OTHER["make"]


def _pytest(argv: list[str], markers: list[str]) -> str:
    names = {m.split(":")[0] for m in markers}
    for before, word in zip(["", *argv], argv):
        if before == "-m":
            assert word.replace("not ", "") in names, f"pytest -m {word}: no such marker"
        elif word.startswith("tests/"):
            assert (ROOT / word.split("::")[0]).exists(), f"{word} does not exist"
    return OTHER["pytest"]


def account(command: str, workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            markers: list[str]) -> str:
    """What the test did with one command of the manual (raises AssertionError when it fails)."""
    words = shlex.split(command, comments=True)
    while re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VAR=value before a command
        monkeypatch.setenv(*words.pop(0).split("=", 1))
    program = words[0].removeprefix(".venv/bin/")  # the project's virtual environment's programs
    if program == "pcmsim" and any(word.startswith("[") for word in words):
        return _synopsis(command, capsys)
    if program == "pcmsim":
        return _pcmsim(words[1:], workdir, capsys)
    if program == "python" and words[1:3] == ["-m", "hardware_in_loop.cli"]:
        return _pcmsim(words[3:], workdir, capsys)
    if program.endswith("python") and words[1:3] == ["-m", "pytest"]:
        return _pytest(words[3:], markers)
    if program == "python" and words[1].endswith(".py"):
        return _script(words[1:], monkeypatch, capsys)
    if program == "make":
        return _make(words[1:])
    if program == "bash":
        assert (ROOT / words[1]).is_file(), f"{words[1]} does not exist"
    assert program in OTHER, f"'{program}' is an unknown program: run it, parse it or list it in OTHER"
    return OTHER[program]


def test_every_shell_block_of_the_manual_runs_or_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str],
                                                        pytestconfig: pytest.Config) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    blocks = shell_blocks()
    assert len(blocks) >= 15
    ledger, failures = [], []
    for where, block in blocks:
        assert block, f"{where}: a shell block without a command"
        for command in block:
            try:
                start = time.perf_counter()
                outcome = account(command, tmp_path, monkeypatch, capsys, pytestconfig.getini("markers"))
                outcome += f" [{time.perf_counter() - start:.2f} s]"
                ledger.append(f"{where}: {shlex.join(shlex.split(command, comments=True))} → {outcome}")
            except Exception as exc:  # noqa: BLE001 - every command's failure is reported, not the first
                failures.append(f"{where}: {command.strip()}\n    {exc}")
    print("\n".join(ledger))
    assert not failures, "\n".join(failures)
    unmet = (RUN | set(QUICK) | set(NOT_RUN)) - MET
    assert not unmet, f"entries of RUN/QUICK/NOT_RUN that no page needs any more: {sorted(unmet)}"


def test_inline_commands_of_the_manual_name_real_options(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Commands quoted in the text (`pcmsim sweep ... --workers 2`, `python bench/x.py --epochs 3`): every
    option of a pcmsim command exists on that command, and a script's command line parses with its parser."""
    from hardware_in_loop.cli import build_parser

    failures, seen = [], 0
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S).replace("\n", " ")
        for span in re.findall(r"`((?:pcmsim|python) [^`]+)`", text):
            try:
                words = shlex.split(span)
                if words[0] == "pcmsim":
                    _check_exact_options(_subparser(build_parser(), words[1:])[0], words[1:], span)
                elif re.match(r"(bench|docs)/\w+\.py$", words[1]):
                    _script(words[1:], monkeypatch, capsys)
                else:
                    continue
                seen += 1
            except Exception as exc:  # noqa: BLE001 - every span's failure is reported
                failures.append(f"{page.relative_to(ROOT)}: `{span}`: {exc}")
    assert not failures, "\n".join(failures)
    assert seen >= 20
