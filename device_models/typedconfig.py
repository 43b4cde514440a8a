"""One recursive loader for typed configs: JSON objects into (nested) frozen dataclasses.

A config is a frozen dataclass whose fields carry type hints (``int``, ``float``, ``bool``,
``str``, ``Literal[...]``, ``X | None``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, Any]``,
another dataclass) and, where a value has limits, a check in the field's metadata::

    @dataclass(frozen=True)
    class Net:
        decay: float = field(default=0.8, metadata=check(lambda v: 0 <= v <= 1, "0 ≤ decay ≤ 1"))

:func:`load` refuses unknown keys, wrong types and bad values with one :class:`ConfigError` line
naming the field path, the value and the expectation::

    configs/x.json: field 'network.decay' = -1 is invalid: expected 0 ≤ decay ≤ 1

A field's ``choices`` metadata names a function returning the valid names (a registry), so the
validation, its message and the CLI help read the same list.
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")

__all__ = [
    "ConfigError",
    "at_least",
    "bad_value",
    "check",
    "check_fields",
    "choices",
    "chosen_block",
    "default_of",
    "did_you_mean",
    "dump_sparse",
    "first_line",
    "help_lines",
    "load",
    "loading",
    "non_negative",
    "positive",
    "set_path",
    "sparse",
    "to_json",
    "unresolved",
]


def did_you_mean(name: object, options: Iterable[object]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``options`` to an unknown ``name`` (``difflib``), else
    ``""``: the one suggestion of every registry and config error."""
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class ConfigError(ValueError):
    """An invalid configuration (one line: where, field, value, expectation)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty): what a
    one-line error shows of an underlying error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check(predicate: Callable[[Any], bool], expected: str) -> dict[str, Any]:
    """Field metadata: ``predicate(value)`` must hold; ``expected`` says what is valid."""
    return {"check": predicate, "expected": expected}


def choices(names: Callable[[], Sequence[str]]) -> dict[str, Any]:
    """Field metadata: the value must be one of ``names()`` (a registry's list)."""
    return {"choices": names}


def positive(what: str = "a finite number > 0") -> dict[str, Any]:
    return check(lambda v: v > 0, what)


def non_negative(what: str = "a finite number ≥ 0") -> dict[str, Any]:
    return check(lambda v: v >= 0, what)


def at_least(n: int) -> dict[str, Any]:
    return check(lambda v: v >= n, f"an integer ≥ {n}")


def bad_value(source: str, path: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{source}: field {path!r} = {_show(value)} is invalid: expected {expected}")


def _show(value: Any) -> str:
    """``repr(value)`` up to 80 characters: a longer string keeps its end (a path's file name), anything
    else its start."""
    text = repr(value)
    if len(text) <= 80:
        return text
    return text[0] + "..." + text[-76:] if isinstance(value, str) else text[:77] + "..."


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a finite number"
    if tp is str:
        return "a string"
    if tp is Any:
        return "any value"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        parts = ["null" if a is type(None) else _describe(a) for a in args]
        return " or ".join(parts)
    if origin in (list, tuple, Sequence):
        return f"a list of {_plural(typing.get_args(tp)[0])}"
    if origin is dict:
        return "an object"
    if dataclasses.is_dataclass(tp):
        return "an object"
    return getattr(tp, "__name__", str(tp))


def _plural(tp: Any) -> str:
    d = _describe(tp)
    return d[3:] + "s" if d.startswith("an ") else d[2:] + "s" if d.startswith("a ") else d


def _convert(tp: Any, value: Any, source: str, path: str) -> Any:
    """``value`` as type ``tp``, or a ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, source, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise bad_value(source, path, value, _describe(tp))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad_value(source, path, value, "true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad_value(source, path, value, "an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return value
        raise bad_value(source, path, value, "a finite number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad_value(source, path, value, "a string")
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
        raise bad_value(source, path, value, _describe(tp))
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise bad_value(source, path, value, _describe(tp))
        args = typing.get_args(tp)
        item = args[0] if args else Any
        items = [_convert(item, v, source, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise bad_value(source, path, value, "an object")
        return dict(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return load(tp, value, source=source, path=path)
    raise TypeError(f"typedconfig cannot load a field of type {tp!r} ({path})")


def load(cls: type[T], data: Any, *, source: str = "config", path: str = "",
         base: T | None = None) -> T:
    """Build the dataclass ``cls`` from a JSON object, checking every field recursively.

    Missing fields take their defaults, or ``base``'s values (an instance of ``cls``: a block that a
    file gives over another default, e.g. a task's default network). A dataclass may define
    ``validate(self, source, path)`` for checks across fields (raise :class:`ConfigError` through
    :func:`bad_value`); a ``ValueError`` from its ``__post_init__`` is reported as one line for the
    object's path.
    """
    where = f"{path}." if path else ""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        if path:
            raise bad_value(source, path, data, "an object")
        raise ConfigError(f"{source}: expected a JSON object of fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown field {where + unknown[0]!r}; valid fields: {', '.join(sorted(fields))}"
            + did_you_mean(unknown[0], fields)
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {} if base is None else {
        name: getattr(base, name) for name in fields if name not in data}
    for name, value in data.items():
        f = fields[name]
        fpath = where + name
        loader = f.metadata.get("load")
        try:
            converted = loader(value, source, fpath) if loader else _convert(hints[name], value, source, fpath)
        except ConfigError:
            if loader is None and "expected" in f.metadata:  # the field's own words for a wrong type
                words = str(f.metadata["expected"])
                if typing.get_origin(hints[name]) in (list, tuple, Sequence) and not isinstance(value, (list, tuple)):
                    words += f" as a JSON list, e.g. [{json.dumps(value)}]"
                raise bad_value(source, fpath, value, words) from None
            raise
        refused = _refused(f, converted)
        if refused is not None:
            raise bad_value(source, fpath, value, refused)
        kwargs[name] = converted
    token = _LOADING.set(True)
    try:
        obj = cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: {('field ' + repr(path) + ': ') if path else ''}{first_line(exc)}") from None
    finally:
        _LOADING.reset(token)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(source, path)
    return obj


def _refused(f: dataclasses.Field, value: Any) -> str | None:
    """What field ``f`` expects, if its metadata (choices, check) refuses ``value``; else None."""
    if value is None:
        return None
    names = f.metadata.get("choices")
    if names is not None:
        valid = list(names())
        if value not in valid:
            return "one of " + ", ".join(valid) + did_you_mean(value, valid)
    predicate = f.metadata.get("check")
    if predicate is not None and not predicate(value):
        suggest = f.metadata.get("suggest")
        return str(f.metadata["expected"]) + (did_you_mean(value, suggest()) if suggest is not None else "")
    return None


_LOADING: contextvars.ContextVar[bool] = contextvars.ContextVar("typedconfig_loading", default=False)


def loading() -> bool:
    """Whether :func:`load` is constructing a dataclass now (it has checked the fields and calls
    ``validate(source, path)`` itself, naming the file): ``__post_init__`` checks may skip then."""
    return _LOADING.get()


def check_fields(obj: Any) -> None:
    """Check a constructed dataclass's fields by the same rules as :func:`load` (types, choices,
    checks): for ``__post_init__``, so that the Python API and the config files refuse the same
    values. Raises ``ConfigError`` ``"name=value is invalid: expected …"``."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("load") is None:
            try:
                value = _convert(hints[f.name], value, "", f.name)
            except ConfigError:
                expected = f.metadata.get("expected") or _describe(hints[f.name])
                raise ConfigError(f"{f.name}={_show(value)} is invalid: expected {expected}") from None
        expected = _refused(f, value)
        if expected is not None:
            raise ConfigError(f"{f.name}={_show(value)} is invalid: expected {expected}")


def to_json(obj: Any) -> Any:
    """A dataclass config (nested) as plain JSON data (tuples become lists). A field whose metadata has
    ``dump`` is written as ``dump(obj, value)`` (e.g. :func:`sparse`: what differs from the defaults)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            dump = f.metadata.get("dump")
            out[f.name] = dump(obj, value) if dump is not None else to_json(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    return obj


def default_of(f: dataclasses.Field) -> Any:
    """The default value of field ``f`` (its factory called), or ``dataclasses.MISSING``."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def sparse(obj: Any, base: Any = None) -> dict[str, Any]:
    """The fields of the dataclass ``obj`` that differ from ``base`` (another instance of its class;
    default: the class's defaults), as JSON data; nested dataclasses are written sparse too. Loading
    the result gives ``obj`` back: what a config file holds of a typed block (``crossbar``,
    ``device_params``, ``scheme_params``)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        ref = getattr(base, f.name) if base is not None else default_of(f)
        if ref is not dataclasses.MISSING and _same(value, ref):
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out[f.name] = sparse(value, ref if type(ref) is type(value) else None)
        else:
            out[f.name] = to_json(value)
    return out


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
        and not isinstance(b, bool) and a == b)


def chosen_block(*bases: type, what: str) -> Callable[[Any, str, str], Any]:
    """Field loader (metadata ``load``) of a block whose dataclass another field chooses (a run's
    ``device_params`` by its ``device_model``): an instance of one of ``bases`` as is, else a JSON object
    of ``what``, kept as a ``dict`` for the owner's ``validate`` to type."""

    def load_block(value: Any, source: str, path: str) -> Any:
        if isinstance(value, bases):
            return value
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise bad_value(source, path, value, f"an object of {what}")
        return dict(value)

    return load_block


def unresolved() -> Any:
    """Default factory of a :func:`chosen_block` field: no fields given (typed by the owner's ``validate``)."""
    return {}


def dump_sparse(_parent: Any, value: Any) -> dict[str, Any]:
    """Field metadata ``dump`` (:func:`to_json`): the block as :func:`sparse` data."""
    return sparse(value)


def help_lines(cls: type, prefix: str = "", base: Any = None) -> list[str]:
    """``name: type (default)`` for every field of ``cls``, nested dataclasses expanded (for help text).
    ``base``: an instance whose values are the defaults (a nested block's default, e.g. a task's network)."""
    hints = typing.get_type_hints(cls)
    lines: list[str] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        default = getattr(base, f.name) if base is not None else default_of(f)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            lines += help_lines(tp, f"{prefix}{f.name}.", default if isinstance(default, tp) else None)
            continue
        if default is dataclasses.MISSING:
            default = None
        expected = f.metadata.get("expected")
        names = f.metadata.get("choices")
        what = ("one of " + ", ".join(names())) if names else expected or _describe(tp)
        lines.append(f"{prefix}{f.name}: {what} (default {to_json(default)!r})")
    return lines


def set_path(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with the value at dotted path ``key`` replaced by ``value``."""
    out = copy.deepcopy(data)
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = copy.deepcopy(value)
    return out
