"""``seqlab export``: ONNX / TorchScript artefacts (± int8) of NER, sentiment and speech pipelines
give the eager model's outputs through the same Pipeline API; edited artefacts, unsupported tasks
and foreign output folders are refused with one-line errors."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

import seqlab
from seqlab.cli import main as cli_main
from seqlab.core.errors import InputError, ModelFileError, OutputDirError
from seqlab.export import export_pipeline
from seqlab.pipeline import Pipeline
from seqlab.recipe import load_recipe, run_recipe
from seqlab.text.labels import LabelEncoder
from seqlab.text.tagged import SentenceTokenizer, TagEncoder
from seqlab.text.tokenizers import WordTokenizer
from seqlab.text.vocab import VocabularyStage
from tests.tasks.test_contract import TINY
from tests.tasks.test_ner import toy_data

PATHS = [("onnx", False), ("onnx", True), ("torchscript", False), ("torchscript", True)]


def _ner(out: Path) -> tuple[Pipeline, list, dict]:
    torch.manual_seed(0)
    pipe = Pipeline([SentenceTokenizer(), VocabularyStage(), TagEncoder(scheme="IOB2", target="IOBES")], task="ner",
                    model_config={"embedding_dim": 8, "hidden_size": 8, "char_hidden_size": 4, "char_embedding_dim": 4,
                                  "dropout": 0.0, "word_dropout": 0.0}, device="cpu")
    pipe.fit(toy_data(), None, {"epochs": 3, "batch_size": 8, "lr": 0.05, "progress": "off"})
    pipe.save(out)
    inputs = ["Anna Smith lives in Oslo.", ["we", "met", "Cleo", "in", "Lima", "today"], ["Zed"], "Dirk Smith met Bert in Rome"]
    return pipe, inputs, toy_data(12)


def _sentiment(out: Path) -> tuple[Pipeline, list, dict]:
    torch.manual_seed(0)
    texts, labels = ["good film", "bad film", "a great plot", "awful acting", "great fun", "dull"] * 3, [1, 0, 1, 0, 1, 0] * 3
    pipe = Pipeline([WordTokenizer(), VocabularyStage(), LabelEncoder()], task="sentiment", device="cpu",
                    model_config={"embedding_dim": 8, "hidden_size": 8})
    pipe.fit({"text": texts, "label": labels}, train_config={"epochs": 3, "lr": 0.05, "progress": "off"})
    pipe.save(out)
    return pipe, ["good film", "an awful and dull plot", "fun", "unknown words here"], {"text": texts[:6], "label": labels[:6]}


def _speech(out: Path) -> tuple[Pipeline, list, dict]:
    torch.manual_seed(0)
    settings, examples = TINY["speech"](out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = run_recipe(load_recipe(data=settings))["pipeline"]
    return pipe, examples, {"audio": examples, "text": ["", ""]}


BUILD = {"ner": _ner, "sentiment": _sentiment, "speech": _speech}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """task → (eager pipeline, its folder, inputs, labelled data)."""
    cache = {}

    def get(task: str):
        if task not in cache:
            folder = tmp_path_factory.mktemp(task) / "model"
            pipe, inputs, data = BUILD[task](folder)
            if task == "speech":  # references the tiny model can evaluate: its own transcripts
                data = {"audio": inputs, "text": [t or pipe.model.config.tokens[0] for t in pipe.predict(inputs)]}
            cache[task] = (pipe, folder, inputs, data)
        return cache[task]

    return get


def _same(task: str, eager: list, exported: list, tol: float) -> None:
    assert len(eager) == len(exported)
    for a, b in zip(eager, exported):
        if task == "ner":
            assert a["tags"] == b["tags"] and [s["text"] for s in a["spans"]] == [s["text"] for s in b["spans"]]
            for x, y in zip(a["spans"], b["spans"]):
                assert abs(x["score"] - y["score"]) <= tol
        elif task == "sentiment":
            assert a["label"] == b["label"]
            assert max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"]) <= tol
        else:
            assert a == b


@pytest.mark.parametrize("task", ["ner", "sentiment", "speech"])
@pytest.mark.parametrize("fmt,int8", PATHS)
def test_exported_pipeline_gives_the_eager_outputs(saved, tmp_path, task, fmt, int8):
    pipe, folder, inputs, data = saved(task)
    out = export_pipeline(folder, tmp_path / "artefact", fmt, int8)
    config = json.loads((out / "config.json").read_text())
    assert config["export"]["format"] == fmt and config["export"]["int8"] is int8
    assert not (out / "model.safetensors").exists()  # the network lives only in the exported graph
    loaded = seqlab.load(out)
    assert loaded.model.exported_network is not None and loaded.task == task
    # The network itself: the exported graph against the eager one on a batch of another size
    # and other lengths than the traced one.
    example = pipe.model.example_network_inputs(variant=1)
    with torch.no_grad():
        want = pipe.model.network_outputs(example)
    got = loaded.model.run_network(example)
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape
    if int8:
        # Quantised: predictions still come out, well formed, and the graph holds integer kernels.
        network = (out / config["export"]["network"]).read_bytes()
        assert (b"DynamicQuantize" in network or b"MatMulInteger" in network) if fmt == "onnx" else b"quantized" in network
        outputs = loaded.predict(inputs)
        assert len(outputs) == len(inputs)
        assert set(loaded.evaluate(data)) == set(pipe.evaluate(data))
        return
    for name in want:
        if want[name].is_floating_point():
            mask = torch.isfinite(want[name])
            if name == "emissions":  # padded steps hold anything
                lengths = example["input_ids_lengths"]
                mask &= (torch.arange(want[name].shape[1])[None, :] < lengths[:, None])[..., None]
            if name == "log_probs":
                mask &= (torch.arange(want[name].shape[1])[None, :] < want["lengths"][:, None])[..., None]
            assert float((got[name] - want[name])[mask].abs().max()) <= 1e-4
        else:
            assert torch.equal(got[name], want[name])
    _same(task, pipe.predict(inputs), loaded.predict(inputs), 1e-4)
    _same(task, [pipe(inputs[0])], [loaded(inputs[0])], 1e-4)
    _same(task, pipe.predict(inputs, batch_size=1), loaded.predict(inputs, batch_size=1), 1e-4)
    if task == "speech":
        assert pipe.predict(inputs, decoder="beam", beam_size=3) == loaded.predict(inputs, decoder="beam", beam_size=3)
    want_metrics, got_metrics = pipe.evaluate(data), loaded.evaluate(data)
    assert set(want_metrics) == set(got_metrics)
    for key in want_metrics:
        assert abs(want_metrics[key] - got_metrics[key]) <= 1e-4, key


def test_ner_eager_model_finds_entities(saved):
    """The comparisons above are between non-trivial taggers, not two all-O outputs."""
    pipe, _, inputs, _ = saved("ner")
    assert any(out["spans"] for out in pipe.predict(inputs))


@pytest.fixture()
def artefact(saved, tmp_path):
    _, folder, inputs, _ = saved("ner")
    return export_pipeline(folder, tmp_path / "onnx", "onnx"), inputs


def test_a_changed_network_file_is_refused(artefact):
    out, _ = artefact
    network = out / "network.onnx"
    data = bytearray(network.read_bytes())
    data[len(data) // 2] ^= 0xFF
    network.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="network.onnx.*SHA-256"):
        seqlab.load(out)


@pytest.mark.parametrize("change", ["stage_file", "decoder", "extra_file", "missing", "manifest"])
def test_an_edited_artefact_is_refused(artefact, change):
    out, _ = artefact
    if change == "stage_file":
        vocab = next(p for p in (out / "stages").rglob("*") if p.is_file() and "vocab" in str(p))
        vocab.write_text(vocab.read_text() + "Zorro\n")
        match = "SHA-256"
    elif change == "decoder":
        (out / "decoder.safetensors").write_bytes((out / "decoder.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
        match = "decoder.safetensors.*SHA-256"
    elif change == "extra_file":
        (out / "stages" / "00_sentence_tokenizer" / "evil.pkl").write_bytes(b"\x80\x04K\x01.")
        match = "not written by seqlab export"
    elif change == "missing":
        (out / "network.onnx").unlink()
        match = "missing"
    else:
        config = json.loads((out / "config.json").read_text())
        config["export"]["files"]["../outside"] = "0" * 64
        (out / "config.json").write_text(json.dumps(config))
        match = "relative paths"
    with pytest.raises(ModelFileError, match=match):
        seqlab.load(out)


def test_a_network_file_that_is_a_link_is_refused_even_with_the_right_bytes(artefact, tmp_path):
    out, _ = artefact
    copy = tmp_path / "elsewhere.onnx"
    copy.write_bytes((out / "network.onnx").read_bytes())
    (out / "network.onnx").unlink()
    (out / "network.onnx").symlink_to(copy)
    with pytest.raises(ModelFileError, match="symbolic link"):
        seqlab.load(out)


def test_torchscript_artefact_refuses_a_changed_archive(saved, tmp_path):
    _, folder, _, _ = saved("sentiment")
    out = export_pipeline(folder, tmp_path / "ts", "torchscript")
    network = out / "network.torchscript"
    network.write_bytes(network.read_bytes() + b"\0")
    with pytest.raises(ModelFileError, match="SHA-256"):
        seqlab.load(out)


def test_exporting_an_autoregressive_task_is_a_clear_error(tmp_path):
    settings, _ = TINY["lm"](tmp_path / "lm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_recipe(load_recipe(data=settings))
    with pytest.raises(InputError, match=r"the lm task cannot be exported.*exportable tasks: ") as caught:
        export_pipeline(tmp_path / "lm", tmp_path / "out", "onnx")
    named = str(caught.value).split("exportable tasks: ")[1].split(", ")
    assert {"ner", "sentiment", "speech"} <= set(named) and "lm" not in named and "\n" not in str(caught.value)
    assert not (tmp_path / "out" / "config.json").exists()


def test_export_refuses_a_foreign_folder_and_the_model_folder_itself(saved, tmp_path):
    _, folder, _, _ = saved("sentiment")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my notes")
    with pytest.raises(OutputDirError, match="not a seqlab model folder"):
        export_pipeline(folder, foreign, "onnx")
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    with pytest.raises(OutputDirError, match="being exported"):
        export_pipeline(folder, folder, "onnx")
    with pytest.raises(InputError, match="unknown export format"):
        export_pipeline(folder, tmp_path / "x", "tflite")


def test_a_network_the_onnx_exporter_cannot_take_is_a_clear_error_and_torchscript_takes_it(tmp_path):
    """A unidirectional LSTM's final state of packed sequences (pooling: last) does not export to ONNX."""
    torch.manual_seed(0)
    pipe = Pipeline([WordTokenizer(), VocabularyStage(), LabelEncoder()], task="sentiment", device="cpu",
                    model_config={"embedding_dim": 4, "hidden_size": 4, "encoder": "lstm", "pooling": "last"})
    pipe.fit({"text": ["good film", "bad", "fine plot", "dull"], "label": [1, 0, 1, 0]}, train_config={"epochs": 1, "progress": "off"})
    pipe.save(tmp_path / "model")
    with pytest.raises(InputError, match=r"the onnx exporter cannot export this sentiment network .*try --format torchscript") as caught:
        export_pipeline(tmp_path / "model", tmp_path / "onnx", "onnx")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "onnx" / "config.json").exists()
    loaded = seqlab.load(export_pipeline(tmp_path / "model", tmp_path / "ts", "torchscript"))
    _same("sentiment", pipe.predict(["good film", "a bad dull plot"]), loaded.predict(["good film", "a bad dull plot"]), 1e-4)


def test_exporting_again_into_the_same_artefact_replaces_it(saved, tmp_path):
    _, folder, inputs, _ = saved("sentiment")
    out = export_pipeline(folder, tmp_path / "a", "onnx")
    export_pipeline(folder, out, "torchscript", int8=True)
    assert not (out / "network.onnx").exists() and (out / "network.torchscript").is_file()
    assert seqlab.load(out).predict(inputs)


def test_an_exported_pipeline_cannot_be_trained_or_saved(artefact, tmp_path):
    out, inputs = artefact
    pipe = seqlab.load(out)
    with pytest.raises(InputError, match="exported artefact"):
        pipe.fit(toy_data(4), None, {"epochs": 1, "progress": "off"})
    with pytest.raises(InputError, match="exported artefact"):
        pipe.save(tmp_path / "again")
    with pytest.raises(InputError, match="runs on the CPU"):
        seqlab.load(out, device="cuda")
    with pytest.raises(InputError, match="already an exported artefact"):
        export_pipeline(out, tmp_path / "twice", "onnx")


def test_cli_export_then_predict(saved, tmp_path, capsys):
    pipe, folder, _, _ = saved("sentiment")
    out = tmp_path / "cli-onnx"
    assert cli_main(["export", str(folder), "--format", "onnx", "--output", str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    assert cli_main(["predict", str(out), "good film", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["prediction"]["label"] == pipe("good film")["label"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a.txt").write_text("x")
    assert cli_main(["export", str(folder), "--format", "torchscript", "--output", str(foreign)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqlab export:") and "\n" not in err
    assert cli_main(["export", str(tmp_path / "nothing"), "--format", "onnx", "--output", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_eval_reads_data_as_the_source_recipe_did(tmp_path, capsys):
    """The artefact keeps the source's recipe (meta), so `seqlab eval` reads the same data format."""
    settings, _ = TINY["sentiment"](tmp_path / "model")
    run_recipe(load_recipe(data=settings))
    out = tmp_path / "model-onnx"
    assert cli_main(["export", str(tmp_path / "model"), "--format", "onnx"]) == 0
    assert out.is_dir()
    capsys.readouterr()
    dev = "corpora/sentiment/dev.tsv"
    assert cli_main(["eval", str(tmp_path / "model"), dev, "--json"]) == 0
    eager = json.loads(capsys.readouterr().out)
    assert cli_main(["eval", str(out), dev, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(eager, abs=1e-4)


def test_ner_with_document_context_exports_its_extra_input(tmp_path):
    """The document-case ids are one more network input: the exported graph takes them, and a
    document changes its outputs as it changes the eager model's."""
    from tests.tasks.test_ner_documents import headline_documents, pipeline

    torch.manual_seed(0)
    pipe = pipeline(4)
    data = headline_documents(40, seed=0)
    pipe.fit(data, None, {"epochs": 3, "batch_size": 8, "lr": 0.05, "progress": "off"})
    pipe.save(tmp_path / "model")
    loaded = seqlab.load(export_pipeline(tmp_path / "model", tmp_path / "artefact", "onnx", False))
    assert "doc_case" in loaded.model._network_names()
    sentences = data["tokens"][:6]
    _same("ner", pipe.predict(sentences, document=data["document"][:6]), loaded.predict(sentences, document=data["document"][:6]), 1e-4)
    _same("ner", pipe.predict(sentences), loaded.predict(sentences), 1e-4)
