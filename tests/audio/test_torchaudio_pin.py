"""torch and torchaudio are one compiled pair: the extension loads, resampling is right, both are pinned.

torchaudio's C++ libraries are built against one torch release. A different torch fails when
torchaudio is imported, e.g. torchaudio 2.11.1 (which declares ``torch>=2.11``) with torch
2.11.0: ``libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace``.
pyproject.toml pins the pair exactly; these tests load the compiled extension, run a compiled
op and resample a clip, so a broken pair fails here, naming both installed versions, rather
than in the middle of a speech run.
"""
from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def installed_pair() -> str:
    return f"torch {version('torch')} with torchaudio {version('torchaudio')}"


def load_torchaudio():
    """``import torchaudio`` (which loads ``_torchaudio`` and ``libtorchaudio``), or fail with both versions."""
    problem = None
    try:
        import torchaudio
        from torchaudio._extension import _IS_TORCHAUDIO_EXT_AVAILABLE
    except Exception as exc:  # OSError (undefined symbol) or ImportError: report, don't traceback
        cause = exc.__cause__ or exc
        problem = f"{type(cause).__name__}: {(str(cause).splitlines() or [''])[0]}"
    if problem:  # failed outside the except block, so the report is this one line
        pytest.fail(f"torchaudio's compiled extension does not load with {installed_pair()}: {problem} "
                    f"— install the exact pair pinned in pyproject.toml", pytrace=False)
    assert _IS_TORCHAUDIO_EXT_AVAILABLE, f"torchaudio has no compiled extension ({installed_pair()})"
    return torchaudio


def test_the_compiled_extension_loads_and_runs():
    torchaudio = load_torchaudio()
    assert hasattr(torch.ops.torchaudio, "_lfilter_core_loop"), installed_pair()
    # A one-pole IIR filter, y[n] = x[n] + 0.5 y[n-1], runs in the compiled core loop on the
    # CPU: its impulse response is 0.5 ** n.
    impulse = torch.zeros(1, 8, dtype=torch.float64)
    impulse[0, 0] = 1.0
    out = torchaudio.functional.lfilter(impulse, torch.tensor([1.0, -0.5], dtype=torch.float64),
                                        torch.tensor([1.0, 0.0], dtype=torch.float64))
    expected = 0.5 ** torch.arange(8, dtype=torch.float64)
    assert torch.allclose(out[0], expected, atol=1e-12), f"lfilter wrong with {installed_pair()}: {out}"


def test_the_prefix_ctc_decoder_library_loads():
    """The one other compiled library the wheel ships (CUDA CTC prefix decoder); CPU builds lack it."""
    torchaudio = load_torchaudio()
    lib = Path(torchaudio.__file__).parent / "lib"
    if not list(lib.glob("torchaudio_prefixctc*")):
        pytest.skip("this torchaudio build ships no prefix CTC decoder library")
    problem = None
    try:
        assert torchaudio._extension._load_lib("torchaudio_prefixctc")
    except OSError as exc:
        problem = str(exc.__cause__ or exc)
    if problem:
        pytest.fail(f"torchaudio_prefixctc does not load with {installed_pair()}: {problem}", pytrace=False)


def test_resampling_a_sine_from_16k_to_8k_keeps_its_frequency_and_amplitude():
    torchaudio = load_torchaudio()
    sr, freq, amp = 16000, 1000.0, 0.5
    t = torch.arange(sr, dtype=torch.float64) / sr  # one second
    y = torchaudio.functional.resample(amp * torch.sin(2 * torch.pi * freq * t), sr, 8000).numpy()
    assert y.shape == (8000,), f"{y.shape} with {installed_pair()}"
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    peak = float(np.fft.rfftfreq(len(y), 1 / 8000)[np.argmax(spectrum)])
    ideal = amp * np.sin(2 * np.pi * freq * np.arange(8000) / 8000)
    # 1 kHz is well inside the 4 kHz band, so away from the edges the windowed sinc is within
    # its passband ripple of the ideal sine (measured 6.9e-5 with the pinned pair).
    err = float(np.max(np.abs(y[100:-100] - ideal[100:-100])))
    assert peak == freq and err < 2e-4, f"resample 16k→8k: peak {peak} Hz, max error {err:.2e} with {installed_pair()}"


def pinned(name: str) -> str | None:
    """The version pyproject.toml pins ``name`` to with ``==`` (None if not pinned that way)."""
    text = PYPROJECT.read_text(encoding="utf-8")
    deps = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, re.S | re.M)
    assert deps, "pyproject.toml has no [project] dependencies list"
    for spec in re.findall(r'"([^"]+)"', deps.group(1)):
        m = re.fullmatch(rf"{re.escape(name)}\s*(.*)", spec.strip())
        if m:
            exact = re.fullmatch(r"==\s*([0-9][0-9A-Za-z.]*)", m.group(1).strip())
            return exact.group(1) if exact else m.group(1).strip() or "(unpinned)"
    return None


@pytest.mark.parametrize("name", ["torch", "torchaudio"])
def test_pyproject_pins_the_installed_version_exactly(name):
    pin = pinned(name)
    installed = version(name).split("+")[0]  # a local label (+cu130, +cpu) is the build, not the release
    assert pin is not None, f"pyproject.toml does not list {name}"
    assert re.fullmatch(r"[0-9][0-9A-Za-z.]*", pin), f"pyproject.toml must pin {name} with ==, got {pin!r}"
    assert pin == installed, (
        f"pyproject.toml pins {name}=={pin} but {installed_pair()} is installed; "
        f"install the pinned pair or move both pins together"
    )
