"""Language model: TBPTT training path, perplexity, weight tying, generation, bad input, recipe, CLI."""
from __future__ import annotations

import doctest
import math
import random
import re
from pathlib import Path

import pytest
import torch

import seqlab
from seqlab.core.config import from_dict
from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.pipeline import Pipeline
from seqlab.recipe import load_recipe
from seqlab.tasks import lm as lm_module
from seqlab.tasks.lm import (
    LanguageModel, LMConfig, LMRecipe, build_stream, generate_text, sampling_distribution,
)
from seqlab.text.tokenizers import WordTokenizer
from seqlab.text.vocab import VocabularyStage
from seqlab.train import TrainConfig

REPO = Path(__file__).resolve().parents[2]
FAST = {"progress": "off", "seed": 0}


def toy_lines(n: int, seed: int = 0) -> list[str]:
    """Short sentences from a tiny grammar: enough structure to learn in a few epochs."""
    rng = random.Random(seed)
    subjects, verbs, objects = ["the cat", "a dog", "the bird"], ["sees", "likes", "chases"], ["the ball", "a mouse", "the tree"]
    return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} ." for _ in range(n)]


def small_model(**overrides) -> LanguageModel:
    settings = dict(embedding_dim=8, hidden_size=8, num_layers=2, dropout=0.0, vocab_size=12, bptt=4)
    settings.update(overrides)
    return LanguageModel(from_dict(LMConfig, settings))


def random_rows(n: int, vocab: int = 12, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(4, vocab) for _ in range(rng.randint(1, 6))] for _ in range(n)]


@pytest.fixture(scope="module")
def word_pipe():
    torch.manual_seed(0)
    pipe = Pipeline([WordTokenizer(lowercase=True), VocabularyStage()], task="lm", device="cpu",
                    model_config={"embedding_dim": 16, "hidden_size": 16, "num_layers": 1, "dropout": 0.0, "bptt": 6})
    pipe.fit({"text": toy_lines(120)}, {"text": toy_lines(20, seed=1)},
             {**FAST, "epochs": 3, "batch_size": 4, "lr": 0.01})
    return pipe


# -- learning ------------------------------------------------------------------------------------
def test_learns_a_repeating_pattern_to_perplexity_near_one():
    torch.manual_seed(0)
    pipe = Pipeline([WordTokenizer(), VocabularyStage()], task="lm", device="cpu",
                    model_config={"embedding_dim": 16, "hidden_size": 16, "num_layers": 1, "dropout": 0.0, "bptt": 8})
    data = {"text": ["a b c d e"] * 60}
    result = pipe.fit(data, {"text": ["a b c d e"] * 10}, {**FAST, "epochs": 25, "batch_size": 4, "lr": 0.03})
    first, best = result.history[0]["dev_perplexity"], result.best_metrics["perplexity"]
    assert first > 2.0, result.history[0]
    assert best < 1.15, result.best_metrics
    assert pipe.evaluate({"text": ["a b c d e"] * 10})["perplexity"] == pytest.approx(best)
    # The pattern continues: after "a b" come "c d e", then the end of the line.
    out = pipe("a b", top_k=1)
    assert out["continuation"] == "c d e" and out["stopped_by"] == "eos", out


def test_train_batches_cover_the_stream_in_order_and_count_tokens():
    model = small_model(bptt=3)
    rows = random_rows(10)
    batches = model.train_batches({"input_ids": rows}, TrainConfig(batch_size=2), epoch=1)
    stream, _ = build_stream(rows, model.config.eos_id)
    matrix = stream[: stream.numel() // 2 * 2].view(2, -1)
    assert torch.equal(torch.cat([b["input_ids"] for b in batches], 1), matrix[:, :-1])
    assert torch.equal(torch.cat([b["targets"] for b in batches], 1), matrix[:, 1:])
    assert [b["window_index"] for b in batches] == list(range(len(batches)))
    assert sum(int(b["input_ids_lengths"].sum()) for b in batches) == matrix[:, 1:].numel()


def test_shuffle_rows_changes_order_per_epoch_deterministically():
    model = small_model(shuffle_rows=True)
    rows = [[4 + i % 8] for i in range(40)]
    config = TrainConfig(batch_size=2, seed=5)
    one = model.train_batches({"input_ids": rows}, config, epoch=1)[0]["input_ids"]
    again = model.train_batches({"input_ids": rows}, config, epoch=1)[0]["input_ids"]
    other = model.train_batches({"input_ids": rows}, config, epoch=2)[0]["input_ids"]
    assert torch.equal(one, again) and not torch.equal(one, other)


# -- the carried state ------------------------------------------------------------------------------
@pytest.mark.parametrize("k1,k2", [(4, None), (3, 5), (2, 6)])
def test_carried_state_equals_an_untruncated_pass(k1, k2):
    torch.manual_seed(1)
    model = small_model(bptt=k1, bptt_k2=k2, cell="lstm")
    rows = random_rows(12, seed=2)
    batches = model.train_batches({"input_ids": rows}, TrainConfig(batch_size=3), epoch=1)
    model.tbptt_state = (torch.full((2, 3, 8), 5.0), torch.full((2, 3, 8), 5.0))  # window 0 must reset this
    pieces = []
    for batch in batches:
        logits, targets = model.window_logits(batch)
        pieces.append(logits)
        # Detached between windows (None while the next window still starts at step 0).
        assert model.tbptt_state is None or all(not s.requires_grad for s in model.tbptt_state)
    windowed = torch.cat(pieces, 1)
    stream, _ = build_stream(rows, model.config.eos_id)
    matrix = stream[: stream.numel() // 3 * 3].view(3, -1)
    full, _ = model.forward_stream(matrix[:, :-1])
    assert windowed.shape == full.shape
    assert torch.allclose(windowed, full, atol=1e-5)


def test_reset_per_row_equals_reading_each_row_from_a_zero_state():
    torch.manual_seed(2)
    model = small_model(bptt=4, cell="gru", reset_state_per_row=True)
    rows = random_rows(9, seed=3)
    batches = model.train_batches({"input_ids": rows}, TrainConfig(batch_size=2), epoch=1)
    windowed = torch.cat([model.window_logits(b)[0] for b in batches], 1)
    stream, starts = build_stream(rows, model.config.eos_id)
    n = stream.numel() // 2
    matrix, starts = stream[: 2 * n].view(2, n), starts[: 2 * n].view(2, n)
    # Step by step, zeroing a row's state exactly where one of its lines begins.
    state, steps = None, []
    for t in range(n - 1):
        if state is not None:
            state = torch.where(starts[:, t].view(1, 2, 1), torch.zeros_like(state), state)
        out, state = model.forward_stream(matrix[:, t : t + 1], state)
        steps.append(out)
    assert torch.allclose(windowed, torch.cat(steps, 1), atol=1e-5)
    assert not torch.allclose(windowed, model.forward_stream(matrix[:, :-1])[0], atol=1e-3)  # the resets matter


def test_loss_is_the_mean_cross_entropy_of_the_new_tokens():
    torch.manual_seed(3)
    model = small_model(bptt=3, bptt_k2=5)
    batches = model.train_batches({"input_ids": random_rows(10)}, TrainConfig(batch_size=2), epoch=1)
    model(batches[0])
    logits, targets = model.window_logits(batches[1])
    model.tbptt_state = None
    model(batches[0])
    loss = model(batches[1])
    assert targets.shape[1] == 3 and batches[1]["loss_from"] == 2
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 12), targets.reshape(-1))
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)


# -- perplexity ----------------------------------------------------------------------------------
def hand_nll(model: LanguageModel, stream: torch.Tensor) -> tuple[float, int]:
    logits, _ = model.forward_stream(stream[:-1].view(1, -1))
    logp = logits[0].log_softmax(-1)
    return float(-logp.gather(1, stream[1:].view(-1, 1)).sum()), stream.numel() - 1


@torch.no_grad()
def test_perplexity_is_exp_of_the_mean_nll_over_all_tokens():
    torch.manual_seed(4)
    model = small_model(bptt=3, dropout=0.5).train()  # perplexity must switch dropout off
    rows = random_rows(7, seed=5)
    stream, _ = build_stream(rows, model.config.eos_id)
    model.eval()
    total, count = hand_nll(model, stream)
    model.train()
    result = model.perplexity(rows, batch_size=1)
    assert model.training  # mode restored
    assert result["tokens"] == count == sum(len(r) + 1 for r in rows)
    assert result["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-5)
    # Three parallel pieces, each from a zero state; the padded tail is not counted.
    model.eval()
    steps = -(-count // 3)
    pieces = [stream[b * steps : b * steps + steps + 1] for b in range(3)]
    sums = [hand_nll(model, piece) for piece in pieces]
    assert sum(n for _, n in sums) == count
    three = model.perplexity(rows, batch_size=3)
    assert three["perplexity"] == pytest.approx(math.exp(sum(s for s, _ in sums) / count), rel=1e-5)
    # A micro-average, not the mean of the pieces' perplexities.
    assert three["perplexity"] != pytest.approx(sum(math.exp(s / n) for s, n in sums) / 3, rel=1e-4)


# -- weight tying and files ---------------------------------------------------------------------------
def test_weight_tying_shares_one_parameter_and_checks_sizes():
    model = small_model(tie_weights=True)
    assert model.decoder.weight is model.embedding.weight
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in small_model(tie_weights=False).parameters()) - 12 * 8
    with pytest.raises(ConfigError, match=r"embedding_dim \(8\) must equal hidden_size \(16\)"):
        small_model(hidden_size=16)
    untied = small_model(hidden_size=16, tie_weights=False)
    assert untied.decoder.weight.shape == (12, 16)


def test_tied_model_survives_save_and_load_with_identical_generation(word_pipe, tmp_path):
    model = word_pipe.model
    assert model.decoder.weight is model.embedding.weight
    word_pipe.save(tmp_path / "lm")
    loaded = seqlab.load(tmp_path / "lm", device="cpu")
    assert loaded.model.decoder.weight is loaded.model.embedding.weight
    assert torch.equal(loaded.model.embedding.weight, model.embedding.weight)
    settings = dict(max_tokens=12, temperature=1.3, seed=7, stop_at_eos=False)
    assert loaded("the cat", **settings) == word_pipe("the cat", **settings)
    ids = [4, 5]
    assert loaded.model.generate(ids, 10, 1.0, None, 3) == model.generate(ids, 10, 1.0, None, 3)
    dev = {"text": toy_lines(10, seed=9)}
    assert loaded.evaluate(dev)["perplexity"] == pytest.approx(word_pipe.evaluate(dev)["perplexity"], rel=1e-6)


# -- generation --------------------------------------------------------------------------------
def test_sampling_distribution_temperature_and_top_k():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0, 0.0])
    for temperature in (0.5, 1.0, 2.0):
        assert torch.allclose(sampling_distribution(logits, temperature), (logits / temperature).softmax(-1))
    entropy = [float(-(p * p.clamp_min(1e-30).log()).sum()) for p in
               (sampling_distribution(logits, t) for t in (0.25, 0.5, 1.0, 2.0))]
    assert entropy == sorted(entropy)  # hotter → flatter
    top2 = sampling_distribution(logits, 1.0, top_k=2)
    assert top2.nonzero().flatten().tolist() == [0, 3]
    assert torch.allclose(top2[[0, 3]], logits[[0, 3]].softmax(-1))
    banned = sampling_distribution(logits, 1.0, top_k=2, banned=[3])
    assert banned.nonzero().flatten().tolist() == [0, 2]
    draws = torch.multinomial(top2, 500, replacement=True, generator=torch.Generator().manual_seed(0))
    assert set(draws.tolist()) == {0, 3}


@torch.no_grad()
@pytest.mark.parametrize("top_k", [1, 3])
def test_generation_samples_only_among_the_top_k(top_k):
    torch.manual_seed(5)
    model = small_model(vocab_size=30, dropout=0.3).eval()
    banned = [model.config.pad_id, model.config.bos_id]
    for seed in range(4):
        prompt = [5, 9]
        out = model.generate(prompt, max_tokens=12, temperature=2.0, top_k=top_k, seed=seed, stop_at_eos=False)
        assert len(out) == 12
        context = [model.config.eos_id, *prompt]
        for token in out:
            logits, _ = model.forward_stream(torch.tensor([context]))
            last = logits[0, -1].index_fill(0, torch.tensor(banned), -math.inf)
            assert token in last.topk(top_k).indices.tolist()
            context.append(token)


@torch.no_grad()
def test_generation_seed_temperature_and_greedy():
    torch.manual_seed(6)
    model = small_model(vocab_size=30)
    a = model.generate([4], max_tokens=20, temperature=1.5, seed=11, stop_at_eos=False)
    assert a == model.generate([4], max_tokens=20, temperature=1.5, seed=11, stop_at_eos=False)
    assert a != model.generate([4], max_tokens=20, temperature=1.5, seed=12, stop_at_eos=False)
    greedy = model.generate([4], max_tokens=20, top_k=1, seed=0, stop_at_eos=False)
    assert model.generate([4], max_tokens=20, temperature=1e-4, seed=99, stop_at_eos=False) == greedy
    # Spread the logits (an untrained model's are nearly flat); id 29 is then the likeliest.
    model.decoder.bias.copy_(torch.linspace(0.0, 30.0, 30))
    def first_tokens(temperature):
        return [model.generate([4], max_tokens=1, temperature=temperature, seed=s, stop_at_eos=False)[0] for s in range(40)]
    cold, hot = first_tokens(0.1), first_tokens(10.0)
    assert cold.count(29) == 40 and hot.count(29) <= 12 and len(set(hot)) >= 10
    assert model.config.pad_id not in hot and model.config.bos_id not in hot


def test_pipeline_generation_through_keyword_columns(word_pipe):
    out = word_pipe("the cat", temperature=0.8, top_k=3, max_tokens=5, seed=1, stop_at_eos=False)
    assert set(out) == {"text", "continuation", "tokens", "stopped_by", "unknown"}
    assert len(out["tokens"]) == 5 and out["stopped_by"] == "max_tokens"
    assert out["text"].startswith("the cat") and out["text"].endswith(out["continuation"])
    both = word_pipe(["the cat", "a dog"], seed=2, max_tokens=4)
    assert both[0] == word_pipe("the cat", seed=2, max_tokens=4)  # batching does not change a row
    assert generate_text(word_pipe, "the cat", seed=2, max_tokens=4) == both[0]
    assert generate_text(word_pipe, ["the cat", "a dog"], seed=2, max_tokens=4) == both


def test_char_and_subword_levels_build_train_and_generate():
    torch.manual_seed(0)
    lines = {"text": toy_lines(60)}
    for level in ("char", "subword"):
        recipe = from_dict(LMRecipe, {
            "level": level, "sentencepiece": {"vocab_size": 40, "model_type": "bpe"}, "device": "cpu",
            "model": {"embedding_dim": 12, "hidden_size": 12, "num_layers": 1, "bptt": 10},
            "train": {**FAST, "epochs": 1, "batch_size": 4},
        })
        pipe = recipe.build()
        pipe.fit(lines, lines, recipe.train)
        out = pipe("the ca", seed=0, max_tokens=6, stop_at_eos=False)
        config = pipe.model.config
        if level == "char":
            assert config.detokenize == "concat" and out["text"] == "the ca" + out["continuation"]
            assert "".join(out["tokens"]) == out["continuation"]
        else:
            assert config.detokenize == "sentencepiece" and config.vocab_size == len(config.tokens)
            assert out["text"].startswith("the ca") and "\u2581" not in out["text"]


def test_detokenize_modes():
    model = small_model(vocab_size=8, tokens=["<pad>", "<unk>", "<bos>", "<eos>", "a", "b", "\u2581x", "y"])
    assert model.detokenize([4, 5, 3, 4]) == "a b\na"
    model.config.detokenize = "concat"
    assert model.detokenize([4, 5, 0, 3, 4]) == "ab\na"
    assert model._join_prompt("a ", [4], [5, 3, 4], "b\na") == "a b\na"
    model.config.detokenize = "sentencepiece"
    assert model.detokenize([6, 7, 6]) == "xy x"
    # A piece without the word-start mark continues the prompt's last word.
    assert model._join_prompt("the x", [6], [7, 6], model.detokenize([7, 6])) == "the xy x"


# -- bad input ---------------------------------------------------------------------------------
def test_bad_window_settings_are_config_errors():
    for bad in (0, -3):
        with pytest.raises(ConfigError, match="bptt"):
            from_dict(LMConfig, {"bptt": bad})
    with pytest.raises(ConfigError, match="bptt_k2 must be null or >= bptt=5"):
        from_dict(LMConfig, {"bptt": 5, "bptt_k2": 3})
    model = small_model(bptt=20)
    with pytest.raises(ConfigError, match=r"model.bptt=20 is longer than the training stream.*lower model.bptt"):
        model.train_batches({"input_ids": random_rows(4)}, TrainConfig(batch_size=2), epoch=1)


def test_a_stream_shorter_than_one_batch_is_a_data_error():
    model = small_model(bptt=1)
    with pytest.raises(DataError, match=r"fewer than 2 per stream for 32 parallel streams"):
        model.train_batches({"input_ids": [[4, 5], [6]]}, TrainConfig(batch_size=32), epoch=1)
    with pytest.raises(DataError, match="no rows"):
        model.perplexity([])
    with pytest.raises(DataError, match="expected a list of token ids"):
        build_stream(["ab"], 3)


def test_unknown_prompt_words_warn_or_refuse(word_pipe, caplog):
    import re
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean log line, not a UserWarning with a source line
        with caplog.at_level("WARNING", logger="seqlab.tasks.lm"):
            out = word_pipe("the zebra", seed=0, max_tokens=3)
    messages = [r.getMessage() for r in caplog.records if r.name == "seqlab.tasks.lm"]
    assert len(messages) == 1 and "\n" not in messages[0]
    assert re.fullmatch(r"seqlab: prompt 0 'the zebra': 1 token\(s\) not in the vocabulary \('zebra'\); they are read as <unk>",
                        messages[0])
    assert out["unknown"] == ["zebra"]
    with pytest.raises(InputError, match=r"'zebra'.*on_unknown='warn'"):
        word_pipe("the zebra", on_unknown="error")
    with pytest.raises(InputError, match="on_unknown='ignore' is not one of 'warn', 'error'"):
        word_pipe("the cat", on_unknown="ignore")


def test_bad_sampling_settings(word_pipe):
    model = word_pipe.model
    for bad in (0, -1.0):
        with pytest.raises(InputError, match="temperature must be a finite number > 0"):
            model.generate([4], temperature=bad)
    with pytest.raises(InputError, match="temperature=nan is not finite"):
        model.generate([4], temperature=float("nan"))
    with pytest.raises(InputError, match="temperature"):
        word_pipe("the cat", temperature=0)
    for bad in (0, -2, 1.5):
        with pytest.raises(InputError, match=r"top_k=\S+ is (out of range|not an integer); give an integer >= 1"):
            model.generate([4], top_k=bad)
    with pytest.raises(InputError, match=r"max_tokens=0 is out of range; give an integer in \[1, 10,000\]"):
        model.generate([4], max_tokens=0)
    with pytest.raises(InputError, match=r"max_tokens=1000000000 is out of range"):
        word_pipe("the cat", max_tokens=10**9)
    with pytest.raises(ConfigError, match=r"max_tokens=1000000000 is above the limit of 10,000"):
        from_dict(LMConfig, {"generation": {"max_tokens": 1e9}})
    with pytest.raises(InputError, match=r"prompt id 999 at position 1"):
        model.generate([4, 999])
    with pytest.raises(ConfigError, match="generation: temperature"):
        from_dict(LMConfig, {"generation": {"temperature": 0}})
    with pytest.raises(ConfigError, match="generation: top_k"):
        from_dict(LMConfig, {"generation": {"top_k": 0}})
    with pytest.raises(InputError, match="did you mean 'temperature'"):
        generate_text(word_pipe, "the cat", temprature=0.5)
    with pytest.raises(InputError, match="did you mean 'temperature'"):
        word_pipe("the cat", temprature=0.5)
    with pytest.raises(InputError, match="empty"):
        word_pipe("   ")


def test_vocabulary_that_adds_eos_is_refused():
    pipe = Pipeline([WordTokenizer(), VocabularyStage(add_eos=True)], task="lm", device="cpu",
                    model_config={"embedding_dim": 8, "hidden_size": 8, "bptt": 2})
    with pytest.raises(ConfigError, match="add_bos/add_eos to false"):
        pipe.fit({"text": toy_lines(10)}, None, {**FAST, "epochs": 1, "batch_size": 2})


# -- recipe, CLI, docs ----------------------------------------------------------------------------
def test_recipe_parses_and_builds_each_level():
    recipe = load_recipe(REPO / "pipelines" / "lm.yaml")
    assert isinstance(recipe, LMRecipe) and recipe.task == "lm" and recipe.level == "word"
    assert recipe.model.tie_weights and recipe.model.embedding_dim == recipe.model.hidden_size
    assert recipe.data.train.endswith("train.tsv") and recipe.data.text_column == "sentence"
    train, dev = recipe.datasets()
    assert train.column_names == ["text"] and len(train) == 400 and len(dev) == 120
    with pytest.raises(ConfigError, match=r"unknown key 'bptk' \(did you mean 'bptt'\?\)"):
        load_recipe(REPO / "pipelines" / "lm.yaml", ["model.bptk=3"])
    with pytest.raises(ConfigError, match="tie_weights"):
        load_recipe(REPO / "pipelines" / "lm.yaml", ["model.hidden_size=64"])
    char = load_recipe(REPO / "pipelines" / "lm.yaml", ["level=char"]).build()
    assert [s.kind for s in char.stages] == ["char_tokenizer", "vocabulary"]
    assert char.stages[1].config.input == "chars"
    assert [s.kind for s in load_recipe(REPO / "pipelines" / "lm.yaml", ["level=subword"]).build().stages] == ["sentencepiece"]


def test_recipe_reads_plain_text_and_refuses_missing_files(tmp_path):
    (tmp_path / "train.en").write_text("A dog runs.\n\nTwo cats sleep.\n", encoding="utf-8")
    recipe = from_dict(LMRecipe, {"data": {"train": str(tmp_path / "train.en"), "dev": None}})
    train, dev = recipe.datasets()
    assert train["text"] == ["A dog runs.", "Two cats sleep."] and dev is None
    with pytest.raises(DataError, match="does not exist"):
        recipe.read(str(tmp_path / "missing.en"))
    with pytest.raises(ConfigError, match="has no column 'text'"):
        from_dict(LMRecipe, {"data": {"text_column": "text"}}).datasets()


def test_cli_trains_the_recipe_for_one_epoch_and_predicts(tmp_path, capsys):
    from seqlab.cli import main

    out_dir = tmp_path / "run"
    assert main(["train", str(REPO / "pipelines" / "lm.yaml"), "--set", "train.epochs=1", "--set", "train.progress=off",
                 "--set", "device=cpu", "--output", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    ppl = float(re.search(r'"perplexity": ([0-9.]+)', printed).group(1))
    assert 1.0 < ppl < 2000
    assert (out_dir / "model.safetensors").is_file()
    assert main(["predict", str(out_dir), "the food", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith("the food\tthe food")  # the generated text, prompt first
    assert main(["eval", str(out_dir), str(REPO / "corpora" / "sentiment" / "dev.tsv"), "--device", "cpu"]) == 0
    assert float(re.search(r"perplexity\s+([0-9.]+)", capsys.readouterr().out).group(1)) == pytest.approx(ppl, rel=1e-3)


def test_module_doctests_pass():
    torch.manual_seed(0)
    result = doctest.testmod(lm_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 4 and result.failed == 0


def test_docs_examples_run():
    doc = REPO / "docs" / "lm.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 3
    torch.manual_seed(0)
    for block in blocks:
        exec(compile(block, str(doc), "exec"), {})
