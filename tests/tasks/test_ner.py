"""NER task: BiLSTM-CRF with character features, schemes, inputs, bad data, metrics, save/load, recipe."""
from __future__ import annotations

import warnings

import pytest
import torch

import seqlab
from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.nn.masking import lengths_to_mask
from seqlab.nn.recurrent import RecurrentEncoder
from seqlab.pipeline import Pipeline
from seqlab.recipe import load_recipe
from seqlab.tasks.ner import NERConfig, NERModel
from seqlab.text.tagged import Sentence, SentenceTokenizer, TagEncoder
from seqlab.text.tagging import spans, tag_set, validate
from seqlab.text.vocab import VocabularyStage
from seqlab.train.config import TrainConfig

SMALL = {"hidden_size": 32, "embedding_dim": 32, "char_hidden_size": 16, "dropout": 0.2}


def recipe_with(repo, *overrides: str):
    sets = [f"model.{k}={v}" for k, v in SMALL.items()]
    sets += ["train.lr=0.01", "train.progress=off", "train.patience=null", "device=cpu", *overrides]
    return load_recipe(repo / "pipelines" / "ner.yaml", sets)


@pytest.fixture(scope="module")
def trained(request):
    """A small tagger trained briefly on corpora/ner (IOB2 data, IOBES training, CRF, char-CNN)."""
    repo = request.config.rootpath
    torch.manual_seed(0)
    recipe = recipe_with(repo, "train.epochs=6")
    pipe = recipe.build()
    train, dev = recipe.datasets()
    pipe.fit(train, dev, recipe.train)
    return pipe, train, dev


def toy_data(n: int = 60) -> dict[str, list]:
    """Capitalised names are PER, 'in X' is LOC: learnable in a few steps."""
    people, places = ["Anna", "Bert", "Cleo", "Dirk"], ["Rome", "Oslo", "Lima"]
    tokens, tags = [], []
    for i in range(n):
        p, q = people[i % 4], places[i % 3]
        if i % 2:
            tokens.append([p, "Smith", "lives", "in", q])
            tags.append(["B-PER", "I-PER", "O", "O", "B-LOC"])
        else:
            tokens.append(["we", "met", p, "in", q, "today"])
            tags.append(["O", "O", "B-PER", "O", "B-LOC", "O"])
    return {"tokens": tokens, "tags": tags}


def toy_pipeline(**model) -> Pipeline:
    cfg = {"embedding_dim": 8, "hidden_size": 8, "char_hidden_size": 4, "char_embedding_dim": 4, "dropout": 0.0,
           "word_dropout": 0.0, **model}
    return Pipeline([SentenceTokenizer(), VocabularyStage(), TagEncoder(scheme="IOB2", target="IOBES")], task="ner", model_config=cfg, device="cpu")


# -- prediction on raw text -------------------------------------------------------------------
def test_raw_text_gives_spans_with_all_fields(trained):
    pipe, _, _ = trained
    out = pipe("Angela Merkel visited Paris.")
    assert out["tokens"] == ["Angela", "Merkel", "visited", "Paris", "."]
    assert out["tags"] == ["B-PER", "I-PER", "O", "B-LOC", "O"]
    assert [(s["type"], s["text"], s["start"], s["end"]) for s in out["spans"]] == [
        ("PER", "Angela Merkel", 0, 2), ("LOC", "Paris", 3, 4)]
    for span in out["spans"]:
        assert set(span) == {"text", "type", "start", "end", "char_start", "char_end", "score"}
        assert out["text"][span["char_start"]:span["char_end"]] == span["text"]
        assert 0.5 < span["score"] <= 1.0


def test_pretokenized_input_api(trained):
    pipe, _, _ = trained
    raw = pipe("Angela Merkel visited Paris.")
    tokens = ["Angela", "Merkel", "visited", "Paris", "."]
    as_dict = pipe({"tokens": tokens})
    as_batch = pipe.predict([tokens, "Angela Merkel visited Paris."])
    assert as_dict["tags"] == raw["tags"] == as_batch[0]["tags"] == as_batch[1]["tags"]
    assert as_dict["text"] == "Angela Merkel visited Paris ."  # tokens joined by spaces
    assert as_dict["spans"][1]["char_start"] == 22 and as_dict["spans"][1]["text"] == "Paris"
    # confidences are the same whichever way the sentence came in
    assert as_dict["spans"][0]["score"] == pytest.approx(raw["spans"][0]["score"], abs=1e-6)
    # a plain list at pipe(...) is a batch of raw texts, as everywhere in seqlab
    assert len(pipe(["Angela Merkel", "Paris"])) == 2


def test_fits_the_training_data_and_finds_entities_on_dev(trained):
    pipe, train, dev = trained
    assert pipe.evaluate(train)["f1"] > 90.0
    assert pipe.evaluate(dev)["f1"] > 60.0


def test_punctuation_and_digit_tokens_just_work(trained):
    pipe, _, _ = trained
    out = pipe.predict([["1996", "-", "08", "22", "..."], ["!", "?"], ["3,000", "%"]])
    assert [len(o["tags"]) for o in out] == [5, 2, 2]
    assert all(set(o["tags"]) <= {"O", *tag_set(["PER", "LOC", "ORG", "MISC"], "IOB2")} for o in out)


# -- schemes ------------------------------------------------------------------------------------
def test_trains_in_iobes_from_iob2_data_and_outputs_valid_iob2(trained):
    pipe, _, dev = trained
    assert pipe.model.config.scheme == "IOBES" and pipe.model.config.input_scheme == "IOB2"
    assert pipe.model.config.tags == tag_set(["LOC", "MISC", "ORG", "PER"], "IOBES")
    for out in pipe.predict([list(t) for t in dev["tokens"][:40]]):
        validate(out["tags"], "IOB2")  # the constrained CRF never outputs an invalid sequence
        assert [(s["type"], s["start"], s["end"]) for s in out["spans"]] == spans(out["tags"], "IOB2")


def test_tag_encoder_reads_iob1_and_iob2_to_the_same_iobes_ids():
    iob2 = [["B-PER", "I-PER", "B-PER", "O", "B-LOC"]]
    iob1 = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]]
    a = TagEncoder(scheme="IOB2", target="IOBES").fit({"tags": iob2})
    b = TagEncoder(scheme="IOB1", target="IOBES").fit({"tags": iob1})
    assert a({"tags": iob2}) == b({"tags": iob1})
    assert [a.tags[i] for i in a({"tags": iob2})["tag_ids"][0]] == ["B-PER", "E-PER", "S-PER", "O", "S-LOC"]
    bilou = TagEncoder(scheme="IOB2", target="BILOU").fit({"tags": iob2})
    assert [bilou.tags[i] for i in bilou({"tags": iob2})["tag_ids"][0]] == ["B-PER", "L-PER", "U-PER", "O", "U-LOC"]


def test_output_scheme_is_a_setting():
    torch.manual_seed(0)
    pipe = toy_pipeline(output_scheme="IOBES")
    pipe.fit(toy_data(), None, {"epochs": 6, "batch_size": 8, "lr": 0.05, "progress": "off"})
    out = pipe({"tokens": ["Anna", "Smith", "lives", "in", "Rome"]})
    assert out["tags"] == ["B-PER", "E-PER", "O", "O", "S-LOC"]


# -- model switches -----------------------------------------------------------------------------
@pytest.mark.parametrize("decoder,chars", [("crf", "lstm"), ("softmax", "cnn"), ("crf", "none")])
def test_decoder_and_char_encoder_switches_learn(decoder, chars):
    torch.manual_seed(0)
    pipe = toy_pipeline(decoder=decoder, char_encoder=chars)
    data = toy_data()
    result = pipe.fit(data, None, {"epochs": 6, "batch_size": 8, "lr": 0.05, "progress": "off"})
    assert (pipe.model.crf is not None) == (decoder == "crf")
    assert (pipe.model.char_encoder is None) == (chars == "none")
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.3 * losses[0], losses
    assert pipe.evaluate(data)["f1"] == 100.0


def test_word_dropout_only_in_training():
    torch.manual_seed(0)
    pipe = toy_pipeline(word_dropout=0.5)
    pipe.fit(toy_data(20), None, {"epochs": 1, "batch_size": 8, "progress": "off"})
    model = pipe.model
    ids = torch.tensor([[4, 5, 6, 7], [8, 9, 10, 0]])
    batch = model._batch([[4, 5, 6, 7], [8, 9, 10]], [["Anna", "Smith", "in", "Rome"], ["we", "met", "Bert"]], None, "cpu")
    model.eval()
    a, _ = model.emissions(batch)
    assert torch.equal(a, model.emissions(batch)[0])  # deterministic in eval mode
    model.train()
    torch.manual_seed(7)
    dropped, mask = model.emissions(batch)
    torch.manual_seed(7)
    replaced = ids.masked_fill((torch.rand(ids.shape) < 0.5) & mask, model.config.unk_id)
    assert (replaced == model.config.unk_id).any()
    model.eval()
    expected, _ = model.emissions(dict(batch, input_ids=replaced))
    assert torch.allclose(dropped, expected, atol=1e-6)  # the same as feeding <unk> at the dropped tokens
    assert not torch.allclose(dropped, a)


def test_lowercase_word_lookup_shares_rows_but_keeps_case_for_characters():
    torch.manual_seed(0)
    pipe = toy_pipeline(lowercase=True, normalize_numbers=True)
    data = {"tokens": [["Rome", "rome", "1996", "2001", "Anna"]], "tags": [["B-LOC", "O", "O", "O", "B-PER"]]}
    pipe.fit(data, None, {"epochs": 1, "batch_size": 8, "progress": "off"})
    vocab, model = pipe.stages[1].vocab, pipe.model
    row = lambda w: int(model.word_map[vocab.token_to_id(w)])  # noqa: E731
    assert row("Rome") == row("rome") and row("1996") == row("2001") and row("Anna") != row("Rome")
    assert {"R", "r"} <= set(model.config.chars)


def test_word2vec_initialises_the_word_rows():
    from seqlab.embeddings.word2vec import Word2VecStage

    torch.manual_seed(0)
    w2v = Word2VecStage(dim=8, epochs=1)
    pipe = Pipeline([SentenceTokenizer(), VocabularyStage(), w2v, TagEncoder()], task="ner", device="cpu",
                    model_config={"embedding_dim": 8, "hidden_size": 4, "freeze_embeddings": True})
    pipe.fit(toy_data(20), None, {"epochs": 1, "batch_size": 8, "progress": "off"})
    vocab, model = pipe.stages[1].vocab, pipe.model
    row = model.word_map[vocab.token_to_id("Rome")]
    assert torch.allclose(model.word_embedding.weight[row], torch.tensor(w2v.vectors["Rome"]), atol=1e-6)


# -- long, empty and bad input ------------------------------------------------------------------
def test_long_sentences_are_tagged_in_chunks(trained):
    pipe, _, dev = trained
    model = pipe.model
    words = [t for sentence in dev["tokens"][:40] for t in sentence]  # ~550 tokens, longer than any seen
    whole = pipe({"tokens": words})
    assert len(whole["tags"]) == len(words)
    old = model.config.chunk_length
    try:
        model.config.chunk_length = 50
        pieces = model._segments(words)
        assert len(pieces) > len(words) // 50 and all(0 < e - s <= 50 for s, e in pieces)
        cut_early = [(s, e) for s, e in pieces[:-1] if e - s < 50]
        assert cut_early and all(words[e - 1] == "." for s, e in cut_early)  # after a full stop where possible
        chunked = pipe({"tokens": words})
        alone = [pipe({"tokens": words[s:e]})["tags"] for s, e in pieces]
        assert chunked["tags"] == [t for part in alone for t in part]
        validate(chunked["tags"], "IOB2")
    finally:
        model.config.chunk_length = old


def test_long_training_sentences_are_cut_with_valid_tags():
    from seqlab.train import TrainConfig

    pipe = toy_pipeline(chunk_length=4)
    data = {"tokens": [["a", "b", "Anna", "Smith", "Jones", "c", "in", "Rome"]],
            "tags": [["O", "O", "B-PER", "I-PER", "I-PER", "O", "O", "B-LOC"]]}
    pipe.fit(data, None, {"epochs": 1, "batch_size": 8, "progress": "off"})
    batches = list(pipe.model.train_batches(pipe.preprocess(data), TrainConfig(batch_size=1), 1))
    rows = sorted([pipe.model.config.tags[t] for t in b["tag_ids"][0].tolist()] for b in batches)
    # the PER span crossing the cut is closed at it, so both chunks are valid IOBES for the constrained CRF
    assert rows == sorted([["O", "O", "B-PER", "E-PER"], ["S-PER", "O", "O", "S-LOC"]])


def test_empty_sentences(trained):
    pipe, _, _ = trained
    for bad in ("", "   ", [], {"tokens": []}, ["Paris", ""], 42, {"words": ["a"]}):
        with pytest.raises(InputError, match="input 0"):
            pipe.predict([bad])
    data = toy_data(10)
    data["tokens"].append([])
    data["tags"].append([])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        toy_pipeline().fit(data, None, {"epochs": 1, "batch_size": 4, "progress": "off"})
    assert any("skipped 1 empty sentence" in str(w.message) for w in caught)


def test_tags_outside_the_scheme_are_a_data_error_naming_sentence_and_position():
    data = toy_data(4)
    data["tags"][2] = ["O", "O", "S-PER", "O", "B-LOC", "O"]  # S- is not an IOB2 prefix
    with pytest.raises(DataError, match=r"sentence 2: tag 'S-PER' at position 2"):
        toy_pipeline().fit(data, None, {"epochs": 1, "progress": "off"})
    data["tags"][2] = ["O", "O", "PER", "O", "B-LOC", "O"]
    with pytest.raises(DataError, match=r"sentence 2: tag 'PER' at position 2"):
        toy_pipeline().fit(data, None, {"epochs": 1, "progress": "off"})
    data = toy_data(4)
    data["tags"][1] = data["tags"][1][:-1]
    with pytest.raises(DataError, match="sentence 1: 5 tokens but 4 tags"):
        toy_pipeline().fit(data, None, {"epochs": 1, "progress": "off"})
    with pytest.raises(DataError, match="no entity"):
        toy_pipeline().fit({"tokens": [["a"]], "tags": [["O"]]}, None, {"epochs": 1, "progress": "off"})
    with pytest.raises(DataError, match="invalid in IOB2"):
        TagEncoder(strict=True).fit({"tags": [["O", "I-PER"]]})


# -- metrics, files, recipe ---------------------------------------------------------------------
def test_entity_metrics_equal_seqeval_on_the_model_outputs(trained):
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    pipe, _, dev = trained
    gold = [list(t) for t in dev["tags"]]
    predicted = [o["tags"] for o in pipe.predict([list(t) for t in dev["tokens"]])]
    metrics = pipe.evaluate(dev)
    assert metrics["f1"] == pytest.approx(100 * f1_score(gold, predicted))
    assert metrics["precision"] == pytest.approx(100 * precision_score(gold, predicted))
    assert metrics["recall"] == pytest.approx(100 * recall_score(gold, predicted))
    report = classification_report(gold, predicted, output_dict=True)
    for kind in ("PER", "LOC", "ORG", "MISC"):
        assert metrics[f"f1_{kind}"] == pytest.approx(100 * report[kind]["f1-score"])
        assert metrics[f"recall_{kind}"] == pytest.approx(100 * report[kind]["recall"])
    assert 0 < metrics["f1"] < 100


def test_save_load_round_trip_is_identical(trained, tmp_path):
    pipe, _, dev = trained
    pipe.save(tmp_path / "ner")
    loaded = seqlab.load(tmp_path / "ner", device="cpu")
    sentences = [list(t) for t in dev["tokens"][:30]] + ["Angela Merkel visited Paris."]
    assert loaded.predict(sentences) == pipe.predict(sentences)
    assert loaded.evaluate(dev) == pipe.evaluate(dev)
    assert loaded.model.config == pipe.model.config


def test_model_needs_fitted_stages_and_config_is_checked():
    with pytest.raises(ConfigError, match="vocab_size"):
        NERModel(NERConfig())
    with pytest.raises(ConfigError, match="word_dropout"):
        NERConfig(word_dropout=1.0).validate()
    with pytest.raises(ConfigError, match="output_scheme"):
        NERConfig(output_scheme="IOB").validate()


def test_recipe_parses_and_refuses_typos(repo):
    recipe = load_recipe(repo / "pipelines" / "ner.yaml")
    assert recipe.scheme == "IOBES" and recipe.model.decoder == "crf" and recipe.model.char_encoder == "cnn"
    assert recipe.train.optimizer == "adam" and recipe.data.tag_column == -1
    recipe = load_recipe(repo / "pipelines" / "ner.yaml", ["scheme=bioes", "model.decoder=softmax", "data.scheme=iob1"])
    assert recipe.scheme == "IOBES" and recipe.model.decoder == "softmax" and recipe.data.scheme == "IOB1"
    with pytest.raises(ConfigError, match=r"unknown key 'char_encodr' \(did you mean 'char_encoder'\?\)"):
        load_recipe(repo / "pipelines" / "ner.yaml", ["model.char_encodr=lstm"])
    with pytest.raises(ConfigError, match="ambiguous"):
        load_recipe(repo / "pipelines" / "ner.yaml", ["scheme=IOB"])
    with pytest.raises(ConfigError, match="vocabulary"):
        load_recipe(repo / "pipelines" / "ner.yaml", ["vocabulary.output=ids"])


def test_recipe_reads_conll2003_layout(shared_corpora):
    recipe = load_recipe(data={"task": "ner", "data": {"train": str(shared_corpora / "ner/conll2003/valid.txt"),
                                                       "dev": None, "limit_train": 3}})
    train, dev = recipe.datasets()
    assert dev is None and len(train) == 3
    assert train[0]["tokens"][:2] == ["CRICKET", "-"] and len(train[0]["tags"]) == len(train[0]["tokens"])


def test_sentence_offsets_follow_the_raw_text():
    s = Sentence.from_text("New  York, NY", ["New", "York", ",", "NY"])
    assert s.offsets == [(0, 3), (5, 9), (9, 10), (11, 13)]


# -- presenting and grapheme clusters (issue #17) ------------------------------------------------
def test_format_output_marks_the_found_entities_inline(trained):
    import re

    pipe, _, _ = trained
    out = pipe("Angela Merkel visited Paris.")
    shown = pipe.model.format_output(out)
    scores = [f"{s['score']:.2f}" for s in out["spans"]]
    assert shown == f"[Angela Merkel](PER {scores[0]}) visited [Paris](LOC {scores[1]})."
    assert re.fullmatch(r"\[Angela Merkel\]\(PER (0\.[5-9]\d|1\.00)\) visited \[Paris\]\(LOC (0\.[5-9]\d|1\.00)\)\.", shown)
    assert pipe.model.format_output({"text": "it rained", "spans": []}) == "it rained  (no entities)"


def test_a_flag_is_one_token_and_never_half_of_a_span(trained):
    pipe, _, _ = trained
    flag = "\U0001F1E9\U0001F1EA"  # 🇩🇪: two regional indicators
    out = pipe(f"Angela Merkel {flag} visited Paris.")
    assert out["tokens"] == ["Angela", "Merkel", flag, "visited", "Paris", "."]
    for span in out["spans"]:
        indicators = sum(0x1F1E6 <= ord(c) <= 0x1F1FF for c in span["text"])
        assert indicators % 2 == 0, span
        assert out["text"][span["char_start"]:span["char_end"]] == span["text"]


def test_one_sentence_at_a_time_equals_a_padded_batch(trained):
    """Batch 1 takes the unpadded paths (char features reshaped, one fused BiLSTM call, CRF without
    masks); a padded batch the general ones: same tags and spans, scores to float rounding."""
    pipe, _, dev = trained
    sentences = [list(t) for t in dev["tokens"]][:12]
    batched = pipe.predict(sentences, batch_size=len(sentences))
    assert len({len(s) for s in sentences}) > 1  # the batch really is padded
    for sentence, together in zip(sentences, batched):
        alone = pipe.predict([sentence], batch_size=1)[0]
        assert alone["tags"] == together["tags"]
        assert [{k: v for k, v in s.items() if k != "score"} for s in alone["spans"]] == \
               [{k: v for k, v in s.items() if k != "score"} for s in together["spans"]]
        for a, b in zip(alone["spans"], together["spans"]):
            assert abs(a["score"] - b["score"]) < 1e-5


def test_a_mixed_batch_cut_by_padding_cost_predicts_as_one_padded_batch(trained, monkeypatch):
    """On a CPU ``Pipeline.predict`` cuts a batch of mixed lengths into tighter ones
    (``NERModel.padded_batch_costs``); the outputs are those of the one padded batch."""
    from seqlab.data.collate import split_padded

    pipe, _, dev = trained
    long = [w for t in dev["tokens"][:12] for w in t][:80]
    sentences = [list(t) for t in dev["tokens"]][:12] + [["Paris"], ["Ilse", "Meyer", "spoke", "."], long, long[:70]]
    lengths = [len(s) for s in sentences]
    groups = split_padded(range(len(sentences)), lengths, *type(pipe.model).padded_batch_costs)
    assert len(groups) > 1 and any(len({lengths[i] for i in g}) > 1 for g in groups)  # cut, and still padded
    cut = pipe.predict(sentences, batch_size=len(sentences))
    monkeypatch.setattr(type(pipe.model), "padded_batch_costs", None)
    whole = pipe.predict(sentences, batch_size=len(sentences))
    for a, b in zip(cut, whole):
        assert a["tags"] == b["tags"]
        assert [s["text"] for s in a["spans"]] == [s["text"] for s in b["spans"]]
        for x, y in zip(a["spans"], b["spans"]):
            assert abs(x["score"] - y["score"]) < 1e-5


def test_singleton_dropout_turns_only_words_seen_once_into_unk(trained):
    """Lample et al.'s singleton replacement: in training, a token whose (lower-cased) word occurs
    once in the training data becomes <unk> with probability ``singleton_dropout``; other words never
    (word dropout off), and nothing changes in eval mode."""
    import copy

    pipe, train, _ = trained
    model = copy.deepcopy(pipe.model)
    cfg = model.config
    columns = pipe.preprocess({"tokens": [list(t) for t in train["tokens"]], "tags": list(train["tags"])})
    rows = model.word_map[torch.tensor([i for r in columns["input_ids"] for i in r])]
    counts = torch.bincount(rows, minlength=cfg.word_vocab_size)
    expected = counts == 1
    expected[[cfg.pad_id, cfg.unk_id]] = False
    assert torch.equal(model.singleton_rows(columns["input_ids"]), expected)
    assert 0 < int(expected.sum()) < int((counts > 0).sum())  # some words once, some more often

    cfg.word_dropout, cfg.singleton_dropout = 0.0, 0.999999
    batch = next(iter(model.train_batches(columns, TrainConfig(batch_size=64), 1)))
    seen = []
    model.word_embedding.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    model.train()
    model.emissions(batch)
    mask = lengths_to_mask(batch["input_ids_lengths"], batch["input_ids"].shape[1])
    before = model.word_map[batch["input_ids"]]
    rare = expected[before] & mask
    assert bool(rare.any())
    unk_row = int(model.word_map[cfg.unk_id])
    assert bool((seen[0][rare] == unk_row).all())
    assert torch.equal(seen[0][~rare], before[~rare])
    model.eval()
    model.emissions(batch)
    assert torch.equal(seen[1], before)


def test_singleton_dropout_is_checked():
    with pytest.raises(ConfigError, match="singleton_dropout"):
        NERConfig(singleton_dropout=1.0).validate()
