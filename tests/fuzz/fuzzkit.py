"""What every fuzz test shares: the hypothesis settings, the input strategies and the verdict.

The rule the suite enforces: a stage or pipeline given bad input either works or raises one
of the documented ``seqlab.core.errors`` types whose message names the input (its row /
example / sentence index, its value or its file). Anything else — a ``TypeError`` from deep
inside numpy, a ``RuntimeError`` from torch's allocator, a message that does not say which
row was wrong — is a bug.

Bugs the suite has found and that are not fixed yet are listed in ``KNOWN_BUGS``: each has a
pinned test (``xfail(strict=True)``, in ``test_known_bugs.py``) with its minimal input, and
the fuzz tests recognise it (by exception type and where it was raised) so the suite stays
green while the bug stays visible. When a bug is fixed its pinned test starts to pass, strict
xfail turns that into a failure, and the entry here is removed.
"""
from __future__ import annotations

import dataclasses
import os
import re
import traceback
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

from seqlab.core.errors import (
    ConfigError, DataError, DeviceError, InputError, ModelFileError, NotFittedError, TrainingError, WiringError,
)

#: The documented exception types (docs/errors.md); ``TagSequenceError`` is a ``DataError``.
DOCUMENTED = (ConfigError, WiringError, DataError, InputError, ModelFileError, NotFittedError, DeviceError, TrainingError)


# -- settings --------------------------------------------------------------------------------
def fuzz_settings(scale: float = 1.0, **overrides: Any) -> settings:
    """The active profile (``$HYPOTHESIS_PROFILE``, default ``ci``) with its example count scaled."""
    name = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    try:
        base = settings.get_profile(name)
    except Exception:  # noqa: BLE001 - a profile registered elsewhere or a typo: fall back to ci
        base = settings.get_profile("ci")
    return settings(base, max_examples=max(3, int(base.max_examples * scale)), **overrides)


# -- known, unfixed bugs -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class KnownBug:
    """An unexplained failure already reported: matched by exception type and where it is raised
    (``"path/file.py:function"`` of any traceback frame) or by a message pattern."""

    summary: str
    types: tuple[type[BaseException], ...]
    where: str = ""
    message: str = ""

    def matches(self, err: BaseException) -> bool:
        if not isinstance(err, self.types):
            return False
        if self.message and not re.search(self.message, str(err)):
            return False
        if self.where:
            frames = traceback.extract_tb(err.__traceback__)
            return any(f"{f.filename}:{f.name}".endswith(self.where) or self.where in f"{f.filename}:{f.name}" for f in frames)
        return True


KNOWN_BUGS: dict[str, KnownBug] = {
    # none open: the bugs found so far are fixed and kept as regression tests in test_known_bugs.py
}


def _frames(err: BaseException, last: int = 4) -> str:
    frames = traceback.extract_tb(err.__traceback__)[-last:]
    return " <- ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))


def row_pattern(index: int) -> str:
    """A regex for the phrases seqlab uses to name row ``index`` of a batch."""
    return rf"(\b(row|example|input|sentence|clip|item|prompt)s? {index}\b)|\[{index}\]"


def check_explained(err: BaseException, *, index: int | None = None, names: Iterable[str] = (),
                    known: Sequence[str] = ()) -> str | None:
    """Fail unless ``err`` is a documented seqlab error whose message names the input.

    ``index``: the row the bad value was put at (the message must name it); ``names``: other
    acceptable names (a value's repr, a file path). With neither, only the type is checked.
    Returns the id of the known bug it matched, else None.
    """
    for bug in known:
        if KNOWN_BUGS[bug].matches(err):
            return bug
    if not isinstance(err, DOCUMENTED):
        pytest.fail(f"unexplained crash {type(err).__name__}: {str(err)[:300]}\n  at {_frames(err)}", pytrace=False)
    message = str(err)
    names = [n for n in names if n]
    if index is None and not names:
        return None
    if index is not None and re.search(row_pattern(index), message):
        return None
    if any(n in message for n in names):
        return None
    wanted = ([f"row/example/input/sentence {index}"] if index is not None else []) + [repr(n)[:40] for n in names]
    pytest.fail(f"{type(err).__name__} does not name the input (expected {' or '.join(wanted)}): {message[:300]}\n"
                f"  at {_frames(err)}", pytrace=False)


def call(fn, *args: Any, **kwargs: Any) -> tuple[Any, BaseException | None]:
    """``(result, None)`` or ``(None, the exception)``; never swallows KeyboardInterrupt."""
    try:
        return fn(*args, **kwargs), None
    except Exception as err:  # noqa: BLE001 - judged by check_explained
        return None, err


# -- text ----------------------------------------------------------------------------------
SPECIAL_TEXTS = [
    "", " ", "\t\n\r\x0b\x0c", "\x00", "a\x00b", "\x1b[31mred\x1b[0m", "\x7f", "\ufeff", "\u200b", "\u200d",
    "\u202eevil RTL override", "שלום עולם", "مرحبا بالعالم\u200f", "中文字符", "日本語のテキスト", "한국어",
    "👩\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "👍🏽", "e\u0301", "Z" + "\u0301\u0316\u0337" * 60, "\u0085", "\u2028",
    "\u2029", "\uffff", "\U0010ffff", "\U000e0001", "İstanbul", "Straße", "ﬁne", "Ⅻ ①② ０１２ ٣", "...", "'", "-",
    "- -", "a-", "'s", "1,000.5", "3.14", "$%^&*", "\\", "\\n", "\\e", "<unk>", "<pad> <bos> <eos>", "▁", "▁▁a",
    "Angela Merkel visited Paris.", "the cat sat on the mat",
]
#: Long inputs, tried once each (not drawn at random: they would dominate the run time).
HUGE_TEXTS = {
    "100k_chars": "a" * 100_000,
    "20k_words": "word " * 20_000,
    "50k_emoji": "😀" * 50_000,
    "50k_combining": "e\u0301" * 50_000,
    "100k_rtl_marks": "\u202e" * 99_999 + "x",
    "50k_lines": "x\n" * 50_000,
}
_WORDS = ["the", "cat", "Paris", "Merkel", "a", "1984", ".", ",", "😀", "\u0301", "\u202e", "\x00", "\t", " ", "ß", "中"]

#: Arbitrary Unicode without surrogates (they cannot be encoded, so no text file holds them).
any_char = st.characters(exclude_categories=("Cs",))
texts = st.one_of(
    st.sampled_from(SPECIAL_TEXTS),
    st.text(any_char, max_size=40),
    st.text(st.characters(categories=("Cc", "Cf", "Mn", "Me", "Zs", "Zl", "Zp", "So")), max_size=12),
    st.lists(st.sampled_from(_WORDS + SPECIAL_TEXTS[:20]), max_size=12).map(" ".join),
    st.lists(st.sampled_from(_WORDS), max_size=12).map("".join),
)
#: Values that are not text.
non_texts = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.binary(max_size=6), st.complex_numbers(max_magnitude=5),
    st.lists(st.integers(0, 5), max_size=3), st.lists(st.text(max_size=3), min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.tuples(st.text(max_size=3)),
    st.just(np.array(["a", "b"])), st.just(np.float32(1.5)), st.just(object()),
)
tokens = st.lists(texts, max_size=10)
#: Token lists with a non-string somewhere (or not a list at all).
bad_token_lists = st.one_of(
    non_texts.filter(lambda v: not isinstance(v, (list, tuple))),
    st.text(max_size=5),
    st.tuples(st.lists(texts, max_size=3), non_texts.filter(lambda v: not isinstance(v, str))).map(lambda p: [*p[0], p[1]]),
)


# -- tags ----------------------------------------------------------------------------------
_PREFIXES = ["B", "I", "E", "S", "L", "U", "O", "b", "i", "", "X", "BI", "B-I"]
_TYPES = ["PER", "LOC", "ORG", "MISC", "per", "😀", "a-b", "PER PER", "", " ", "x\n", "\u202e", "0"]
raw_tags = st.one_of(
    st.sampled_from(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-PER", "S-LOC", "L-ORG", "U-MISC", "B-", "I-", "-",
                     "", "X", "o", "B_PER", "B-PER-X", "I-PER I-PER", "O-PER", "B--", "\x00"]),
    st.builds(lambda p, t: f"{p}-{t}", st.sampled_from(_PREFIXES), st.sampled_from(_TYPES)),
    st.text(any_char, max_size=6),
    non_texts.filter(lambda v: not isinstance(v, str)),
)
tag_sequences = st.lists(raw_tags, max_size=8)


@st.composite
def iob2_sequences(draw, types: Sequence[str] = ("PER", "LOC", "ORG"), max_len: int = 12) -> list[str]:
    """Valid IOB2 tag sequences (random disjoint spans)."""
    n = draw(st.integers(0, max_len))
    tags, i = ["O"] * n, 0
    while i < n:
        if draw(st.booleans()):
            kind, length = draw(st.sampled_from(list(types))), draw(st.integers(1, 3))
            for j in range(i, min(n, i + length)):
                tags[j] = ("B-" if j == i else "I-") + kind
            i += length
        else:
            i += 1
    return tags


# -- audio ---------------------------------------------------------------------------------
_SPECIAL_SAMPLES = [np.nan, np.inf, -np.inf, 1e38, -1e38, 3.4e38, 1e-45, -0.0, 1.0, -1.0, 2.0, 32767.0]


@st.composite
def audio_values(draw, max_len: int = 4000) -> Any:
    """Anything a user might hand an audio stage as one clip: arrays of every dtype and shape,
    with NaN/inf/huge/denormal samples, silence, lists, tensors, None, paths, bytes."""
    import torch

    kind = draw(st.sampled_from([
        "float32", "float32", "float32", "special", "silence", "float64", "float16", "int8", "int16", "int32",
        "uint8", "int64", "uint16", "complex", "bool", "object", "stereo_cf", "stereo_fc", "mono_2d", "3d",
        "scalar", "list", "ragged", "tensor", "tensor_bf16", "tensor_int", "none", "path", "bytes", "string",
    ]))
    n = draw(st.sampled_from([0, 1, 2, 3, 159, 160, 161, 511, 512, 513, 1600]) | st.integers(0, max_len))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = (rng.standard_normal(n) * draw(st.sampled_from([1e-6, 0.1, 0.5, 1.0, 4.0]))).astype(np.float32)
    if kind == "special":
        if n:
            for _ in range(draw(st.integers(1, 3))):
                x[draw(st.integers(0, n - 1))] = draw(st.sampled_from(_SPECIAL_SAMPLES))
        return x
    if kind == "silence":
        return np.zeros(n, np.float32)
    if kind in ("float64", "float16"):
        return x.astype(kind)
    if kind in ("int8", "int16", "int32", "uint8", "int64", "uint16"):
        info = np.iinfo(kind)
        return rng.integers(info.min, info.max, size=n, dtype=kind, endpoint=True)
    if kind == "complex":
        return x + 1j * x
    if kind == "bool":
        return x > 0
    if kind == "object":
        return np.array([0.1, None, "a"][: max(1, min(n, 3))], dtype=object)
    if kind == "stereo_cf":
        return np.stack([x, -x])
    if kind == "stereo_fc":
        return np.stack([x, x], axis=1)
    if kind == "mono_2d":
        return x[None, :] if draw(st.booleans()) else x[:, None]
    if kind == "3d":
        return np.zeros((2, 2, n), np.float32)
    if kind == "scalar":
        return np.float32(0.5) if draw(st.booleans()) else np.array(0.5)
    if kind == "list":
        return [float(v) for v in x[:64]]
    if kind == "ragged":
        return [[0.1, 0.2], [0.3]]
    if kind == "tensor":
        return torch.from_numpy(x)
    if kind == "tensor_bf16":
        return torch.from_numpy(x).to(torch.bfloat16)
    if kind == "tensor_int":
        return torch.from_numpy(x).to(torch.int64)
    if kind == "none":
        return None
    if kind == "path":
        return draw(st.sampled_from(["/nonexistent/clip.wav", "relative/missing.flac", "/", "/etc/hostname", ""]))
    if kind == "bytes":
        return draw(st.sampled_from([b"", b"RIFF\x00\x00\x00\x00WAVE", b"\x00" * 64, b"not audio"]))
    return draw(texts)


def is_good_clip(value: Any) -> bool:
    """True when ``value`` is a clip seqlab must accept (non-empty, finite, a readable dtype, ≤ 2-D)."""
    import torch

    from seqlab.audio.signal import MAX_SAMPLE

    if isinstance(value, torch.Tensor):
        if value.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            return False
        value = value.float().numpy()
    if isinstance(value, list):
        value = np.asarray(value, dtype=np.float64)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu" or value.ndim not in (1, 2):
        return False
    if value.dtype.kind in "iu" and value.dtype not in (np.int8, np.int16, np.int32, np.uint8):
        return False
    as_float = value.astype(np.float64)
    return value.size > 0 and min(value.shape) > 0 and bool(np.isfinite(as_float).all()) and (
        value.dtype.kind != "f" or bool(np.abs(as_float).max() <= MAX_SAMPLE))


#: Sample rates: valid, absurd and of the wrong type, including rates that share only a small
#: factor with 16 kHz (16001, 44101, 7919 Hz) or are huge (10**12), which need FFT resampling.
sample_rates = st.one_of(
    st.sampled_from([16000, 16000, 8000, 11025, 22050, 44100, 48000, 96000, 192000, 1_000_000, 7, 1, 0, -1, -16000,
                     16001, 44101, 7919, 10**12]),
    st.integers(20, 2000).map(lambda k: 100 * k),
    st.sampled_from([8000.5, 16000.0, float("nan"), float("inf"), -float("inf"), "x", "16000", None, True, [16000], b"8000"]),
)
