"""LabelEncoder: labels compared as strings, sorted deterministically, unknowns refused."""
import datasets
import pytest

from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.text.labels import LabelEncoder, sort_labels


def test_int_and_string_labels_are_the_same_classes():
    enc = LabelEncoder().fit({"label": [1, 0, 1]})
    assert enc.labels == ["0", "1"]
    assert enc({"label": [0, "1", 1, "0"]}) == {"labels": [0, 1, 1, 0]}
    assert enc.encode(1) == 1 and enc.decode(0) == "0"


def test_sorting_is_numeric_for_integers_else_alphabetical():
    assert sort_labels(["10", "2", "-1"]) == ["-1", "2", "10"]
    assert sort_labels(["pos", "neg", "10"]) == ["10", "neg", "pos"]
    enc = LabelEncoder().fit(datasets.Dataset.from_dict({"label": ["pos", "neg", "neutral", "neg"]}))
    assert enc.labels == ["neg", "neutral", "pos"] and enc.num_labels == 3


def test_unknown_label_names_value_row_and_known_labels():
    enc = LabelEncoder().fit({"label": ["neg", "pos"]})
    with pytest.raises(DataError, match=r"row 2 has label 'meh'.*'neg', 'pos'"):
        enc({"label": ["pos", "neg", "meh"]})
    with pytest.raises(DataError, match="row 0"):
        enc({"label": [None]})
    with pytest.raises(InputError):
        enc.decode(5)


def test_fixed_label_set_keeps_its_order_and_checks_training_data():
    enc = LabelEncoder(labels=["pos", "neg"])
    assert enc.fitted  # nothing to learn
    assert enc({"label": ["neg", "pos"]}) == {"labels": [1, 0]}
    with pytest.raises(DataError, match="outside the fixed label set"):
        enc.fit({"label": ["pos", "other"]})
    with pytest.raises(ConfigError, match="twice"):
        LabelEncoder(labels=["a", "a"])
    with pytest.raises(ConfigError, match="twice"):
        LabelEncoder(labels=[1, "1"])
    ints = LabelEncoder({"labels": [1, 0]})  # as a YAML recipe would give them
    assert ints.labels == ["1", "0"] and ints({"label": [0, "1"]}) == {"labels": [1, 0]}


def test_empty_training_data_is_a_data_error():
    with pytest.raises(DataError, match="no rows"):
        LabelEncoder().fit({"label": []})
    with pytest.raises(DataError, match="no column 'label'"):
        LabelEncoder().fit({"y": [1]})


def test_state_round_trip_and_flags(tmp_path):
    enc = LabelEncoder(input="y", output="target").fit({"y": ["b", "a c", "a"]})
    enc.save_state(tmp_path)
    assert (tmp_path / "labels.txt").read_text(encoding="utf-8") == "a\na c\nb\n"
    again = LabelEncoder(enc.to_config()["config"])
    again.load_state(tmp_path)
    assert again.labels == enc.labels and again({"y": ["b"]}) == {"target": [2]}
    assert LabelEncoder.training_only and LabelEncoder.needs_fit and LabelEncoder.kind == "label_encoder"
