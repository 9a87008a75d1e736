"""Entity P/R/F1 agrees with seqeval (default and strict modes), streams exactly, rejects bad tags."""
from __future__ import annotations

import random
import warnings

import pytest
from seqeval import scheme as seqeval_scheme
from seqeval.metrics import classification_report

from seqlab.core.errors import ConfigError, DataError
from seqlab.metrics.entities import EntityF1Accumulator, EntityScore, TagSequenceError, entity_f1

TYPES = ["PER", "LOC", "ORG", "MISC"]
PREFIXES = {"IOB1": "IB", "IOB2": "BI", "IOE2": "IE", "IOBES": "BIES", "BILOU": "BILU", "default": "BIES"}


def random_spans(rng: random.Random, n: int) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end exclusive, type) spans; adjacent same-type spans happen often."""
    spans, i = [], 0
    while i < n:
        if rng.random() < 0.35:
            length = min(n - i, rng.choice([1, 1, 2, 3]))
            spans.append((i, i + length, rng.choice(TYPES[:2] if rng.random() < 0.7 else TYPES)))
            i += length
        else:
            i += 1
    return spans


def encode(n: int, spans, scheme: str) -> list[str]:
    """Write spans as a valid tag sequence of ``scheme``."""
    tags = ["O"] * n
    ends = {end: t for _, end, t in spans}
    for start, end, t in spans:
        length = end - start
        for k in range(start, end):
            if scheme == "IOB1":
                first = k == start and ends.get(start) == t  # B only right after a same-type entity
                tags[k] = f"B-{t}" if first else f"I-{t}"
            elif scheme == "IOB2":
                tags[k] = f"B-{t}" if k == start else f"I-{t}"
            elif scheme == "IOE2":
                tags[k] = f"E-{t}" if k == end - 1 else f"I-{t}"
            elif scheme == "IOBES":
                tags[k] = (f"S-{t}" if length == 1 else f"B-{t}" if k == start else f"E-{t}" if k == end - 1
                           else f"I-{t}")
            elif scheme == "BILOU":
                tags[k] = (f"U-{t}" if length == 1 else f"B-{t}" if k == start else f"L-{t}" if k == end - 1
                           else f"I-{t}")
    return tags


def random_case(rng: random.Random, scheme: str) -> tuple[list[list[str]], list[list[str]]]:
    """Gold sentences valid in ``scheme`` (IOB2/IOBES mix in default mode) and corrupted predictions."""
    refs, preds = [], []
    alphabet = ["O"] + [f"{p}-{t}" for p in PREFIXES[scheme] for t in TYPES]
    for _ in range(rng.randint(1, 6)):
        n = rng.randint(0, 12)
        writer = scheme if scheme != "default" else rng.choice(["IOB2", "IOBES"])
        gold_spans = random_spans(rng, n)
        gold = encode(n, gold_spans, writer)
        kind = rng.random()
        if kind < 0.4:  # token-level noise: may break the scheme (invalid transitions)
            pred = [rng.choice(alphabet) if rng.random() < 0.2 else tag for tag in gold]
        elif kind < 0.7:  # a valid but different analysis
            pred = encode(n, random_spans(rng, n), writer)
        elif kind < 0.85:  # spans with shifted boundaries or types
            moved = [(s, min(n, e + rng.choice([-1, 0, 1])) or s + 1, rng.choice(TYPES)) for s, e, _ in gold_spans]
            moved = [(s, max(e, s + 1), t) for s, e, t in moved]
            pred = encode(n, [m for k, m in enumerate(moved) if k == 0 or m[0] >= moved[k - 1][1]], writer)
        else:
            pred = list(gold)
        refs.append(gold)
        preds.append(pred)
    return refs, preds


def seqeval_report(refs, preds, mode: str, scheme: str | None) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode == "strict":
            return classification_report(refs, preds, mode="strict", scheme=getattr(seqeval_scheme, scheme),
                                          output_dict=True, zero_division=0)
        return classification_report(refs, preds, output_dict=True, zero_division=0)


def assert_matches_seqeval(got, report: dict) -> None:
    types = {k for k in report if not k.endswith(" avg")}
    assert set(got.per_type) == types
    for name, score in [*got.per_type.items(), ("micro avg", got.micro)]:
        expected = report[name]
        assert score.precision == pytest.approx(float(expected["precision"]), abs=1e-9), name
        assert score.recall == pytest.approx(float(expected["recall"]), abs=1e-9), name
        assert score.f1 == pytest.approx(float(expected["f1-score"]), abs=1e-9), name
        assert score.support == int(expected["support"]), name


@pytest.mark.parametrize("mode, scheme, cases", [
    ("default", None, 1000), ("strict", "IOB2", 1000), ("strict", "IOBES", 1000),
    ("strict", "IOB1", 200), ("strict", "IOE2", 200), ("strict", "BILOU", 200),
])
def test_agrees_with_seqeval_on_random_tag_sequences(mode, scheme, cases):
    rng = random.Random(f"{mode}-{scheme}")
    nonzero = 0
    for case in range(cases):
        refs, preds = random_case(rng, scheme or "default")
        got = entity_f1(refs, preds, mode=mode, scheme=scheme)
        assert_matches_seqeval(got, seqeval_report(refs, preds, mode, scheme))
        nonzero += 0.0 < got.f1 < 1.0
    assert nonzero > cases // 4  # the cases are not all trivial


@pytest.mark.parametrize("mode, scheme", [("default", None), ("strict", "IOB2"), ("strict", "IOBES")])
def test_streaming_equals_one_shot(mode, scheme, text_tools):
    rng = random.Random(3)
    for _ in range(100):
        refs, preds = [], []
        for _ in range(rng.randint(0, 4)):
            r, p = random_case(rng, scheme or "default")
            refs += r
            preds += p
        whole = entity_f1(refs, preds, mode, scheme)
        acc = EntityF1Accumulator(mode, scheme)
        for start, end in text_tools.random_batches(refs, rng):
            acc.update(refs[start:end], preds[start:end])
        assert acc.compute() == whole
        assert acc.sentences == len(refs)


def test_example_values():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "B-LOC"]]
    s = entity_f1(gold, pred)
    assert (s.micro.correct, s.micro.predicted, s.micro.support) == (2, 3, 3)
    assert s.precision == 2 / 3 and s.recall == 2 / 3 and s.f1 == pytest.approx(2 / 3)
    assert s.per_type["LOC"] == EntityScore(0.0, 0.0, 0.0, support=1, predicted=1, correct=0)
    assert s.per_type["PER"].f1 == 1.0
    assert s.as_dict()["per_type"]["ORG"]["f1"] == 1.0


def test_strict_differs_from_default_where_it_should():
    gold, pred = [["B-PER", "I-PER", "O"]], [["I-PER", "I-PER", "O"]]
    assert entity_f1(gold, pred).f1 == 1.0  # conlleval: O I-PER starts an entity
    assert entity_f1(gold, pred, mode="strict", scheme="IOB2").f1 == 0.0  # no valid predicted entity
    assert entity_f1(gold, pred, mode="strict").scheme == "IOB2"  # the default scheme


def test_empty_corpus_scores_zero_like_seqeval():
    s = entity_f1([], [])
    assert (s.precision, s.recall, s.f1, s.micro.support, s.per_type) == (0.0, 0.0, 0.0, 0, {})
    assert_matches_seqeval(entity_f1([["O"]], [["O"]]), seqeval_report([["O"]], [["O"]], "default", None))


def test_invalid_gold_sequence_in_strict_mode_names_sentence_and_tag():
    acc = EntityF1Accumulator("strict", "IOB2")
    acc.update([["B-PER"], ["O"]], [["B-PER"], ["O"]])
    with pytest.raises(TagSequenceError) as info:
        acc.update([["O", "B-LOC"], ["B-PER", "O", "I-PER"]], [["O", "O"], ["B-PER", "O", "O"]])
    err = info.value
    assert isinstance(err, DataError)
    assert (err.side, err.sentence, err.token, err.tag) == ("references", 3, 2, "I-PER")
    assert "references sentence 3, token 2: tag 'I-PER' after 'O' is not part of any valid IOB2 entity" in str(err)
    with pytest.raises(TagSequenceError, match="tag 'I-LOC' after 'B-PER'"):
        entity_f1([["B-PER", "I-LOC"]], [["O", "O"]], mode="strict")
    with pytest.raises(TagSequenceError, match="token 1: tag 'B-PER' after 'O'"):  # IOBES: B without E
        entity_f1([["O", "B-PER", "O"]], [["O", "O", "O"]], mode="strict", scheme="IOBES")
    with pytest.raises(TagSequenceError, match="token 0: tag 'I-PER' at the start of the sentence"):
        entity_f1([["I-PER"]], [["O"]], mode="strict", scheme="IOB2")


def test_invalid_predicted_sequence_in_strict_mode_is_scored_not_refused():
    # Strict mode exists to give no credit to ill-formed predictions, as seqeval does.
    gold, pred = [["B-PER", "I-PER", "O"]], [["O", "I-PER", "O"]]
    s = entity_f1(gold, pred, mode="strict", scheme="IOB2")
    assert (s.micro.predicted, s.recall) == (0, 0.0)
    assert_matches_seqeval(s, seqeval_report(gold, pred, "strict", "IOB2"))


@pytest.mark.parametrize("mode, scheme, tag, side, reason", [
    ("strict", "IOB2", "S-PER", "predictions", "does not start with a prefix the IOB2 scheme knows (B, I)"),
    ("strict", "IOBES", "L-PER", "references", "does not start with a prefix the IOBES scheme knows"),
    ("default", None, "X-PER", "references", "the default mode (seqeval's reading)"),
    ("default", None, "PER", "predictions", "is not 'O' and does not start with a prefix"),
    ("default", None, "BPER", "predictions", "is not of the form PREFIX-TYPE"),
    ("default", None, "B-", "references", "is not of the form PREFIX-TYPE"),
    ("default", None, "", "references", "does not start with a prefix"),
    ("default", None, 3, "predictions", "is a int, not a string"),
])
def test_unreadable_tags_are_refused_in_both_modes(mode, scheme, tag, side, reason):
    good, bad = [["O", "B-PER"], ["O"]], [["O", "B-PER"], [tag]]
    refs, preds = (bad, good) if side == "references" else (good, bad)
    with pytest.raises(TagSequenceError) as info:
        entity_f1(refs, preds, mode=mode, scheme=scheme)
    assert (info.value.side, info.value.sentence, info.value.token, info.value.tag) == (side, 1, 0, tag)
    assert reason in str(info.value)


def test_bare_prefixes_are_read_as_seqeval_does():
    gold, pred = [["B", "I", "O", "B"]], [["B", "I", "O", "O"]]
    s = entity_f1(gold, pred)
    assert set(s.per_type) == {"_"} and s.recall == 0.5
    assert_matches_seqeval(s, seqeval_report(gold, pred, "default", None))


def test_shape_and_config_errors():
    with pytest.raises(DataError, match="references has 2 items but predictions has 1"):
        entity_f1([["O"], ["O"]], [["O"]])
    with pytest.raises(DataError, match="sentence 1: references has 2 tags but predictions has 1"):
        entity_f1([["O"], ["O", "O"]], [["O"], ["O"]])
    with pytest.raises(DataError, match="expected a list of tag lists"):
        entity_f1("B-PER", "B-PER")
    with pytest.raises(DataError, match="references sentence 0: expected a list of tags, got str"):
        entity_f1(["B-PER O"], [["B-PER", "O"]])
    with pytest.raises(ConfigError, match="applies only to mode='strict'"):
        entity_f1([["O"]], [["O"]], scheme="IOB2")
    with pytest.raises(ConfigError, match="tagging scheme 'BIO'"):
        EntityF1Accumulator("strict", "BIO")
    with pytest.raises(ConfigError, match="entity F1 mode 'lenient'"):
        EntityF1Accumulator("lenient")
