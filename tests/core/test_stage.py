import pickle

import pytest

from seqlab.core.errors import NotFittedError, WiringError
from seqlab.core.stage import Stage, check_wiring


class Upper(Stage):
    kind = "upper"
    takes = ("text",)
    provides = ("upper",)

    def map(self, batch):
        return {"upper": [t.upper() for t in batch["text"]]}


class Lengths(Stage):
    kind = "lengths"
    takes = ("upper",)
    provides = ("n",)
    needs_fit = True

    def map(self, batch):
        return {"n": [len(t) for t in batch["upper"]]}


def test_wiring_error_names_stage_and_column():
    with pytest.raises(WiringError) as err:
        check_wiring([Lengths(), Upper()], {"text"})
    assert "stage 0 Lengths(upper → n) needs column 'upper'" in str(err.value)
    assert "available: text" in str(err.value)
    assert check_wiring([Upper(), Lengths()], {"text"}) == {"text", "upper", "n"}


def test_model_column_gap_is_reported():
    with pytest.raises(WiringError, match="the model needs column 'input_ids'"):
        check_wiring([Upper()], {"text"}, needed=("input_ids",))


def test_missing_column_in_batch_and_unfitted_stage():
    with pytest.raises(WiringError, match="needs column"):
        Upper()({"txt": ["a"]})
    with pytest.raises(NotFittedError, match="before fit"):
        Lengths()({"upper": ["A"]})
    stage = Lengths().fit({"upper": ["A"]})
    assert stage({"upper": ["AB"]}) == {"n": [2]}


def test_stage_works_with_datasets_map_and_pickles():
    import datasets

    ds = datasets.Dataset.from_dict({"text": ["ab", "c"]}).map(Upper(), batched=True)
    assert ds["upper"] == ["AB", "C"]
    clone = pickle.loads(pickle.dumps(Upper()))
    assert clone({"text": ["x"]}) == {"upper": ["X"]}


def test_an_input_output_stage_takes_its_input_column_and_provides_its_output_column():
    import dataclasses

    from seqlab.core.stage import InputOutputStage

    @dataclasses.dataclass
    class Columns:
        input: str = "text"
        output: str = "upper"

    class Shout(InputOutputStage):
        kind = "shout"
        Config = Columns

        def map(self, batch):
            return {self.config.output: [t.upper() for t in batch[self.config.input]]}

    assert (Shout().takes, Shout().provides) == (("text",), ("upper",))
    stage = Shout(input="words", output="loud")
    assert (stage.takes, stage.provides) == (("words",), ("loud",))
    assert stage({"words": ["ab"]}) == {"loud": ["AB"]}
