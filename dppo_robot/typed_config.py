"""Strict loading of typed dataclass configs from YAML.

Unknown or misspelled keys, wrong types, non-finite numbers (`.nan`, `.inf` in a float field:
no config value is meaningful as NaN, and "no limit" is spelled null), YAML aliases and failed
validation are errors that name the file and the dotted field path (with a did-you-mean
suggestion for misspellings). Dataclasses may define `validate(self)` raising ValueError; it
runs after loading.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config that cannot be loaded; the message names the source and the field."""


_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in (8x faster)


def safe_load_yaml(text: str, source: str) -> Any:
    """yaml.safe_load without aliases; any YAML error is a one-line ConfigError naming source and line.

    Aliases (`*name`) are refused before anything is built: an alias bomb expands exponentially.
    """
    try:
        for event in yaml.parse(text, Loader=_SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = f" (line {event.start_mark.line + 1})" if event.start_mark is not None else ""
                raise ConfigError(
                    f"{source}: invalid YAML{line}: aliases (*{event.anchor}) are not accepted: write the value out"
                )
        return yaml.load(text, Loader=_SafeLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}: invalid YAML{line}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: nested too deeply") from None


@functools.cache
def _fields_of(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    """Resolved type hints and init fields of a dataclass (cached: get_type_hints is slow)."""
    return get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls) if f.init}


def _printable(text: str) -> str:
    """text on one line: control characters (a newline in a key) escaped."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _where(source: str, path: str) -> str:
    return f"{source}: field '{_printable(path)}'" if path else source


_PRIMITIVES = (str, int, float, bool)


_ORIGIN_ARGS: dict[int, tuple[Any, Any, tuple[Any, ...]]] = {}  # id(tp) -> (tp, origin, args)


def _origin_args(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """get_origin / get_args, cached by identity (hashing typing objects costs more than the call)."""
    hit = _ORIGIN_ARGS.get(id(tp))
    if hit is None or hit[0] is not tp:
        hit = _ORIGIN_ARGS[id(tp)] = (tp, get_origin(tp), get_args(tp))
    return hit[1], hit[2]


def _convert(tp: Any, value: Any, source: str, path: str) -> Any:
    if tp in _PRIMITIVES and type(value) is tp:  # fast path: the common, already-right case
        if tp is float and not math.isfinite(value):
            raise ConfigError(f"{_where(source, path)}: must be a finite number, got {value!r}")
        return value
    if tp is Any:
        return value
    origin, targs = _origin_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = targs
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{_where(source, path)}: must not be null")
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, source, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{_where(source, path)}: {value!r} matches none of {tp}")
    if origin is typing.Literal:
        if value not in targs:
            choices = ", ".join(repr(a) for a in targs)
            raise ConfigError(f"{_where(source, path)}: {value!r} is not one of {choices}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source, path)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{_where(source, path)}: expected a list, got {type(value).__name__} {value!r}")
        args = targs
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{_where(source, path)}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, source, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        if (
            item in _PRIMITIVES
            and all(type(v) is item for v in value)
            and (item is not float or all(map(math.isfinite, value)))
        ):
            return tuple(value) if origin is tuple else list(value)
        out = [_convert(item, v, source, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(source, path)}: expected a mapping, got {type(value).__name__}")
        args = targs
        vt = args[1] if args else Any
        return {str(k): _convert(vt, v, source, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{_where(source, path)}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{_where(source, path)}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{_where(source, path)}: expected a number, got {value!r}")
        try:
            out = float(value)
        except OverflowError:
            raise ConfigError(f"{_where(source, path)}: number {value} is too large") from None
        if not math.isfinite(out):
            raise ConfigError(f"{_where(source, path)}: must be a finite number, got {value!r}")
        return out
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{_where(source, path)}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{_where(source, path)}: expected a path string, got {value!r}")
        return Path(value)
    raise ConfigError(f"{_where(source, path)}: unsupported field type {tp}")


def from_dict(cls: type[T], data: Any, source: str = "<config>", path: str = "") -> T:
    """Build dataclass `cls` from a mapping, strictly; errors name source and field path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{_where(source, path)}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    hints, fields = _fields_of(cls)
    for key in data:
        if key not in fields:
            hint = difflib.get_close_matches(str(key), list(fields), n=1)
            sug = f"; did you mean '{hint[0]}'?" if hint else f"; known fields: {', '.join(fields)}"
            full = f"{path}.{key}" if path else str(key)
            raise ConfigError(f"{source}: unknown field '{_printable(full)}'{sug}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            value, tp = data[name], hints[name]
            if type(value) is tp and tp in _PRIMITIVES and (tp is not float or math.isfinite(value)):
                kwargs[name] = value  # fast path (most fields of a trial record): no path string built
            else:
                kwargs[name] = _convert(tp, value, source, f"{path}.{name}" if path else name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required field '{_printable(f'{path}.{name}' if path else name)}'")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError:
            raise
        except ValueError as e:
            raise ConfigError(f"{_where(source, path) if path else source}: {e}") from None
    return obj


def load_yaml(cls: type[T], path: str | Path) -> T:
    """Load a dataclass config from a YAML file, strictly."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return from_dict(cls, safe_load_yaml(text, str(path)), str(path))


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain YAML-safe data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj
