"""MkDocs hooks: pages generated from the code, so that they cannot drift from it.

- ``reference/configs.md``: every field of every task's config, from the typed configs' own metadata
  (valid values, defaults; :func:`pcmsim.typedconfig.help_lines`) and their docstrings;
- ``reference/devices.md``: a section per registered device model with every parameter, its default
  and the meaning, unit and source written beside it in the model's file;
- ``reference/schemes.md``: the update schemes and their typed options;
- ``api.md``: the curated public API (``__all__`` of the three packages) through mkdocstrings.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

from mkdocs.structure.files import File, Files


def _comments(cls: type) -> dict[str, str]:
    """``field → the comment written beside it`` in the class body (and its bases')."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for line in source.splitlines():
            m = re.match(r"\s+(\w+)\s*:[^=#]+(?:=[^#]*)?#\s*(.+)$", line)
            if m:
                out[m.group(1)] = m.group(2).strip()
    return out


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__ or "").split("\n\n")[0].replace("\n", " ")


def _fields_table(cls: type, column: str) -> list[str]:
    """A Markdown table of a typed config's fields (:func:`pcmsim.typedconfig.help_lines`): path, valid values
    and default."""
    from pcmsim.typedconfig import help_lines

    rows = [f"| {column} | valid values (default) |", "|---|---|"]
    for entry in help_lines(cls):
        field, _, rest = entry.partition(": ")
        rows.append(f"| `{field}` | {_cell(rest)} |")
    return rows


def configs_page() -> str:
    from hardware_in_loop.tasks import TASKS

    lines = ["# Configs", "",
             "Generated from the typed configs (`hardware_in_loop.tasks`): every field with its valid values "
             "and default. A config file is a JSON object of these fields; `--set PATH=VALUE` takes the same "
             "paths. Unknown fields, wrong types and bad values are refused in one line naming the field.", ""]
    for name, task in TASKS.items():
        cls = task.config_class
        lines += [f"## Task `{name}`: `{cls.__name__}`", "", _doc(cls), "", *_fields_table(cls, "field"), ""]
    return "\n".join(lines) + "\n"


def devices_page() -> str:
    import device_models
    from device_models.registry import _REGISTRY

    lines = ["# Device models", "",
             "Generated from the registry (`device_models.available()`): a section per model with each "
             "parameter's default, its valid values (the field's own check, `device_models.checks.param`) and the "
             "meaning, unit and source written beside it in the model's file. "
             "`device_models.get(name, **overrides)` builds one; a fitted model's JSON file loads the same way.", ""]
    for name in device_models.available():
        cls = _REGISTRY[name]
        model = device_models.get(name)
        params = type(model.params)
        notes = _comments(params)
        lines += [f"## `{name}`", "", _doc(cls), "", f"Module: `{cls.__module__}`; parameters: `{params.__name__}`.",
                  "", "| parameter | default | valid | meaning, unit and source |", "|---|---|---|---|"]
        for f in dataclasses.fields(params):
            valid = f.metadata.get("expected", "")
            lines.append(f"| `{f.name}` | `{_cell(getattr(model.params, f.name))}` | {_cell(valid)} | "
                         f"{_cell(notes.get(f.name, ''))} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def schemes_page() -> str:
    from hardware_in_loop.schemes import available_schemes, scheme_params

    lines = ["# Update schemes", "",
             "Generated from the scheme registry (`hardware_in_loop.available_schemes()`): how a digital "
             "ΔW becomes pulses, and each scheme's typed options (the config's `scheme_params`).", ""]
    for name in available_schemes():
        params = scheme_params(name, {})
        lines += [f"## `{name}`", "", _doc(type(params)), "", *_fields_table(type(params), "option"), ""]
    return "\n".join(lines) + "\n"


def api_page() -> str:
    import device_models
    import hardware_in_loop
    import pcmsim

    lines = ["# API reference", "",
             "The curated public names of the three packages (their `__all__`), generated from the docstrings.", ""]
    for module in (pcmsim, hardware_in_loop, device_models):
        lines += [f"## `{module.__name__}`", ""]
        for name in module.__all__:
            obj = getattr(module, name)
            if name.startswith("__") or inspect.ismodule(obj) or not hasattr(obj, "__qualname__"):
                continue
            lines += [f"::: {obj.__module__}.{obj.__qualname__}", "    options:", "      show_root_heading: true",
                      "      heading_level: 3", ""]
    lines += ["## `pcmsim.nir`", "", "::: pcmsim.nir.load", "    options:", "      show_root_heading: true",
              "      heading_level: 3", "", "::: pcmsim.nir.export", "    options:", "      show_root_heading: true",
              "      heading_level: 3", ""]
    return "\n".join(lines) + "\n"


PAGES = {"reference/configs.md": configs_page, "reference/devices.md": devices_page,
         "reference/schemes.md": schemes_page, "api.md": api_page}


def on_files(files: Files, config: Any) -> Files:
    for path, make in PAGES.items():
        files.append(File.generated(config, path, content=make()))
    return files
