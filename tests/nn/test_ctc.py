"""CTC: length rules, the loss with infeasible targets, greedy and prefix beam search, LM, alignment."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from seqlab.core.errors import ConfigError, DataError, InputError
from seqlab.nn.blocks import ConvStack
from seqlab.nn.ctc import (
    CTCHead, NGramLM, WordList, collapse, ctc_align, ctc_loss, ctc_min_frames, greedy_decode, prefix_beam_search,
    sequence_log_prob,
)


def _dominant(frames: int, classes: int, floor: float, gen: torch.Generator) -> torch.Tensor:
    """Log-probabilities where one random class per frame has probability >= floor."""
    top = torch.randint(0, classes, (frames,), generator=gen)
    q = floor + (1 - floor) * torch.rand(frames, generator=gen)
    rest = torch.rand(frames, classes, generator=gen)
    rest[torch.arange(frames), top] = 0
    probs = rest / rest.sum(1, keepdim=True) * (1 - q).unsqueeze(1)
    probs[torch.arange(frames), top] = q
    return probs.log()


def _exact_prefix_probs(log_probs: torch.Tensor) -> dict[tuple[int, ...], float]:
    """p(l | x) for every label sequence, by enumerating all paths (tiny T and C only)."""
    frames, classes = log_probs.shape
    out: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(classes), repeat=frames):
        p = math.exp(sum(float(log_probs[t, c]) for t, c in enumerate(path)))
        key = tuple(collapse(path))
        out[key] = out.get(key, 0.0) + p
    return out


# -- lengths after striding ------------------------------------------------------------------
def test_output_lengths_equal_the_real_conv_outputs_for_random_lengths():
    gen = torch.Generator().manual_seed(3)
    for trial in range(6):
        strides = [(2, int(torch.randint(1, 3, (1,), generator=gen))) for _ in range(2)]
        kernels = [int(torch.randint(1, 3, (1,), generator=gen)) * 2 + 1 for _ in range(2)]
        stack = ConvStack(1, [
            {"channels": 3, "kernel": kernels[0], "stride": strides[0], "padding": kernels[0] // 2},
            {"channels": 3, "kernel": kernels[1], "stride": strides[1], "padding": "same", "pool": "max" if trial % 2 else None,
             "pool_kernel": [1, 2]},
        ], dims=2)
        lengths = torch.randint(4, 60, (5,), generator=gen)
        predicted = stack.output_lengths(lengths)
        for n, expected in zip(lengths.tolist(), predicted.tolist()):
            real = stack(torch.randn(1, 1, 12, n)).shape[-1]  # the example alone, unpadded
            assert real == expected, (trial, n, real, expected)


def test_ctc_min_frames_counts_adjacent_repeats_only_inside_the_length():
    targets = torch.tensor([[1, 1, 1, 2], [2, 3, 2, 3], [4, 4, 4, 4]])
    assert ctc_min_frames(targets, torch.tensor([4, 4, 2])).tolist() == [6, 4, 3]


def test_ctc_loss_equals_torch_on_feasible_and_skips_infeasible_with_a_count():
    torch.manual_seed(0)
    lp = torch.randn(3, 6, 4).log_softmax(-1)
    targets = torch.tensor([[1, 2, 3], [1, 1, 1], [2, 3, 0]])
    t_len = torch.tensor([3, 3, 2])
    out_len = torch.tensor([6, 4, 5])  # "1 1 1" needs 5 frames but has 4
    result = ctc_loss(lp, out_len, targets, t_len, reduction="sum")
    assert result.skipped == 1 and result.kept.tolist() == [True, False, True]
    keep = torch.tensor([0, 2])
    reference = F.ctc_loss(lp[keep].transpose(0, 1), targets[keep], out_len[keep], t_len[keep], reduction="none")
    assert torch.allclose(result.loss, reference.mean())
    mean = ctc_loss(lp, out_len, targets, t_len, reduction="mean").loss
    assert torch.allclose(mean, (reference / t_len[keep]).mean())


def test_all_infeasible_gives_a_zero_loss_with_a_gradient_path():
    lp = torch.randn(1, 2, 3, requires_grad=True)
    result = ctc_loss(lp.log_softmax(-1), torch.tensor([2]), torch.tensor([[1, 2, 1]]), torch.tensor([3]))
    assert result.skipped == 1 and float(result.loss.detach()) == 0.0
    result.loss.backward()
    assert lp.grad is not None and float(lp.grad.abs().sum()) == 0.0


def test_ctc_loss_refuses_labels_outside_the_classes():
    with pytest.raises(InputError, match="0 is the blank"):
        ctc_loss(torch.zeros(1, 4, 3), torch.tensor([4]), torch.tensor([[3]]), torch.tensor([1]))


def test_loss_is_float32_under_autocast():
    head = CTCHead(8, num_labels=3)
    x = torch.randn(2, 7, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lp = head(x)
        result = ctc_loss(lp, torch.tensor([7, 5]), torch.tensor([[1, 2], [3, 3]]), torch.tensor([2, 2]))
    assert lp.dtype == torch.float32 and result.loss.dtype == torch.float32
    assert math.isfinite(float(result.loss.detach()))


# -- greedy ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path, expected", [
    ([1, 1, 0, 1, 2, 2, 0, 0, 3], [1, 1, 2, 3]),  # a blank separates a real repeat
    ([1, 1, 1, 2, 2, 1], [1, 2, 1]),              # runs merge without blanks
    ([0, 0, 0], []),
    ([2], [2]),
    ([0, 3, 0, 3, 3, 0], [3, 3]),
])
def test_greedy_collapses_repeats_then_removes_blanks(path, expected):
    lp = torch.full((len(path), 4), -9.0)
    lp[torch.arange(len(path)), torch.tensor(path)] = -0.01
    assert greedy_decode(lp.unsqueeze(0))[0] == expected
    assert collapse(path) == expected


def test_greedy_respects_lengths_in_a_padded_batch():
    lp = torch.full((2, 4, 3), -9.0)
    lp[0, torch.arange(4), torch.tensor([1, 0, 2, 1])] = 0.0
    lp[1, torch.arange(4), torch.tensor([2, 2, 1, 1])] = 0.0
    assert greedy_decode(lp, torch.tensor([3, 2])) == [[1, 2], [2]]


# -- prefix beam search ------------------------------------------------------------------------
def test_beam_finds_a_more_probable_transcript_where_greedy_is_wrong():
    # Each frame: blank 0.6, "a" 0.4. The best path is all blanks (""), p = 0.36, but the
    # alignments of "a" add up to 0.64.
    lp = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()
    greedy = greedy_decode(lp.unsqueeze(0))[0]
    beam = prefix_beam_search(lp, beam_size=4)[0]
    assert greedy == [] and beam.ids == [1]

    def prob(ids):
        target = torch.tensor([ids or [1]])
        if not ids:
            return math.exp(float(lp[:, 0].sum()))
        return math.exp(float(sequence_log_prob(lp.unsqueeze(0), torch.tensor([2]), target, torch.tensor([len(ids)]))))

    assert prob(beam.ids) > prob(greedy)
    assert math.isclose(math.exp(beam.ctc_score), prob(beam.ids), rel_tol=1e-6)


def test_wide_beam_equals_exhaustive_search_on_random_tiny_cases():
    gen = torch.Generator().manual_seed(11)
    for _ in range(40):
        lp = (1.5 * torch.randn(5, 3, generator=gen)).log_softmax(-1)
        exact = _exact_prefix_probs(lp)
        best = max(exact, key=exact.get)
        hyp = prefix_beam_search(lp, beam_size=64)[0]
        assert tuple(hyp.ids) == best
        assert math.isclose(math.exp(hyp.ctc_score), exact[best], rel_tol=1e-6)


def test_beam_width_one_equals_greedy_when_one_class_dominates_each_frame():
    gen = torch.Generator().manual_seed(5)
    for _ in range(300):
        frames = int(torch.randint(1, 25, (1,), generator=gen))
        classes = int(torch.randint(2, 7, (1,), generator=gen))
        lp = _dominant(frames, classes, 0.75, gen)
        assert prefix_beam_search(lp, beam_size=1)[0].ids == greedy_decode(lp.unsqueeze(0))[0]


def test_word_list_constrains_a_character_beam():
    labels = ["", " ", "a", "c", "s", "t"]
    frame = {c: i for i, c in enumerate(labels)}

    def dist(**probs):
        row = torch.full((len(labels),), 1e-3)
        for name, p in probs.items():
            row[frame.get(name, 0) if name != "blank" else 0] = p
        return row / row.sum()

    # Acoustically "cst" is best (greedy), "cat" close behind.
    lp = torch.stack([dist(c=0.9), dist(s=0.55, a=0.4), dist(t=0.9)]).log()
    assert greedy_decode(lp.unsqueeze(0))[0] == [frame["c"], frame["s"], frame["t"]]
    free = prefix_beam_search(lp, beam_size=8, labels=labels)[0]
    assert "".join(labels[i] for i in free.ids) == "cst"
    constrained = prefix_beam_search(lp, beam_size=8, labels=labels, word_list=["cat", "tac"])[0]
    assert "".join(labels[i] for i in constrained.ids) == "cat" and constrained.words == ["cat"]
    # Every hypothesis the constrained search returns is made of listed words.
    for hyp in prefix_beam_search(lp, beam_size=8, labels=labels, word_list=["cat", "tac"]):
        assert all(w in ("cat", "tac") for w in hyp.words)


def test_word_list_on_a_word_level_model_masks_unlisted_words():
    labels = ["", "yes", "no", "maybe"]
    lp = torch.tensor([[0.1, 0.2, 0.2, 0.5], [0.7, 0.1, 0.1, 0.1]]).log()
    assert prefix_beam_search(lp, 4, labels=labels, word_separator=None)[0].words == ["maybe"]
    assert prefix_beam_search(lp, 4, labels=labels, word_separator=None, word_list=["yes", "no"])[0].words in (["yes"], ["no"])


def test_an_ngram_lm_breaks_an_acoustic_tie():
    labels = ["", "one", "two", "three"]
    lm = NGramLM.fit(["one two"] * 5 + ["one three"], order=2)
    # frame 0: clearly "one"; frame 1: "two" and "three" equally likely.
    lp = torch.tensor([[0.02, 0.96, 0.01, 0.01], [0.02, 0.01, 0.485, 0.485]]).log()
    hyps = prefix_beam_search(lp, 8, labels=labels, word_separator=None, lm=lm, lm_weight=1.0)
    assert hyps[0].words == ["one", "two"]
    # The LM part of the score is α·log p_lm(W) including </s>.
    assert math.isclose(hyps[0].lm_score, lm.sentence_log_prob(["one", "two"]), rel_tol=1e-9)


# -- the n-gram LM ---------------------------------------------------------------------------
def test_ngram_lm_is_normalised_and_survives_arpa_round_trip(tmp_path):
    sentences = ["the cat sat", "the cat ran", "a dog sat", "the dog ran fast"]
    lm = NGramLM.fit(sentences, order=3)
    predicted = [w for w in lm.vocabulary if w != "<s>"]
    for context in [("<s>",), ("the",), ("<s>", "the"), ("the", "cat"), ("dog", "ran"), ("zzz",)]:
        total = sum(math.exp(lm.log_prob(context, w)) for w in predicted)
        assert math.isclose(total, 1.0, rel_tol=1e-9), context
    path = tmp_path / "lm.arpa"
    path.write_text(lm.to_arpa())
    back = NGramLM.from_arpa(path)
    for context, word in [(("<s>", "the"), "cat"), (("a", "dog"), "ran"), (("cat",), "fast"), ((), "unseen")]:
        assert math.isclose(back.log_prob(context, word), lm.log_prob(context, word), abs_tol=1e-5)
    assert lm.log_prob(("the",), "cat") > lm.log_prob(("the",), "sat")


def test_ngram_lm_errors():
    with pytest.raises(DataError, match="no n-grams"):
        NGramLM.from_arpa("\\data\\\nngram 1=0\n\\end\\\n")
    with pytest.raises(DataError, match="does not exist"):
        NGramLM.from_arpa("/no/such/file.arpa")
    with pytest.raises(ConfigError, match="discount"):
        NGramLM.fit(["a"], discount=1.5)
    with pytest.raises(ConfigError, match="empty"):
        WordList([])


# -- forced alignment --------------------------------------------------------------------------
def test_ctc_align_finds_the_frames_of_each_label():
    path = [0, 2, 2, 0, 0, 1, 0, 1, 1, 0]
    lp = torch.full((len(path), 3), 1e-3)
    lp[torch.arange(len(path)), torch.tensor(path)] = 1.0
    lp = (lp / lp.sum(1, keepdim=True)).log()
    spans = ctc_align(lp, [2, 1, 1])
    assert [(s.label, s.start, s.end) for s in spans] == [(2, 1, 3), (1, 5, 6), (1, 7, 9)]
    assert all(0.99 < s.score <= 1.0 for s in spans)
    assert ctc_align(lp, [1, 1, 1, 1, 1, 1]) is None  # needs 11 frames, has 10
    assert ctc_align(lp, []) == []
