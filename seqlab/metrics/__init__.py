"""seqlab.metrics: tested, thin wrappers around the reference metric implementations.

- WER / CER and alignments: jiwer 4 (``error_rate``), with an explicit text ``normalization``;
- corpus BLEU / chrF with sacrebleu's signature: sacrebleu 2 (``translation``);
- entity precision / recall / F1, seqeval's default reading (conlleval's for B/I/O tags) or
  scheme-strict: seqeval (``entities``);
- accuracy and macro F1 (``classification``);
- a batched Levenshtein distance in torch for training-time WER/CER (``edit_distance``).

Every metric has a one-shot function and a streaming accumulator
(``update(references, hypotheses)`` per batch, ``compute()``) that sums the metric's
sufficient statistics, so streaming equals the one-shot corpus score exactly. References
always come first. ``seqlab eval <metric>`` is ``seqlab.metrics.cli``.

Names are loaded on first use, so ``import seqlab.metrics`` does not import torch, jiwer,
sacrebleu or seqeval (seqeval pulls in scikit-learn).

>>> from seqlab.metrics import wer, WERAccumulator
>>> wer(["a b c d"], ["a b x d"])
0.25
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Accumulator": "base",
    "NORMALIZATIONS": "normalization",
    "normalize_text": "normalization",
    "EditCounts": "error_rate",
    "ErrorRateAccumulator": "error_rate",
    "WERAccumulator": "error_rate",
    "CERAccumulator": "error_rate",
    "align": "error_rate",
    "wer": "error_rate",
    "cer": "error_rate",
    "CorpusScore": "translation",
    "BLEUAccumulator": "translation",
    "ChrFAccumulator": "translation",
    "bleu": "translation",
    "chrf": "translation",
    "ENTITY_MODES": "entities",
    "SCHEMES": "entities",
    "EntityScore": "entities",
    "EntityScores": "entities",
    "EntityF1Accumulator": "entities",
    "TagSequenceError": "entities",
    "entity_f1": "entities",
    "AccuracyAccumulator": "classification",
    "MacroF1Accumulator": "classification",
    "accuracy": "classification",
    "macro_f1": "classification",
    "edit_distance_batch": "edit_distance",
    "error_rate_batch": "edit_distance",
    "METRIC_COMMANDS": "cli",
    "run_metric_command": "cli",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'seqlab.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
