"""Translation task: recipe, subwords, save/load round trip, bad inputs, scores, attention PNG, CLI."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from seqlab import load
from seqlab.cli import main as cli_main
from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.recipe import load_recipe
from seqlab.train.config import TrainConfig
from tests.conftest import REPO
from seqlab.tasks.translation import (
    SubwordConfig, TranslationConfig, TranslationModel, TranslationRecipe, fit_subwords, pieces_to_text,
    save_attention_png, translation_pipeline,
)

TINY_MODEL = {"embedding_dim": 16, "encoder_hidden": 16, "decoder_hidden": 24, "attention_dim": 16, "dropout": 0.1,
              "beam_size": 3}
TINY_SUBWORDS = {"vocab_size": 200, "hard_vocab_limit": False}
SENTENCES = ["A man is riding a bicycle.", "Two dogs are playing in the snow.", "A cat is sleeping on a sofa."]


def _corpus(repo, split="train", n=None):
    en = (repo / "corpora" / "translation" / f"{split}.en").read_text(encoding="utf-8").splitlines()
    de = (repo / "corpora" / "translation" / f"{split}.de").read_text(encoding="utf-8").splitlines()
    return {"text": en[:n], "target": de[:n]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny pipeline trained for a moment on the project's corpus, saved and loaded back."""
    torch.manual_seed(0)
    train, dev = _corpus(REPO, n=160), _corpus(REPO, "dev", n=20)
    pipe = translation_pipeline(train, TINY_SUBWORDS, TINY_MODEL, device="cpu")
    result = pipe.fit(train, dev, {"epochs": 6, "batch_size": 16, "lr": 0.01, "progress": "off", "seed": 1})
    directory = tmp_path_factory.mktemp("translation") / "model"
    pipe.save(directory)
    return pipe, load(directory, device="cpu"), directory, result


def test_recipe_parses_and_names_typos(repo):
    recipe = load_recipe(repo / "pipelines" / "translation.yaml", ["train.epochs=2", "model.beam_size=4"])
    assert isinstance(recipe, TranslationRecipe)
    assert recipe.train.epochs == 2 and recipe.model.beam_size == 4
    assert recipe.subwords.joint and recipe.model.share_embeddings and recipe.model.attention == "bahdanau"
    assert recipe.data.train_source == "corpora/translation/train.en"
    train, dev = recipe.datasets()
    assert len(train) == 400 and len(dev) == 100 and train[0]["text"] and train[0]["target"]
    with pytest.raises(ConfigError, match=r"unknown key 'beam_sise' \(did you mean 'beam_size'\?\)"):
        load_recipe(repo / "pipelines" / "translation.yaml", ["model.beam_sise=3"])
    with pytest.raises(ConfigError, match="beam_size must be >= 1"):
        load_recipe(repo / "pipelines" / "translation.yaml", ["model.beam_size=0"])
    with pytest.raises(ConfigError, match="joint vocabulary"):
        load_recipe(repo / "pipelines" / "translation.yaml", ["subwords.joint=false"])
    with pytest.raises(ConfigError, match="two line-aligned files"):
        recipe.read_eval("corpora/translation/dev.en")


def test_round_trip_gives_identical_output(trained):
    pipe, loaded, _, result = trained
    assert result.history and "dev_bleu" in result.history[-1]
    for kwargs in ({}, {"beam_size": 1}, {"beam_size": 4}):
        assert pipe.predict(SENTENCES, **kwargs) == loaded.predict(SENTENCES, **kwargs)
    a = pipe(SENTENCES[0], return_attention=True)
    b = loaded(SENTENCES[0], return_attention=True)
    assert a == b
    assert isinstance(pipe(SENTENCES[0]), str)
    assert sorted(a) == ["attention", "score", "source_pieces", "target_pieces", "text"]
    assert len(a["attention"]) == len(a["target_pieces"]) and len(a["attention"][0]) == len(a["source_pieces"])
    assert pieces_to_text(a["source_pieces"]) == SENTENCES[0]
    assert pieces_to_text(a["target_pieces"]) == a["text"]
    for row in a["attention"]:
        assert abs(sum(row) - 1.0) < 1e-4
    dev = _corpus(REPO, "dev", n=20)
    assert pipe.evaluate(dev) == loaded.evaluate(dev)


def test_joint_vocabulary_is_stored_once_and_tied(trained):
    pipe, loaded, directory, _ = trained
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    assert config["model"]["source_pieces"] == [] and len(config["model"]["target_pieces"]) == loaded.model.config.target_vocab_size
    assert config["model"]["target_pieces"][:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    net = loaded.model.net
    assert net.output.weight is net.target_embedding.weight and net.source_embedding is net.target_embedding
    assert [(s.kind, s.config.input, s.training_only) for s in loaded.stages] == [
        ("sentencepiece", "text", False), ("sentencepiece", "target", True)]
    assert loaded.stages[0].model_proto == loaded.stages[1].model_proto  # one joint model, saved with each stage


def test_loaded_pipeline_trains_further_on_new_pairs(trained, tmp_path):
    _, _, directory, _ = trained
    again = load(directory, device="cpu")
    before = {k: v.clone() for k, v in again.model.state_dict().items()}
    new_pairs = _corpus(REPO, "dev", n=30)
    result = again.fit(new_pairs, None, {"epochs": 1, "batch_size": 10, "lr": 0.01, "progress": "off"})
    assert result.steps == 3
    changed = [k for k, v in again.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and "net.target_embedding.weight" in changed
    # The stages were not refitted: the vocabulary, and so the weights' shapes, are the saved ones.
    assert again.model.config.target_pieces == load(directory, device="cpu").model.config.target_pieces
    again.save(tmp_path / "tuned")
    assert load(tmp_path / "tuned", device="cpu").predict(SENTENCES) == again.predict(SENTENCES)


def test_recipe_build_reads_no_data(tmp_path):
    recipe = load_recipe(data={"task": "translation", "data": {"train_source": str(tmp_path / "missing.en")}})
    pipe = recipe.build()  # the subword models are fitted in Pipeline.fit, on the data read once
    assert pipe.model is None and not any(s.fitted for s in pipe.stages)


def test_bad_inputs(trained):
    pipe, loaded, _, _ = trained
    for bad in ("", "   "):
        with pytest.raises(InputError, match="empty"):
            loaded(bad)
    for beam in (0, -2):
        with pytest.raises(InputError, match="beam_size"):
            loaded(SENTENCES[0], beam_size=beam)
    with pytest.raises(ConfigError, match="beam_size"):
        TranslationConfig(beam_size=0).validate()
    # Characters the subword model never saw become <unk> and the sentence still translates.
    out = loaded("A man is riding a 自転車 ☃.", return_attention=True)
    assert "<unk>" in out["source_pieces"] and isinstance(out["text"], str)
    # Too long: cut to max_source_tokens, with a warning that says so.
    loaded.model.config.max_source_tokens = 8
    try:
        with pytest.warns(UserWarning, match="max_source_tokens=8"):
            out = loaded(" ".join(SENTENCES * 3), return_attention=True)
        assert len(out["source_pieces"]) == 8
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loaded("A dog.")
    finally:
        loaded.model.config.max_source_tokens = 256
    with pytest.raises(DataError, match="no 'target_ids' column"):
        loaded.model.train_batches({"input_ids": [[5]], "target": ["ein Hund"]}, TrainConfig(), 1)


def test_byte_fallback_spells_unseen_characters(repo):
    train = _corpus(repo, n=120)
    source, target = fit_subwords(train, SubwordConfig(vocab_size=400, byte_fallback=True, hard_vocab_limit=False))
    assert source.model_proto == target.model_proto
    ids = source.encode("Ein Hund in Zürich, 東京.")
    pieces = [source.id_to_piece(i) for i in ids]
    assert "<unk>" not in pieces and any(p.startswith("<0x") for p in pieces)
    assert pieces_to_text(pieces) == source.decode(ids) == "Ein Hund in Zürich, 東京."


def test_pieces_to_text_matches_sentencepiece(repo):
    data = _corpus(repo, n=200)
    source, target = fit_subwords(data, SubwordConfig(joint=False, vocab_size=150, hard_vocab_limit=False))
    assert source is not target and source.pieces != target.pieces
    for text in data["target"][:50] + ["  Zwei   Hunde ", "ÄÖÜ äöü ß", "x ⁇ y", "Über 東京"]:
        ids = target.encode(text)
        assert pieces_to_text([target.id_to_piece(i) for i in ids]) == target.decode(ids), text


def test_separate_vocabularies(repo):
    train = _corpus(repo, n=60)
    pipe = translation_pipeline(train, {"joint": False, "vocab_size": 120, "hard_vocab_limit": False},
                                {**TINY_MODEL, "share_embeddings": False}, device="cpu")
    cfg = pipe.model.config
    assert cfg.source_pieces and cfg.source_pieces != cfg.target_pieces
    assert pipe.model.net.source_embedding is not pipe.model.net.target_embedding
    pipe.fit(train, None, {"epochs": 1, "batch_size": 30, "progress": "off"})
    assert isinstance(pipe("A dog."), str)
    with pytest.raises(ConfigError, match="joint"):
        translation_pipeline(train, {"joint": False, "vocab_size": 120, "hard_vocab_limit": False}, TINY_MODEL)


def test_score_is_detokenised_sacrebleu(trained):
    pipe, _, _, _ = trained
    refs = {"target": ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]}
    perfect = pipe.model.metrics(["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."], refs)
    assert perfect == pytest.approx({"bleu": 100.0, "chrf": 100.0})
    partial = pipe.model.metrics([{"text": "Ein Mann fährt Auto."}, "Zwei Hunde spielen."], refs)
    assert 0.0 < partial["bleu"] < 100.0 and 0.0 < partial["chrf"] < 100.0


def test_attention_png_and_cli(trained, tmp_path, capsys):
    pipe, _, directory, _ = trained
    png = save_attention_png(pipe(SENTENCES[1], return_attention=True), tmp_path / "a" / "att.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    with pytest.raises(InputError, match="return_attention"):
        save_attention_png("Ein Hund.", tmp_path / "x.png")
    out_png = tmp_path / "cli.png"
    assert cli_main(["predict", str(directory), SENTENCES[0], "--attention-png", str(out_png), "--device", "cpu"]) == 0
    assert out_png.is_file()
    assert cli_main(["predict", str(directory), SENTENCES[2], "--json", "--device", "cpu"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(line)["prediction"] == pipe(SENTENCES[2])


def test_model_needs_its_vocabulary():
    with pytest.raises(ConfigError, match="vocabularies"):
        TranslationModel(TranslationConfig(source_vocab_size=10, target_vocab_size=10))
    with pytest.raises(DataError, match="no column 'target'"):
        translation_pipeline({"text": ["a"]})


def test_module_doctests_and_docs_examples_run(repo, monkeypatch):
    import doctest
    import re

    import seqlab.nn.attention
    import seqlab.nn.decoding
    import seqlab.nn.seq2seq
    import seqlab.tasks.translation

    torch.manual_seed(0)
    for module in (seqlab.nn.attention, seqlab.nn.decoding, seqlab.nn.seq2seq, seqlab.tasks.translation):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted >= 2 and result.failed == 0, module.__name__
    doc = repo / "docs" / "translation.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(repo)
    namespace: dict = {}
    for block in blocks:  # the blocks build on each other
        exec(compile(block, str(doc), "exec"), namespace)


def test_corpus_is_reproducible_and_dev_is_unseen(repo, tmp_path):
    import subprocess
    import sys

    folder = repo / "corpora" / "translation"
    subprocess.run([sys.executable, str(folder / "make_corpus.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    for name in ("train.en", "train.de", "dev.en", "dev.de"):
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name
    train, dev = _corpus(repo), _corpus(repo, "dev")
    assert len(train["text"]) == len(train["target"]) == 400 and len(dev["text"]) == len(dev["target"]) == 100
    assert not set(dev["text"]) & set(train["text"])
    assert all(s.endswith(".") and s[0].isupper() for s in train["text"] + train["target"])


def test_choose_length_penalty_keeps_the_best_dev_bleu(trained, repo):
    from seqlab.metrics.translation import bleu
    from seqlab.tasks.translation import choose_length_penalty

    _, _, directory, _ = trained
    pipe = load(directory, device="cpu")  # its own copy: the choice changes the model's config
    dev = _corpus(repo, "dev", n=30)
    rows = choose_length_penalty(pipe, dev["text"], dev["target"], alphas=(0.0, 1.0, 4.0), beam_size=3)
    assert [r["length_alpha"] for r in rows] == [0.0, 1.0, 4.0]
    best = max(rows, key=lambda r: r["bleu"])
    assert pipe.model.config.length_penalty == "gnmt" and pipe.model.config.length_alpha == best["length_alpha"]
    for row in rows:  # each row is the BLEU of the beam decoding with that weight
        pipe.model.config.length_alpha = row["length_alpha"]
        score = bleu(dev["target"], pipe.predict(dev["text"], beam_size=3))
        assert score.score == pytest.approx(row["bleu"]) and score.length_ratio == pytest.approx(row["length_ratio"])
    # A stronger weight never makes the beam's outputs shorter in total.
    assert rows[0]["length_ratio"] <= rows[2]["length_ratio"]
    with pytest.raises(ConfigError, match="length_alpha must be a finite number >= 0"):
        choose_length_penalty(pipe, dev["text"], dev["target"], alphas=(0.5, -1.0))
    with pytest.raises(ConfigError, match="at least one"):
        choose_length_penalty(pipe, dev["text"], dev["target"], alphas=())
    with pytest.raises(DataError, match="2 sources and 1 references"):
        choose_length_penalty(pipe, dev["text"][:2], dev["target"][:1])


def test_encode_sampled_draws_other_cuts_of_the_same_text(repo):
    """Subword regularisation's draws: seeded, different from the best cut, and every draw
    spells the same text; BPE models drop merges instead."""
    from seqlab.text.sentencepiece import SentencePieceTokenizer

    texts = _corpus(repo, n=200)["text"]
    for model_type in ("unigram", "bpe"):
        stage = SentencePieceTokenizer(vocab_size=300, model_type=model_type, hard_vocab_limit=False).fit({"text": texts})
        best = stage.encode(texts)
        draws = stage.encode_sampled(texts, 0.2, seed=3)
        assert draws == stage.encode_sampled(texts, 0.2, seed=3)  # seeded
        assert draws != stage.encode_sampled(texts, 0.2, seed=4)
        assert draws != best and sum(map(len, draws)) > sum(map(len, best))  # other, finer cuts
        assert [stage.decode(d) for d in draws] == [stage.decode(b) for b in best]  # the same text
        with pytest.raises(ConfigError, match=r"alpha must be in \(0, 1\]"):
            stage.encode_sampled(texts, 0.0, seed=1)


def test_subword_sampling_cuts_each_epoch_anew(trained, repo):
    """``subword_sampling``: the training batches hold drawn cuts of the raw text, the same for the
    same epoch and different across epochs, decoding to the same sentences; prediction is unchanged
    (the best cut). A loaded pipeline gets the stages again when it trains further."""
    import copy

    pipe, loaded, _, _ = trained
    train = _corpus(repo, n=48)
    columns = pipe.preprocess(train)
    model = copy.deepcopy(pipe.model)
    model.config.subword_sampling = 0.2
    config = TrainConfig(batch_size=16, seed=1)

    def texts(batches, column):
        rows = [row[:n] for b in batches for row, n in zip(b[column].tolist(), b[f"{column}_lengths"].tolist())]
        return sorted(model.target_text(r) for r in rows), sorted(tuple(r) for r in rows)

    model._subwords = None  # a model that never went through Pipeline.fit
    with pytest.raises(DataError, match="needs the pipeline's subword stages"):
        model.train_batches(columns, config, 1)
    model.attach_stages(pipe.stages)
    epoch1, again, epoch2 = (model.train_batches(columns, config, e) for e in (1, 1, 2))
    fixed = copy.deepcopy(pipe.model).train_batches(columns, config, 1)
    for column, raw in (("input_ids", "text"), ("target_ids", "target")):
        assert texts(epoch1, column) == texts(again, column)
        assert texts(epoch1, column)[1] != texts(epoch2, column)[1] != texts(fixed, column)[1]
        assert texts(epoch1, column)[0] == texts(fixed, column)[0] == sorted(pipe.stages[0].decode(pipe.stages[0].encode(t)) for t in train[raw])
    with pytest.raises(DataError, match=r"no \['target'\] column"):
        model.train_batches({k: v for k, v in columns.items() if k != "target"}, config, 1)
    with pytest.raises(ConfigError, match=r"subword_sampling must be in \[0, 1\]"):
        TranslationConfig(subword_sampling=1.5).validate()

    # Through Pipeline.fit, fresh and loaded: training runs with drawn cuts; prediction uses the best cut.
    before = loaded(SENTENCES)
    loaded.model.config.subword_sampling = 0.2
    loaded.model._subwords = None
    loaded.fit(train, None, {"epochs": 1, "batch_size": 16, "progress": "off", "seed": 1, "lr": 1e-9})
    assert loaded.model._subwords is not None
    assert loaded(SENTENCES) == before  # an lr of 1e-9 moves nothing the greedy/beam output shows
