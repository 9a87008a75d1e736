"""The batched torch Levenshtein distance equals jiwer's edit counts (and WER/CER) exactly."""
from __future__ import annotations

import random

import jiwer
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqlab.core.errors import InputError
from seqlab.metrics.edit_distance import edit_distance_batch, error_rate_batch


def pad(sequences: list[list[int]], device: str = "cpu", fill: int = -7) -> tuple[torch.Tensor, torch.Tensor]:
    width = max([len(s) for s in sequences] + [0])
    out = torch.full((len(sequences), width), fill, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out.to(device), torch.tensor([len(s) for s in sequences], device=device)


def word_ids(refs: list[str], hyps: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    vocab: dict[str, int] = {}
    to_ids = [[vocab.setdefault(w, len(vocab)) for w in text.split()] for text in refs + hyps]
    return to_ids[: len(refs)], to_ids[len(refs):]


def test_distances_equal_jiwer_errors_per_utterance(text_tools):
    rng = random.Random(5)
    for _ in range(60):
        refs, hyps = text_tools.random_pairs(rng, rng.randint(1, 20))
        r_ids, h_ids = word_ids(refs, hyps)
        ref, ref_len = pad(r_ids)
        hyp, hyp_len = pad(h_ids, fill=-9)  # different padding values must not matter
        distance = edit_distance_batch(ref, hyp, ref_len, hyp_len)
        assert distance.dtype == torch.long and distance.shape == (len(refs),)
        for k, (r, h) in enumerate(zip(refs, hyps)):
            out = jiwer.process_words(r, h)
            assert int(distance[k]) == out.substitutions + out.deletions + out.insertions


def test_error_rate_equals_jiwer_wer_and_cer_on_random_corpora(text_tools):
    rng = random.Random(6)
    for case in range(300):
        refs, hyps = text_tools.random_pairs(rng, rng.randint(1, 4))
        r_ids, h_ids = word_ids(refs, hyps)
        assert error_rate_batch(*_args(r_ids, h_ids)) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-9), case
        # jiwer's CER strips each utterance, then every character (spaces too) is a token
        r_chars = [[ord(c) for c in t.strip()] for t in refs]
        h_chars = [[ord(c) for c in t.strip()] for t in hyps]
        assert error_rate_batch(*_args(r_chars, h_chars)) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-9), case


def _args(refs, hyps):
    ref, ref_len = pad(refs)
    hyp, hyp_len = pad(hyps)
    return ref, hyp, ref_len, hyp_len


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 4), max_size=9), st.lists(st.integers(0, 4), max_size=9)),
                min_size=1, max_size=6))
def test_property_matches_rapidfuzz_via_jiwer(pairs):
    refs = [r for r, _ in pairs]
    hyps = [h for _, h in pairs]
    distance = edit_distance_batch(*_args(refs, hyps))
    texts = [(" ".join(map(str, r)), " ".join(map(str, h))) for r, h in pairs]
    expected = [jiwer.process_words(r, h) for r, h in texts]
    assert distance.tolist() == [o.substitutions + o.deletions + o.insertions for o in expected]


def test_known_values_and_default_lengths():
    ref = torch.tensor([[1, 2, 3], [1, 2, 3], [1, 2, 3]])
    hyp = torch.tensor([[1, 2, 3], [3, 2, 1], [4, 5, 6]])
    assert edit_distance_batch(ref, hyp).tolist() == [0, 2, 3]
    assert error_rate_batch(torch.zeros(2, 0, dtype=torch.long), torch.tensor([[1, 2], [3, 4]])) == 4.0


def test_input_errors():
    with pytest.raises(InputError, match="must be 2-D"):
        edit_distance_batch(torch.tensor([1, 2]), torch.tensor([[1]]))
    with pytest.raises(InputError, match="batch sizes differ"):
        edit_distance_batch(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(InputError, match="integer token ids"):
        edit_distance_batch(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(InputError, match=r"reference_lengths must lie in \[0, 3\]"):
        edit_distance_batch(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long), torch.tensor([4]))
    with pytest.raises(InputError, match=r"hypothesis_lengths: expected shape \(1,\)"):
        edit_distance_batch(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long), None,
                            torch.tensor([1, 2]))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_equals_cpu(text_tools):
    rng = random.Random(8)
    refs, hyps = text_tools.random_pairs(rng, 64)
    r_ids, h_ids = word_ids(refs, hyps)
    cpu = edit_distance_batch(*_args(r_ids, h_ids))
    ref, ref_len = pad(r_ids, "cuda")
    hyp, hyp_len = pad(h_ids, "cuda")
    gpu = edit_distance_batch(ref, hyp, ref_len, hyp_len)
    assert gpu.device.type == "cuda"
    assert gpu.cpu().tolist() == cpu.tolist()
