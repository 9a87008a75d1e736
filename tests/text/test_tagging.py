"""Tagging schemes: reading (= seqeval), writing, lossless conversion, validation, CRF masks."""
from __future__ import annotations

import random
import warnings

import pytest
import torch
from seqeval.metrics.sequence_labeling import get_entities

from seqlab.core.errors import ConfigError, DataError
from seqlab.text.tagging import (
    SCHEMES,
    allowed_transitions,
    convert_tags,
    normalize_scheme,
    parse_tag,
    spans,
    tag_set,
    tags_from_spans,
    validate,
)

TYPES = ["PER", "LOC", "ORG"]


def seqeval_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """seqeval's default-mode entities with an exclusive end, as ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [(kind, start, end + 1) for kind, start, end in get_entities(list(tags))]


def random_spans(rng: random.Random, length: int) -> list[tuple[str, int, int]]:
    """Disjoint spans; adjacent same-type spans are common on purpose (IOB1's B- case)."""
    out, i = [], 0
    while i < length:
        if rng.random() < 0.4:
            i += 1
            continue
        end = min(length, i + rng.choice([1, 1, 2, 3, 4]))
        out.append((rng.choice(TYPES[:2]) if rng.random() < 0.8 else TYPES[2], i, end))
        i = end
    return out


def messy(rng: random.Random, length: int, prefixes: str) -> list[str]:
    return [
        "O" if rng.random() < 0.3 else f"{rng.choice(prefixes)}-{rng.choice(TYPES[:2])}"
        for _ in range(length)
    ]


# ----------------------------------------------------------------------------- reading
def test_spans_of_hand_written_sequences():
    assert spans(["B-PER", "I-PER", "O", "B-LOC"], "IOB2") == [("PER", 0, 2), ("LOC", 3, 4)]
    # IOB1: I- opens a span, B- separates two adjacent spans of the same type.
    assert spans(["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "IOB1") == [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5)]
    assert spans(["S-PER", "B-LOC", "I-LOC", "E-LOC", "O"], "IOBES") == [("PER", 0, 1), ("LOC", 1, 4)]
    assert spans(["U-PER", "B-LOC", "L-LOC"], "BILOU") == [("PER", 0, 1), ("LOC", 1, 3)]
    # messy IOB2, read like conlleval: I- after O opens, a type change splits
    assert spans(["O", "I-PER", "I-LOC", "I-LOC"], "IOB2") == [("PER", 1, 2), ("LOC", 2, 4)]
    assert spans([], "IOB2") == []


def test_spans_equal_seqeval_on_random_messy_iob_sequences():
    rng = random.Random(0)
    for case in range(2000):
        tags = messy(rng, rng.randint(0, 12), "BI")
        expected = seqeval_spans(tags)
        assert spans(tags, "IOB2") == expected, tags
        assert spans(tags, "IOB1") == expected, tags


def test_spans_equal_seqeval_on_random_messy_iobes_and_bilou_sequences():
    rng = random.Random(1)
    to_bilou = {"B": "B", "I": "I", "E": "L", "S": "U", "O": "O"}
    for case in range(1500):
        tags = messy(rng, rng.randint(0, 12), "BIES")
        expected = seqeval_spans(tags)
        assert spans(tags, "IOBES") == expected, tags
        bilou = [t if t == "O" else to_bilou[t[0]] + t[1:] for t in tags]
        assert spans(bilou, "BILOU") == expected, bilou


def test_reading_refuses_tags_the_scheme_does_not_have():
    with pytest.raises(DataError, match=r"'S-PER' at position 1 has prefix 'S'.*IOB2"):
        spans(["O", "S-PER"], "IOB2")
    with pytest.raises(DataError, match=r"'B' at position 0"):
        spans(["B", "O"], "IOB2")
    with pytest.raises(DataError, match=r"'PER' at position 2"):
        convert_tags(["O", "O", "PER"], "IOB2", "IOBES")
    assert parse_tag("L-ORG", "BILOU") == ("L", "ORG")
    assert parse_tag("B-I-X", "IOB2") == ("B", "I-X")  # the type is everything after the first dash


# ----------------------------------------------------------------------------- writing / converting
def test_written_sequences_are_valid_and_read_back_by_us_and_by_seqeval():
    rng = random.Random(2)
    for case in range(1500):
        length = rng.randint(0, 12)
        truth = random_spans(rng, length)
        for scheme in SCHEMES:
            tags = tags_from_spans(truth, length, scheme)
            assert len(tags) == length
            validate(tags, scheme)
            assert spans(tags, scheme) == truth
        # seqeval reads our IOB1/IOB2/IOBES output as the same entities
        for scheme in ("IOB1", "IOB2", "IOBES"):
            assert seqeval_spans(tags_from_spans(truth, length, scheme)) == truth


def test_conversion_round_trips_are_lossless_on_random_valid_sequences():
    rng = random.Random(3)
    for case in range(1500):
        length = rng.randint(1, 12)
        truth = random_spans(rng, length)
        iob1 = tags_from_spans(truth, length, "IOB1")
        iob2 = convert_tags(iob1, "IOB1", "IOB2")
        iobes = convert_tags(iob2, "IOB2", "IOBES")
        back2 = convert_tags(iobes, "IOBES", "IOB2")
        back1 = convert_tags(back2, "IOB2", "IOB1")
        assert back2 == iob2 and back1 == iob1
        assert convert_tags(convert_tags(iobes, "IOBES", "BILOU"), "BILOU", "IOBES") == iobes
        for source in SCHEMES:
            for target in SCHEMES:
                src = tags_from_spans(truth, length, source)
                assert convert_tags(src, source, target, strict=True) == tags_from_spans(truth, length, target)


def test_conversion_of_messy_input_keeps_seqevals_entities():
    rng = random.Random(4)
    for case in range(1000):
        tags = messy(rng, rng.randint(0, 10), "BI")
        for target in SCHEMES:
            out = convert_tags(tags, "IOB2", target)
            validate(out, target)  # always a valid sequence
            assert spans(out, target) == seqeval_spans(tags)


def test_hand_written_conversions():
    assert convert_tags(["I-PER", "I-PER", "O", "I-LOC"], "IOB1", "IOBES") == ["B-PER", "E-PER", "O", "S-LOC"]
    assert convert_tags(["B-PER", "I-PER", "B-PER"], "IOB2", "IOB1") == ["I-PER", "I-PER", "B-PER"]
    assert convert_tags(["B-PER", "I-PER", "I-PER", "B-LOC"], "BIO", "BILOU") == ["B-PER", "I-PER", "L-PER", "U-LOC"]
    with pytest.raises(DataError, match="I-PER at position 0"):
        convert_tags(["I-PER"], "IOB2", "IOBES", strict=True)


def test_tags_from_spans_refuses_bad_spans():
    with pytest.raises(DataError, match="overlap"):
        tags_from_spans([("PER", 0, 2), ("LOC", 1, 3)], 4, "IOB2")
    with pytest.raises(DataError, match="0 <= start < end <= 3"):
        tags_from_spans([("PER", 2, 4)], 3, "IOB2")
    with pytest.raises(DataError, match="0 <= start < end"):
        tags_from_spans([("PER", 1, 1)], 3, "IOB2")
    with pytest.raises(DataError, match="type"):
        tags_from_spans([("", 0, 1)], 3, "IOB2")
    # spans given out of order are written all the same
    assert tags_from_spans([("LOC", 2, 3), ("PER", 0, 1)], 3, "IOB2") == ["B-PER", "O", "B-LOC"]


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "tags,scheme,message",
    [
        (["O", "O", "O", "I-PER"], "IOBES", "I-PER after O at position 3 is invalid in IOBES"),
        (["I-PER", "O"], "IOB2", r"I-PER at position 0 \(sequence start\) is invalid in IOB2"),
        (["B-PER", "I-LOC"], "IOB2", "I-LOC after B-PER at position 1 is invalid in IOB2"),
        (["O", "B-PER"], "IOB1", "B-PER after O at position 1 is invalid in IOB1"),
        (["I-LOC", "B-PER"], "IOB1", "B-PER after I-LOC at position 1 is invalid in IOB1"),
        (["O", "B-PER", "I-PER"], "IOBES", "I-PER at position 2 cannot end the sequence in IOBES"),
        (["B-PER", "O"], "IOBES", "O after B-PER at position 1 is invalid in IOBES"),
        (["S-PER", "E-PER"], "IOBES", "E-PER after S-PER at position 1 is invalid in IOBES"),
        (["B-PER", "L-LOC"], "BILOU", "L-LOC after B-PER at position 1 is invalid in BILOU"),
        (["O", "S-PER"], "IOB2", "'S-PER' at position 1"),
    ],
)
def test_validate_names_the_position_and_tag(tags, scheme, message):
    with pytest.raises(DataError, match=message):
        validate(tags, scheme)


def test_validate_accepts_exactly_the_canonical_encodings():
    """Independent oracle: a sequence is valid iff rewriting its own spans gives it back."""
    rng = random.Random(5)
    prefixes = {"IOB1": "BI", "IOB2": "BI", "IOBES": "BIES", "BILOU": "BILU"}
    counts = {s: [0, 0] for s in SCHEMES}
    for case in range(1200):
        for scheme in SCHEMES:
            tags = messy(rng, rng.randint(0, 6), prefixes[scheme])
            canonical = convert_tags(tags, scheme, scheme) == tags
            try:
                validate(tags, scheme)
                ok = True
            except DataError:
                ok = False
            assert ok == canonical, (scheme, tags)
            counts[scheme][ok] += 1
    assert all(valid > 50 and invalid > 50 for invalid, valid in counts.values())


# ----------------------------------------------------------------------------- tag sets / masks
def test_tag_set():
    assert tag_set(["PER", "LOC", "PER"], "IOB2") == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert tag_set(["MISC"], "BILOU") == ["O", "B-MISC", "I-MISC", "L-MISC", "U-MISC"]
    assert tag_set([], "IOBES") == ["O"]
    with pytest.raises(DataError):
        tag_set("PER", "IOB2")
    with pytest.raises(DataError):
        tag_set(["NEW YORK"], "IOB2")


def test_allowed_transitions_iob2_by_hand():
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    mask = allowed_transitions(names, "IOB2")
    # I-X only after B-X or I-X; everything else is free; no start I-, any end.
    expected = torch.tensor(
        [
            [1, 1, 0, 1, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 0, 1, 1],
            [1, 1, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask.transitions, expected)
    assert mask.start.tolist() == [True, True, False, True, False]
    assert mask.end.tolist() == [True] * 5
    assert (1, 2) in mask.pairs() and (0, 2) not in mask.pairs()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_allowed_transitions_agree_with_validate(scheme):
    names = ["<pad>"] + tag_set(["PER", "LOC"], scheme)
    mask = allowed_transitions(names, scheme, unused=["<pad>"])
    assert not mask.transitions[0].any() and not mask.transitions[:, 0].any()
    assert not mask.start[0] and not mask.end[0]
    rng = random.Random(6)
    for case in range(800):
        idx = [rng.randrange(1, len(names)) for _ in range(rng.randint(1, 5))]
        by_mask = bool(mask.start[idx[0]]) and bool(mask.end[idx[-1]]) and all(
            bool(mask.transitions[a, b]) for a, b in zip(idx, idx[1:])
        )
        try:
            validate([names[i] for i in idx], scheme)
            by_validate = True
        except DataError:
            by_validate = False
        assert by_mask == by_validate, [names[i] for i in idx]


def test_allowed_transitions_refuse_unknown_and_repeated_tags():
    with pytest.raises(DataError, match="<pad>"):
        allowed_transitions(["<pad>", "O"], "IOB2")
    with pytest.raises(DataError, match="repeated"):
        allowed_transitions(["O", "O"], "IOB2")


def test_scheme_names():
    assert normalize_scheme("bio") == "IOB2"
    assert normalize_scheme("BIOES") == "IOBES"
    assert normalize_scheme("iob-1") == "IOB1"
    with pytest.raises(ConfigError, match="ambiguous"):
        normalize_scheme("IOB")
    with pytest.raises(ConfigError, match="unknown tagging scheme 'XYZ'"):
        spans(["O"], "XYZ")
