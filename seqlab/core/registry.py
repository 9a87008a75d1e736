"""Name → class tables for stages and tasks, resolved lazily.

Entries are ``"module:Class"`` strings, so nothing is imported (and nothing registers
itself) until a name is looked up: no import-time side effects, and ``core`` stays free
of imports from higher layers. Third-party code adds entries with ``register``.
"""
from __future__ import annotations

import importlib
from typing import Any

from .config import suggest
from .errors import ConfigError

STAGES: dict[str, str] = {
    "word_tokenizer": "seqlab.text.tokenizers:WordTokenizer",
    "char_tokenizer": "seqlab.text.tokenizers:CharTokenizer",
    "sentencepiece": "seqlab.text.sentencepiece:SentencePieceTokenizer",
    "vocabulary": "seqlab.text.vocab:VocabularyStage",
    "label_encoder": "seqlab.text.labels:LabelEncoder",
    "tag_encoder": "seqlab.text.tagged:TagEncoder",
    "sentence_tokenizer": "seqlab.text.tagged:SentenceTokenizer",
    "document_case": "seqlab.text.documents:DocumentCaseStage",
    "word2vec": "seqlab.embeddings.word2vec:Word2VecStage",
    "tree_reader": "seqlab.text.trees:TreeReader",
    "tree_label_encoder": "seqlab.text.trees:TreeLabelEncoder",
    "tree_fine_label_encoder": "seqlab.text.trees:TreeFineLabelEncoder",
    "word_chars": "seqlab.text.wordchars:WordChars",
    "audio_loader": "seqlab.audio.io:AudioLoader",
    "mfcc": "seqlab.audio.features:MFCC",
    "log_mel": "seqlab.audio.features:LogMel",
    "digit_label": "seqlab.tasks.cgan:DigitLabel",
    "mfcc_image": "seqlab.tasks.cgan:MFCCImage",
}

TASKS: dict[str, str] = {
    "sentiment": "seqlab.tasks.sentiment:SentimentModel",
    "ner": "seqlab.tasks.ner:NERModel",
    "translation": "seqlab.tasks.translation:TranslationModel",
    "speech": "seqlab.tasks.speech:SpeechModel",
    "lm": "seqlab.tasks.lm:LanguageModel",
    "anomaly": "seqlab.tasks.anomaly:AnomalyModel",
    "denoise": "seqlab.tasks.denoise:DenoiseModel",
    "cgan": "seqlab.tasks.cgan:CGANModel",
    "tree_sentiment": "seqlab.tasks.tree_sentiment:TreeSentimentModel",
}

#: Each task's recipe dataclass: it has ``datasets()`` → (train, dev) and ``build()`` → Pipeline.
RECIPES: dict[str, str] = {
    "sentiment": "seqlab.tasks.sentiment:SentimentRecipe",
    "ner": "seqlab.tasks.ner:NERRecipe",
    "translation": "seqlab.tasks.translation:TranslationRecipe",
    "speech": "seqlab.tasks.speech:SpeechRecipe",
    "lm": "seqlab.tasks.lm:LMRecipe",
    "anomaly": "seqlab.tasks.anomaly:AnomalyRecipe",
    "denoise": "seqlab.tasks.denoise:DenoiseRecipe",
    "cgan": "seqlab.tasks.cgan:CGANRecipe",
    "tree_sentiment": "seqlab.tasks.tree_sentiment:TreeSentimentRecipe",
}


def _resolve(table: dict[str, str], name: str, what: str) -> Any:
    if name not in table:
        valid = sorted(table)
        raise ConfigError(f"unknown {what} {name!r}{suggest(name, valid)}; known: {', '.join(valid)}")
    module, _, attr = table[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def stage_class(name: str) -> type:
    return _resolve(STAGES, name, "stage")


def task_class(name: str) -> type:
    return _resolve(TASKS, name, "task")


def recipe_class(name: str) -> Any:
    return _resolve(RECIPES, name, "task")


def register(table: dict[str, str], name: str, target: str) -> None:
    """Add ``name`` → ``"module:Class"`` to ``STAGES``, ``TASKS`` or ``RECIPES``."""
    if ":" not in target:
        raise ConfigError(f"register {name!r}: target must be 'module:Class', got {target!r}")
    table[name] = target
