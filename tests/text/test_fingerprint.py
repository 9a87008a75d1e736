"""Every text stage works in ``datasets.map``: cache fingerprints stable across processes,
changed by a change of settings, and ``num_proc=2`` giving what ``num_proc=1`` gives."""
import json
import os
import subprocess
import sys

import datasets
import pytest
from datasets.fingerprint import Hasher

from seqlab.embeddings.word2vec import Word2VecStage
from seqlab.text.labels import LabelEncoder
from seqlab.text.sentencepiece import SentencePieceTokenizer
from seqlab.text.tokenizers import CharTokenizer, WordTokenizer
from seqlab.text.vocab import VocabularyStage

TEXTS = ["The cat sat on the mat.", "A dog ran 12 km!", "the cat ran", "Dogs and cats.", "on the mat", "It rained."]
LABELS = [1, 0, 1, 0, 1, 0]


def build_stages(**changes):
    """Fitted stages in a fixed order; ``changes`` alters one stage's settings."""
    ds = datasets.Dataset.from_dict({"text": TEXTS, "label": LABELS})
    word = WordTokenizer(split="punct", lowercase=True, **changes.get("word", {}))
    tokens = ds.map(word, batched=True)
    return tokens, {
        "word": word,
        "char": CharTokenizer(input="tokens", per_token=True, **changes.get("char", {})),
        "vocab": VocabularyStage(**changes.get("vocab", {})).fit(tokens),
        "label": LabelEncoder(**changes.get("label", {})).fit(tokens),
        "sentencepiece": SentencePieceTokenizer(
            **{"vocab_size": 40, "model_type": "bpe", **changes.get("sentencepiece", {})}
        ).fit(tokens),
        "word2vec": Word2VecStage(**{"dim": 4, "epochs": 1, **changes.get("word2vec", {})}).fit(tokens),
    }


def fingerprints(**changes) -> dict[str, str]:
    tokens, stages = build_stages(**changes)
    return {name: tokens.map(stage, batched=True)._fingerprint for name, stage in stages.items()}


SCRIPT = (
    "import json, sys; sys.path.insert(0, {here!r}); import test_fingerprint as t; "
    "print('FINGERPRINTS', json.dumps(t.fingerprints()))"
)


def test_fingerprints_are_stable_across_processes():
    here = os.path.dirname(os.path.abspath(__file__))
    # Another interpreter, with a string-hash seed surely unlike this one's (pytest's is random
    # unless PYTHONHASHSEED is set; then we pick a different one).
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(here=here)],
        capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONHASHSEED": seed},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("FINGERPRINTS ")][-1]
    other = json.loads(line[len("FINGERPRINTS "):])
    here_prints = fingerprints()
    assert other == here_prints
    assert len(set(here_prints.values())) == len(here_prints)  # and every stage hashes differently


@pytest.mark.parametrize(
    "name, change",
    [
        ("word", {"normalize_numbers": True}),
        ("char", {"lowercase": True}),
        ("vocab", {"add_eos": True}),
        ("sentencepiece", {"vocab_size": 45}),
        ("word2vec", {"seed": 1}),
    ],
)
def test_fingerprint_changes_with_settings(name, change):
    base = fingerprints()
    changed = fingerprints(**{name: change})
    assert changed[name] != base[name]


def test_fingerprint_ignores_caches_of_the_native_objects():
    _, stages = build_stages()
    sp, w2v = stages["sentencepiece"], stages["word2vec"]
    before = Hasher.hash(sp), Hasher.hash(w2v)
    sp.encode("the cat")  # builds the native processor
    w2v.most_similar("cat")  # fills gensim's norm cache
    w2v.embedding_matrix(stages["vocab"].vocab)  # records its coverage
    assert (Hasher.hash(sp), Hasher.hash(w2v)) == before


def test_num_proc_2_equals_num_proc_1():
    tokens, stages = build_stages()
    for name, stage in stages.items():
        one = tokens.map(stage, batched=True, batch_size=2, num_proc=1, load_from_cache_file=False)
        two = tokens.map(stage, batched=True, batch_size=2, num_proc=2, load_from_cache_file=False)
        assert one[:] == two[:], name
        assert one.column_names == two.column_names
