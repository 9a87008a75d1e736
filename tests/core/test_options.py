"""Per-call options: one declaration, one validation (seqlab.core.options)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from seqlab.core.errors import ConfigError, InputError
from seqlab.core.options import (
    MAX_BEAM_SIZE, MAX_DECODE_LENGTH, Option, Options, check_batch_size, check_cap, parse_options,
)


@dataclass
class _Generation:
    max_tokens: int = 30


@dataclass
class _Config:
    beam_size: int = 5
    generation: _Generation = field(default_factory=_Generation)


TABLE = {
    "beam_size": Option(int, doc="beam", low=1, high=MAX_BEAM_SIZE, from_config="beam_size"),
    "max_tokens": Option(int, doc="length", low=1, high=MAX_DECODE_LENGTH, from_config="generation.max_tokens"),
    "temperature": Option(float, 1.0, "temperature"),
    "top_k": Option(int, None, "top k", low=1, nullable=True),
    "decoder": Option(str, "greedy", "search", choices=("greedy", "beam")),
    "timings": Option(bool, False, "timings"),
    "sample_rate": Option(object, doc="rate of array input", column=True),
}


def test_defaults_come_from_the_option_or_the_config():
    opts = parse_options(TABLE, {}, _Config(beam_size=3))
    assert dict(opts) == {"beam_size": 3, "max_tokens": 30, "temperature": 1.0, "top_k": None, "decoder": "greedy",
                          "timings": False, "sample_rate": None}
    assert opts.beam_size == 3 and opts["max_tokens"] == 30
    with pytest.raises(AttributeError, match="no option 'beam'"):
        opts.beam


def test_values_are_typed():
    opts = parse_options(TABLE, {"beam_size": np.int64(4), "max_tokens": 7.0, "temperature": 2, "timings": np.bool_(True)},
                         _Config())
    assert (opts.beam_size, opts.max_tokens, opts.temperature, opts.timings) == (4, 7, 2.0, True)
    assert type(opts.beam_size) is int and type(opts.temperature) is float and type(opts.timings) is bool


@pytest.mark.parametrize("given, message", [
    ({"beam_sise": 2}, r"unknown option 'beam_sise' \(did you mean 'beam_size'\?\); valid options: beam_size, max_tokens, "
                       r"temperature, top_k, decoder, timings, sample_rate, batch_size"),
    ({"beam_size": 0}, r"option beam_size=0 is out of range; give an integer in \[1, 256\]"),
    ({"beam_size": 257}, r"beam_size=257 is out of range"),
    ({"beam_size": 2.5}, r"beam_size=2.5 is not an integer"),
    ({"beam_size": True}, r"beam_size=True is not an integer"),
    ({"beam_size": "3"}, r"beam_size='3' is not an integer"),
    ({"max_tokens": 10**9}, r"max_tokens=1000000000 is out of range; give an integer in \[1, 10,000\]"),
    ({"temperature": float("nan")}, r"temperature=nan is not finite"),
    ({"temperature": "hot"}, r"temperature='hot' is not a number"),
    ({"top_k": 0}, r"top_k=0 is out of range; give an integer >= 1 or None"),
    ({"decoder": "beem"}, r"decoder='beem' is not one of 'greedy', 'beam' \(did you mean 'beam'\?\)"),
    ({"timings": 1}, r"timings=1 is not true or false"),
    ({"beam_size": None}, r"option beam_size=None is not allowed"),
])
def test_bad_options_are_input_errors_naming_them(given, message):
    with pytest.raises(InputError, match=message):
        parse_options(TABLE, given, _Config())


def test_nullable_and_column_options():
    assert parse_options(TABLE, {"top_k": None}, _Config()).top_k is None
    # A column option may hold one value per input (checked by the stage that reads it).
    assert parse_options(TABLE, {"sample_rate": [8000, "16k"]}, _Config(), rows=2).sample_rate == [8000, "16k"]
    assert parse_options(TABLE, {"sample_rate": 8000}, _Config(), rows=2).sample_rate == 8000


@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, True, False, "8", None, np.float32(4)])
def test_batch_size_is_a_positive_integer(bad):
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        check_batch_size(bad)


def test_batch_size_accepts_integers():
    assert check_batch_size(8) == 8 and check_batch_size(np.int32(3)) == 3


def test_caps_for_configs():
    check_cap("model", "beam_size", MAX_BEAM_SIZE, MAX_BEAM_SIZE)
    with pytest.raises(ConfigError, match=r"model.beam_size=257 is above the limit of 256 \(see docs/errors.md"):
        check_cap("model", "beam_size", 257, MAX_BEAM_SIZE)


def test_options_mapping_repr():
    assert repr(Options({"a": 1})) == "Options({'a': 1})" and len(Options({"a": 1, "b": 2})) == 2
