"""Dataclass configs and YAML recipes.

Every component has one ``@dataclass`` config with working defaults. ``from_dict``
builds it from plain data (a YAML recipe, a saved ``config.json``), and refuses an
unknown key by naming it, where it was, and the valid keys (with a close match
suggested) — a typo must never be silently ignored.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from .errors import ConfigError

T = TypeVar("T")


def suggest(key: str, valid: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``valid`` to ``key``, or ``""``.

    >>> suggest("beam_sise", ["beam_size", "decoder"])
    " (did you mean 'beam_size'?)"
    """
    close = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""



def check_int(value: Any, name: str, where: str, minimum: int = 1) -> int:
    """``value`` if it is an integer (not a bool) of at least ``minimum``, else a ``ConfigError``.

    >>> check_int(3, "num_layers", "encoder")
    3
    >>> check_int(0, "num_layers", "encoder")
    Traceback (most recent call last):
    ...
    seqlab.core.errors.ConfigError: encoder: num_layers must be a positive integer, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ConfigError(f"{where}: {name} must be {wanted}, got {value!r}")
    return value


def check_dropout(value: Any, where: str) -> float:
    """``value`` as a float if it is a dropout probability in [0, 1), else a ``ConfigError``.

    >>> check_dropout(0.5, "encoder"), check_dropout(0, "encoder")
    (0.5, 0.0)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{where}: dropout must be a number in [0, 1), got {value!r}")
    return float(value)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert the harmless cases."""
    if tp is Any or tp is typing.Any:
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} does not fit {tp}")
    if origin is Literal:
        allowed = get_args(tp)
        if isinstance(value, bool) and value not in allowed:
            # YAML 1.1 reads a bare on/off/yes/no as a boolean; take the spelling the option uses.
            spellings = ("on", "yes", "true") if value else ("off", "no", "false")
            value = next((a for a in allowed if isinstance(a, str) and a.lower() in spellings), value)
        if value not in allowed:
            raise ConfigError(
                f"{where}: {value!r} is not one of {', '.join(repr(a) for a in allowed)}"
                + suggest(str(value), [str(a) for a in allowed])
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # YAML reads 1e-3 as a string; accept numeric strings for floats.
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict | None, where: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``, refusing unknown keys and ill-typed values.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Opt:
    ...     lr: float = 0.1
    >>> from_dict(Opt, {"lr": 1})
    Opt(lr=1.0)
    >>> from_dict(Opt, {"lrr": 1})
    Traceback (most recent call last):
    ...
    seqlab.core.errors.ConfigError: config: unknown key 'lrr' (did you mean 'lr'?); valid keys: lr
    """
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            valid = sorted(fields)
            raise ConfigError(
                f"{where}: unknown key {key!r}{suggest(str(key), valid)}; valid keys: {', '.join(valid)}"
            )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{where}: {err}") from None
    check = getattr(obj, "validate", None)
    if callable(check):
        check(where)
    return obj


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain JSON-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=0.01"`` → (["train", "lr"], 0.01); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.epochs=3")
    key, _, raw = text.partition("=")
    if not key.strip():
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text!r}: cannot read the value: {err}") from None
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--set a.b=v`` overrides to nested recipe data (copy on write)."""
    import copy

    data = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    """Read a YAML recipe into a dict, with errors that name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {str(path)!r} is not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"recipe {str(path)!r} is not UTF-8 text: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {str(path)!r}: the top level must be a mapping of sections")
    return data
