from dataclasses import dataclass, field
from typing import Literal

import pytest

from seqlab.core.config import apply_overrides, check_dropout, check_int, from_dict, read_yaml, to_dict
from seqlab.core.errors import ConfigError


@dataclass
class Inner:
    size: int = 3
    mode: Literal["a", "b"] = "a"


@dataclass
class Outer:
    lr: float = 0.1
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    sizes: list[int] = field(default_factory=list)
    limit: int | None = None


def test_unknown_key_names_key_where_and_valid_keys():
    with pytest.raises(ConfigError) as err:
        from_dict(Outer, {"inner": {"sise": 4}}, where="recipe.yaml")
    message = str(err.value)
    assert "recipe.yaml.inner" in message and "'sise'" in message and "did you mean 'size'" in message
    assert "valid keys: mode, size" in message


def test_values_are_checked_and_coerced():
    cfg = from_dict(Outer, {"lr": 1, "sizes": [1, 2], "inner": {"mode": "b"}, "limit": None})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg.sizes == [1, 2] and cfg.inner.mode == "b"
    assert from_dict(Outer, {"lr": "1e-3"}).lr == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="inner.mode.*'c' is not one of"):
        from_dict(Outer, {"inner": {"mode": "c"}})
    with pytest.raises(ConfigError, match="expected an integer"):
        from_dict(Outer, {"inner": {"size": "three"}})
    with pytest.raises(ConfigError, match="expected a list"):
        from_dict(Outer, {"sizes": 3})


def test_yaml_booleans_map_onto_on_off_choices():
    @dataclass
    class Switch:
        progress: Literal["auto", "on", "off"] = "auto"

    assert from_dict(Switch, {"progress": False}).progress == "off"
    assert from_dict(Switch, {"progress": True}).progress == "on"


def test_round_trip_through_dict():
    cfg = from_dict(Outer, {"lr": 0.5, "inner": {"size": 7}})
    assert from_dict(Outer, to_dict(cfg)) == cfg


def test_overrides_apply_nested_values_read_as_yaml():
    data = apply_overrides({"train": {"epochs": 3}}, ["train.epochs=5", "train.lr=0.01", "output=runs/x"])
    assert data == {"train": {"epochs": 5, "lr": 0.01}, "output": "runs/x"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["train.epochs"])


def test_read_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml.*not valid YAML"):
        read_yaml(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        read_yaml(listy)


def test_check_int_and_check_dropout_accept_valid_values_and_name_the_bad_ones():
    assert check_int(4, "hidden_size", "encoder") == 4
    assert check_int(0, "padding", "conv", minimum=0) == 0
    for bad in (0, -1, True, 2.0, "3", None):
        with pytest.raises(ConfigError, match=r"^encoder: hidden_size must be a positive integer, got "):
            check_int(bad, "hidden_size", "encoder")
    with pytest.raises(ConfigError, match=r"^conv: padding must be an integer >= 0, got -1$"):
        check_int(-1, "padding", "conv", minimum=0)
    assert check_dropout(0, "mlp") == 0.0 and isinstance(check_dropout(0, "mlp"), float)
    assert check_dropout(0.25, "mlp") == 0.25
    for bad in (1.0, -0.1, True, "0.1", None):
        with pytest.raises(ConfigError, match=r"^mlp: dropout must be a number in \[0, 1\), got "):
            check_dropout(bad, "mlp")
