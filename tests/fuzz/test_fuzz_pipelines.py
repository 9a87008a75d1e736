"""Fuzzing ``Pipeline.__call__`` of every task: sentiment, NER, language model, translation, speech.

One tiny pipeline per task is trained for one epoch on the project's ``corpora/`` (module
fixtures, a few seconds in all); then random inputs go through ``pipe(x)`` and through a
batch ``pipe([good, x, good])``: the output has the task's shape, or the error is a documented
one naming the input. Per-call settings (sampling, beam size, decoder, sample rate) are fuzzed too.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fuzzkit import HUGE_TEXTS, audio_values, call, check_explained, fuzz_settings, non_texts, sample_rates, texts
from seqlab.recipe import load_recipe
from seqlab.text.tagging import validate
from seqlab.text.tokenizers import WordTokenizer

TEXT_TASKS = ("sentiment", "ner", "lm", "translation")
ONE_EPOCH = ["train.epochs=1", "train.progress=off", "train.seed=0", "device=cpu"]


def _fit(repo, name: str, sets: list[str], transcripts: bool = False):
    recipe = load_recipe(repo / "pipelines" / f"{name}.yaml", sets + ONE_EPOCH)
    train, _ = recipe.datasets()
    pipe = recipe.build(list(train["text"])) if transcripts else recipe.build()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe.fit(train, None, recipe.train)
    return pipe


@pytest.fixture(scope="module")
def pipes(repo):
    torch.manual_seed(0)
    return {
        "sentiment": _fit(repo, "sentiment", ["model.embedding_dim=8", "model.hidden_size=8", "data.limit_train=60"]),
        "ner": _fit(repo, "ner", ["model.embedding_dim=8", "model.hidden_size=8", "model.char_hidden_size=4",
                                  "model.char_embedding_dim=4", "data.limit_train=60"]),
        "lm": _fit(repo, "lm", ["model.embedding_dim=8", "model.hidden_size=8", "data.limit_train=60",
                                "model.generation.max_tokens=5"]),
        "translation": _fit(repo, "translation", ["model.embedding_dim=8", "model.encoder_hidden=8", "model.decoder_hidden=8",
                                                  "model.attention_dim=8", "subwords.vocab_size=120", "data.limit_train=60",
                                                  "model.beam_size=2", "model.max_len_b=5", "model.max_len_a=0.5"]),
        "speech": _fit(repo, "speech", ["model.hidden_size=8", "model.num_layers=1", "data.limit_train=6", "mfcc.device=cpu",
                                        "model.spec_augment=null", "train.time_budget_s=null"], transcripts=True),
    }


def _check_output(task: str, pipe, value, out) -> None:
    """The task's output shape and invariants for an accepted input ``value``."""
    if task == "sentiment":
        assert out["label"] in pipe.model.config.labels
        assert abs(sum(out["scores"].values()) - 1.0) < 1e-4 and all(np.isfinite(list(out["scores"].values())))
    elif task == "ner":
        assert len(out["tokens"]) == len(out["tags"]) > 0
        validate(out["tags"], "IOB2")
        if isinstance(value, str):
            assert out["tokens"] == WordTokenizer(split="punct").tokenize(value) and out["text"] == value
        for span in out["spans"]:
            assert out["text"][span["char_start"]:span["char_end"]] == span["text"] and 0 <= span["score"] <= 1 + 1e-6
    elif task == "lm":
        assert isinstance(out["text"], str) and out["stopped_by"] in ("eos", "max_tokens") and len(out["tokens"]) <= 5
    else:
        assert isinstance(out, str)


def _names(value) -> list[str]:
    return [repr(value)[:30]] if isinstance(value, str) else []


@pytest.mark.parametrize("task", TEXT_TASKS)
@fuzz_settings(scale=0.5)
@given(value=texts)
def test_text_pipelines_take_any_text(pipes, task, value):
    pipe = pipes[task]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, err = call(pipe, value)
    if err is not None:
        check_explained(err, index=0, names=_names(value))
        assert not value.strip() or task == "translation", f"{task} refused {value!r}: {err}"
        return
    _check_output(task, pipe, value, out)


@pytest.mark.parametrize("task", TEXT_TASKS)
@fuzz_settings(scale=0.5)
@given(value=st.one_of(texts, non_texts, st.lists(texts, max_size=3)), position=st.integers(0, 2))
def test_text_pipelines_in_a_batch_name_the_bad_input(pipes, task, value, position):
    pipe = pipes[task]
    batch = ["a fine sentence"] * 3
    batch[position] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outs, err = call(pipe.predict, batch)
    if err is not None:
        check_explained(err, index=position, names=_names(value))
        return
    assert len(outs) == 3
    for v, out in zip(batch, outs):
        _check_output(task, pipe, v, out)


#: The NER tagger costs ~0.1 ms per token (CRF marginals): its 50k–100k-token inputs are left to
#: the other tasks, which pay per character or per subword only.
HUGE_CASES = [(task, name) for task in TEXT_TASKS for name in sorted(HUGE_TEXTS)
              if task != "ner" or name in ("100k_chars", "20k_words")]


@pytest.mark.parametrize(("task", "name"), HUGE_CASES)
def test_text_pipelines_on_huge_inputs(pipes, task, name):
    value = HUGE_TEXTS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, err = call(pipes[task], value)
    if err is not None:
        check_explained(err, index=0, names=_names(value))
        return
    _check_output(task, pipes[task], value, out)


@fuzz_settings(scale=0.5)
@given(tokens=st.lists(texts, max_size=8), as_dict=st.booleans())
def test_ner_takes_pre_tokenized_sentences(pipes, tokens, as_dict):
    pipe = pipes["ner"]
    value = {"tokens": tokens} if as_dict else tokens
    out, err = call(pipe.predict, [value])
    if err is not None:
        check_explained(err, index=0)
        assert not tokens or any(not t.strip() for t in tokens), err
        return
    assert out[0]["tokens"] == tokens
    _check_output("ner", pipe, value, out[0])


settings_values = st.sampled_from([None, 0, -1, 1, 2, 5, 1.5, float("nan"), float("inf"), "x", "", True, [1], {}, "beam", "greedy"])


@fuzz_settings(scale=0.5)
@given(max_tokens=settings_values, temperature=settings_values, top_k=settings_values, seed=settings_values,
       stop_at_eos=settings_values, on_unknown=st.sampled_from([None, "warn", "error", "x", 1]))
def test_lm_generation_settings(pipes, max_tokens, temperature, top_k, seed, stop_at_eos, on_unknown):
    given_settings = {k: v for k, v in dict(max_tokens=max_tokens, temperature=temperature, top_k=top_k, seed=seed,
                                            stop_at_eos=stop_at_eos, on_unknown=on_unknown).items() if v is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, err = call(pipes["lm"], "the food was", **given_settings)
    if err is not None:
        check_explained(err, names=[repr(v) for v in given_settings.values()] + list(given_settings))
        return
    limit = given_settings.get("max_tokens", 5)
    limit = limit[0] if isinstance(limit, list) else limit  # a list as long as the batch gives one value per row
    assert isinstance(out["text"], str) and len(out["tokens"]) <= limit


@fuzz_settings(scale=0.5)
@given(beam_size=settings_values, return_attention=settings_values)
def test_translation_settings(pipes, beam_size, return_attention):
    given_settings = {k: v for k, v in dict(beam_size=beam_size, return_attention=return_attention).items() if v is not None}
    out, err = call(pipes["translation"], "a dog runs", **given_settings)
    if err is not None:
        check_explained(err, names=[repr(v) for v in given_settings.values()])
        return
    assert isinstance(out, str) or (isinstance(out, dict) and isinstance(out["text"], str))


@fuzz_settings(scale=0.5)
@given(value=audio_values(max_len=8000), position=st.integers(0, 2))
def test_speech_pipeline_takes_any_audio(pipes, value, position):
    pipe = pipes["speech"]
    batch = [np.zeros(1600, np.float32)] * 3
    batch[position] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outs, err = call(pipe.predict, batch)
    if err is not None:
        check_explained(err, index=position)
        return
    assert len(outs) == 3 and all(isinstance(o, str) for o in outs)


@fuzz_settings(scale=0.5)
@given(decoder=st.sampled_from([None, "greedy", "beam", "x", 1]), beam_size=settings_values, timings=settings_values,
       rate=sample_rates)
def test_speech_call_settings(pipes, decoder, beam_size, timings, rate):
    given_settings = {k: v for k, v in dict(decoder=decoder, beam_size=beam_size, timings=timings, sample_rate=rate).items()
                      if v is not None}
    try:
        short = 0 < float(rate) < 1000
    except (TypeError, ValueError):
        short = False
    clip = np.linspace(-0.2, 0.2, 8 if short else 1600, dtype=np.float32)  # 1 Hz input becomes 16000× longer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, err = call(pipes["speech"], clip, **given_settings)
    if err is not None:
        check_explained(err, index=0, names=[repr(v) for v in given_settings.values()])
        return
    assert isinstance(out, str) or (isinstance(out, dict) and isinstance(out.get("text"), str))
