"""The package surface: lazy exports, no heavy imports at ``import seqlab.metrics``, working doctests."""
from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

import seqlab.metrics as metrics

MODULES = ["normalization", "error_rate", "translation", "entities", "classification", "edit_distance", "base"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"seqlab.metrics.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name != "base":
        assert result.attempted > 0


def test_every_export_resolves_to_its_module():
    for name in metrics.__all__:
        value = getattr(metrics, name)
        assert value is getattr(importlib.import_module(f"seqlab.metrics.{metrics._EXPORTS[name]}"), name)
    assert metrics.wer(["a b"], ["a c"]) == 0.5
    with pytest.raises(AttributeError, match="no attribute 'bleu_score'"):
        metrics.bleu_score


def test_import_is_light():
    code = ("import sys, seqlab.metrics; "
            "print(sorted(m for m in ('jiwer', 'sacrebleu', 'seqeval', 'sklearn', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
