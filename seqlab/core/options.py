"""Per-call prediction options: one declaration per task, one validation for every call.

A task declares what ``pipe(x, name=value)`` may set in ``TaskModel.options`` (a dict of
``Option``). ``Pipeline.predict`` validates the keywords once, against that table, before
anything runs: an unknown name is an ``InputError`` that names the valid ones (with a close
match suggested), a value of the wrong type or outside its bounds an ``InputError`` naming
the option. The model's ``decode`` receives an ``Options`` object holding every declared
option (the default for those not given), already typed.

Decoding lengths and beam widths are capped (``MAX_DECODE_LENGTH``, ``MAX_BEAM_SIZE``) in
configs and calls alike, so that no setting makes a prediction run for hours.

>>> table = {"beam_size": Option(int, 5, "beam width", low=1, high=MAX_BEAM_SIZE)}
>>> parse_options(table, {"beam_size": 3}).beam_size
3
>>> parse_options(table, {}).beam_size
5
>>> parse_options(table, {"beam_sise": 3})
Traceback (most recent call last):
...
seqlab.core.errors.InputError: unknown option 'beam_sise' (did you mean 'beam_size'?); valid options: beam_size, batch_size
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import suggest
from .errors import ConfigError, InputError

#: The longest output a decoder may be asked for, in tokens (LM generation, translation).
MAX_DECODE_LENGTH = 10_000
#: The widest beam a decoder may be asked for (translation, speech).
MAX_BEAM_SIZE = 256


@dataclass(frozen=True)
class Option:
    """One per-call option: its type, default, bounds and a one-line description.

    ``type`` is ``bool``, ``int``, ``float``, ``str``, or ``object`` for a ``column`` option
    that the stage reading it validates. ``default`` is used when the call
    does not set the option; ``from_config`` (a dotted attribute path into the model's
    config, e.g. ``"generation.max_tokens"``) takes the default from the model instead.
    ``low``/``high`` bound numbers (inclusive); ``choices`` lists the allowed strings;
    ``nullable`` accepts ``None`` as a value. ``column`` options are data, not decoding
    settings: they are broadcast into a column of that name for the stages (a speech
    clip's ``sample_rate``), and may also be given as one value per input.
    """

    type: type
    default: Any = None
    doc: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    nullable: bool = False
    from_config: str | None = None
    column: bool = False

    def check(self, name: str, value: Any, error: type[Exception] = InputError) -> Any:
        """``value`` typed for this option; ``error`` (InputError for calls, ConfigError for configs) if unfit."""
        if value is None:
            if self.nullable or self.column:
                return None
            raise error(f"option {name}=None is not allowed; give {self.describe()}")
        tp = self.type
        if tp is object:  # data a stage checks itself (a sample rate in any spelling it reads)
            return value
        if tp is bool:
            if _is_bool(value):
                return bool(value)
            raise error(f"option {name}={value!r:.60} is not true or false")
        if tp is int:
            if _is_bool(value) or not _is_integral(value):
                raise error(f"option {name}={value!r:.60} is not an integer; give {self.describe()}")
            value = int(value)
        elif tp is float:
            if _is_bool(value) or not isinstance(value, (int, float)) and not _is_numpy_number(value):
                raise error(f"option {name}={value!r:.60} is not a number; give {self.describe()}")
            value = float(value)
            if not math.isfinite(value):
                raise error(f"option {name}={value!r} is not finite; give {self.describe()}")
        elif tp is str:
            if not isinstance(value, str):
                raise error(f"option {name}={value!r:.60} is not a string; give {self.describe()}")
            if self.choices is not None and value not in self.choices:
                raise error(f"option {name}={value!r:.60} is not one of {', '.join(map(repr, self.choices))}"
                            f"{suggest(value, list(self.choices))}")
            return value
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise error(f"option {name}={value!r} is out of range; give {self.describe()}")
        return value

    def describe(self) -> str:
        kind = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(self.type, self.type.__name__)
        if self.low is not None and self.high is not None:
            kind += f" in [{_num(self.low)}, {_num(self.high)}]"
        elif self.low is not None:
            kind += f" >= {_num(self.low)}"
        elif self.high is not None:
            kind += f" <= {_num(self.high)}"
        if self.nullable:
            kind += " or None"
        return kind


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else str(x)


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_numpy_number(value: Any) -> bool:
    return isinstance(value, (np.integer, np.floating))


def _is_integral(value: Any) -> bool:
    if isinstance(value, int):
        return True
    if _is_numpy_number(value):
        value = value.item()
        if isinstance(value, int):
            return True
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


class Options(Mapping):
    """The validated options of one call: every declared option, by name and as an attribute.

    >>> opts = Options({"beam_size": 4})
    >>> opts.beam_size, opts["beam_size"], dict(opts)
    (4, 4, {'beam_size': 4})
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(f"no option {name!r}; options: {', '.join(self.__dict__.get('_values', ()))}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Options({self._values!r})"


def _config_value(config: Any, path: str) -> Any:
    value = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def parse_options(table: Mapping[str, Option], given: Mapping[str, Any], config: Any = None,
                  reserved: tuple[str, ...] = ("batch_size",), rows: int | None = None) -> Options:
    """Validate ``given`` against ``table``; every declared option comes back (defaults filled in).

    ``reserved`` names the Pipeline's own keywords, listed among the valid ones in errors.
    A ``column`` option may be a list of ``rows`` values (one per input), each checked.
    """
    valid = [*table, *reserved]
    for name in given:
        if name not in table:
            raise InputError(f"unknown option {name!r}{suggest(str(name), valid)}; valid options: {', '.join(valid)}")
    values: dict[str, Any] = {}
    for name, option in table.items():
        if name in given:
            value = given[name]
            if option.column and isinstance(value, (list, tuple)) and rows is not None and len(value) == rows:
                values[name] = [option.check(name, v) for v in value]
            else:
                values[name] = option.check(name, value)
        elif option.from_config is not None and config is not None:
            values[name] = _config_value(config, option.from_config)
        else:
            values[name] = option.default
    return Options(values)


def check_batch_size(batch_size: Any) -> int:
    """A prediction batch size: a positive integer (a bool or a float is refused)."""
    if _is_bool(batch_size) or not isinstance(batch_size, int) and not (_is_numpy_number(batch_size) and batch_size.dtype.kind in "iu"):
        raise InputError(f"batch_size must be a positive integer, got {type(batch_size).__name__} {batch_size!r:.40}")
    if int(batch_size) < 1:
        raise InputError(f"batch_size must be a positive integer, got {int(batch_size)}")
    return int(batch_size)


def check_cap(where: str, name: str, value: Any, cap: int) -> None:
    """Refuse a config value above a documented cap (``MAX_DECODE_LENGTH``, ``MAX_BEAM_SIZE``) with ConfigError."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > cap:
        raise ConfigError(f"{where}.{name}={value!r} is above the limit of {cap:,} (see docs/errors.md, 'Limits')")
