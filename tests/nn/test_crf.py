"""CRF: forward algorithm, Viterbi and forward-backward against brute-force enumeration."""
from __future__ import annotations

import itertools

import pytest
import torch

from seqlab.core.errors import InputError
from seqlab.nn.crf import CRF, IMPOSSIBLE
from seqlab.text.tagging import allowed_transitions, tag_set, validate


# ----------------------------------------------------------------------------- helpers
def random_crf(k: int, gen: torch.Generator, constraints=None) -> CRF:
    crf = CRF(k, constraints=constraints).double()
    with torch.no_grad():  # larger than the init so transitions really matter
        crf.transitions.copy_(torch.randn(k, k, generator=gen, dtype=torch.float64))
        crf.start_transitions.copy_(torch.randn(k, generator=gen, dtype=torch.float64))
        crf.end_transitions.copy_(torch.randn(k, generator=gen, dtype=torch.float64))
    return crf


def random_mask(b: int, t: int, gen: torch.Generator) -> torch.Tensor:
    lengths = torch.randint(1, t + 1, (b,), generator=gen)
    lengths[0] = t  # one full-length row so the padded width is really used
    return torch.arange(t)[None, :] < lengths[:, None]


def brute_force(crf: CRF, emissions: torch.Tensor, n: int, only_allowed: bool):
    """Score every one of the K^n sequences explicitly (no dynamic programming).

    Returns (paths (N, n), scores (N,)) using the raw learned parameters, with
    forbidden sequences dropped when ``only_allowed``; the CRF under test must agree
    with this on log Z, the best path and the marginals.
    """
    k = crf.num_tags
    paths = torch.tensor(list(itertools.product(range(k), repeat=n)), dtype=torch.long)
    a, s, e = crf.transitions.detach(), crf.start_transitions.detach(), crf.end_transitions.detach()
    scores = s[paths[:, 0]] + e[paths[:, -1]] + emissions[torch.arange(n), paths].sum(1)
    ok = crf.allowed_start[paths[:, 0]] & crf.allowed_end[paths[:, -1]]
    for t in range(1, n):
        scores = scores + a[paths[:, t - 1], paths[:, t]]
        ok &= crf.allowed[paths[:, t - 1], paths[:, t]]
    if only_allowed:
        return paths[ok], scores[ok]
    return paths, scores


CASES = [(b, t, k) for b in (1, 2, 3, 5) for t in (1, 2, 3, 5) for k in (1, 2, 3, 5)]


def iob_constraints(k: int, gen: torch.Generator):
    """A random constraint set that always leaves tag 0 usable (so some path exists)."""
    trans = torch.rand(k, k, generator=gen) < 0.6
    start = torch.rand(k, generator=gen) < 0.6
    end = torch.rand(k, generator=gen) < 0.6
    trans[0, 0] = start[0] = end[0] = True
    return trans, start, end


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("b,t,k", CASES)
def test_log_partition_likelihood_and_viterbi_match_brute_force(b, t, k):
    gen = torch.Generator().manual_seed(1000 * b + 100 * t + k)
    crf = random_crf(k, gen)
    emissions = torch.randn(b, t, k, generator=gen, dtype=torch.float64)
    mask = random_mask(b, t, gen)
    tags = torch.randint(0, k, (b, t), generator=gen)
    tags[~mask] = -100  # padding may hold an ignore index

    log_z = crf.log_partition(emissions, mask)
    ll = crf.log_likelihood(emissions, tags, mask)
    paths, best = crf.viterbi(emissions, mask)
    decoded = crf.decode(emissions, mask)
    for i in range(b):
        n = int(mask[i].sum())
        all_paths, scores = brute_force(crf, emissions[i, :n], n, only_allowed=False)
        assert torch.allclose(log_z[i], torch.logsumexp(scores, 0), atol=1e-10)
        gold = (all_paths == tags[i, :n]).all(1).nonzero().item()
        assert torch.allclose(ll[i], scores[gold] - torch.logsumexp(scores, 0), atol=1e-10)
        top = scores.argmax()
        assert decoded[i] == all_paths[top].tolist()
        assert paths[i, :n].tolist() == all_paths[top].tolist()
        assert torch.allclose(best[i], scores[top], atol=1e-10)
        assert (paths[i, n:] == 0).all()
    assert (ll <= 1e-12).all()


@pytest.mark.parametrize("b,t,k", [(2, 5, 5), (3, 4, 3), (4, 3, 4), (1, 1, 2), (3, 5, 2)])
def test_marginals_match_brute_force_and_autograd(b, t, k):
    gen = torch.Generator().manual_seed(7 * b + t + 31 * k)
    crf = random_crf(k, gen)
    emissions = torch.randn(b, t, k, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = random_mask(b, t, gen)
    marg = crf.marginals(emissions, mask)
    for i in range(b):
        n = int(mask[i].sum())
        paths, scores = brute_force(crf, emissions[i, :n].detach(), n, only_allowed=False)
        probs = torch.softmax(scores, 0)
        expected = torch.zeros(n, k, dtype=torch.float64)
        for pos in range(n):
            expected[pos].index_add_(0, paths[:, pos], probs)
        assert torch.allclose(marg[i, :n], expected, atol=1e-10)
        assert (marg[i, n:] == 0).all()
    # d log Z / d emissions is the marginal too (an independent route through autograd)
    crf.log_partition(emissions, mask).sum().backward()
    assert torch.allclose(emissions.grad, marg.detach(), atol=1e-10)


@pytest.mark.parametrize("b,t,k", [(b, t, k) for b in (1, 3) for t in (1, 2, 4, 5) for k in (2, 3, 5)])
def test_constraints_restrict_partition_viterbi_and_marginals_to_allowed_paths(b, t, k):
    gen = torch.Generator().manual_seed(17 * b + 3 * t + k)
    crf = random_crf(k, gen, constraints=iob_constraints(k, gen))
    emissions = 3 * torch.randn(b, t, k, generator=gen, dtype=torch.float64)
    mask = random_mask(b, t, gen)
    log_z = crf.log_partition(emissions, mask)
    paths, best = crf.viterbi(emissions, mask)
    marg = crf.marginals(emissions, mask)
    for i in range(b):
        n = int(mask[i].sum())
        allowed, scores = brute_force(crf, emissions[i, :n], n, only_allowed=True)
        assert torch.allclose(log_z[i], torch.logsumexp(scores, 0), atol=1e-9)
        top = scores.argmax()
        assert paths[i, :n].tolist() == allowed[top].tolist()
        assert torch.allclose(best[i], scores[top], atol=1e-9)
        probs = torch.softmax(scores, 0)
        for pos in range(n):
            expected = torch.zeros(k, dtype=torch.float64).index_add_(0, allowed[:, pos], probs)
            assert torch.allclose(marg[i, pos], expected, atol=1e-9)


@pytest.mark.parametrize("scheme,types", [("IOB1", ["PER"]), ("IOB2", ["PER", "LOC"]), ("IOBES", ["PER"]), ("BILOU", ["ORG"])])
def test_scheme_constraints_decode_only_valid_tag_sequences(scheme, types):
    names = tag_set(types, scheme)
    k = len(names)
    gen = torch.Generator().manual_seed(len(names))
    crf = random_crf(k, gen, constraints=allowed_transitions(names, scheme))
    # Emissions that push hard towards invalid tags (e.g. I- first, B- last).
    emissions = 4 * torch.randn(64, 6, k, generator=gen, dtype=torch.float64)
    mask = random_mask(64, 6, gen)
    for path in crf.decode(emissions, mask):
        validate([names[j] for j in path], scheme)  # raises on any forbidden transition
    unconstrained = random_crf(k, torch.Generator().manual_seed(len(names)))
    invalid = 0
    for path in unconstrained.decode(emissions, mask):
        try:
            validate([names[j] for j in path], scheme)
        except ValueError:
            invalid += 1
    assert invalid > 0  # the same scores without constraints do produce invalid paths


def test_forbidden_gold_path_gets_impossible_score():
    names = tag_set(["PER"], "IOB2")  # O, B-PER, I-PER
    crf = CRF(3, constraints=allowed_transitions(names, "IOB2")).double()
    emissions = torch.zeros(1, 2, 3, dtype=torch.float64)
    ok = crf.score(emissions, torch.tensor([[1, 2]])).detach()
    bad = crf.score(emissions, torch.tensor([[0, 2]])).detach()  # O then I-PER
    assert (ok - bad).item() > -IMPOSSIBLE / 2


# ----------------------------------------------------------------------------- gradients
def test_gradients_are_finite_with_unreachable_tags_and_match_finite_differences():
    names = ["<pad>"] + tag_set(["PER", "LOC"], "IOBES")
    constraints = allowed_transitions(names, "IOBES", unused=["<pad>"])
    k = len(names)
    crf = CRF(k, constraints=constraints)
    gen = torch.Generator().manual_seed(3)
    emissions = torch.randn(3, 6, k, generator=gen, requires_grad=True)
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3, [1] + [0] * 5], dtype=torch.bool)
    tags = torch.tensor([[1, 2, 4, 1, 9, 1], [5, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]])  # O B-PER E-PER O S-LOC O, ...
    loss = crf.nll(emissions, tags, mask)
    loss.backward()
    assert torch.isfinite(loss)
    for p in [emissions.grad, crf.transitions.grad, crf.start_transitions.grad, crf.end_transitions.grad]:
        assert torch.isfinite(p).all()
    assert crf.transitions.grad[~crf.allowed].abs().max() == 0  # forbidden scores are not learned
    assert all(0 not in path for path in crf.decode(emissions, mask))  # the unused tag is never produced

    small = CRF(3).double()
    em = torch.randn(2, 4, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    m = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    y = torch.tensor([[0, 2, 1, 1], [2, 0, 0, 0]])
    assert torch.autograd.gradcheck(lambda e: small.log_likelihood(e, y, m), (em,))


def test_nll_reductions():
    gen = torch.Generator().manual_seed(5)
    crf = random_crf(4, gen)
    emissions = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[1] * 5, [1] * 2 + [0] * 3, [1] * 4 + [0]], dtype=torch.bool)
    tags = torch.randint(0, 4, (3, 5), generator=gen)
    ll = crf.log_likelihood(emissions, tags, mask)
    assert torch.allclose(crf.nll(emissions, tags, mask, "none"), -ll)
    assert torch.allclose(crf.nll(emissions, tags, mask, "mean"), -ll.mean())
    assert torch.allclose(crf.nll(emissions, tags, mask, "sum"), -ll.sum())
    assert torch.allclose(crf.nll(emissions, tags, mask, "token_mean"), -ll.sum() / 11)
    with pytest.raises(InputError, match="reduction"):
        crf.nll(emissions, tags, mask, "avg")


# ----------------------------------------------------------------------------- behaviour
def test_padding_does_not_change_results():
    gen = torch.Generator().manual_seed(11)
    crf = random_crf(4, gen)
    lengths = [5, 2, 4, 1]
    seqs = [torch.randn(n, 4, generator=gen, dtype=torch.float64) for n in lengths]
    gold = [torch.randint(0, 4, (n,), generator=gen) for n in lengths]
    emissions = torch.full((4, 5, 4), 123.0, dtype=torch.float64)  # junk in the padding
    tags = torch.full((4, 5), 3)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    for i, n in enumerate(lengths):
        emissions[i, :n], tags[i, :n], mask[i, :n] = seqs[i], gold[i], True
    batched_ll = crf.log_likelihood(emissions, tags, mask)
    batched_paths = crf.decode(emissions, mask)
    for i, n in enumerate(lengths):
        alone = crf.log_likelihood(seqs[i][None], gold[i][None])
        assert torch.allclose(batched_ll[i], alone[0], atol=1e-12)
        assert batched_paths[i] == crf.decode(seqs[i][None])[0]


def test_half_precision_emissions_are_computed_in_float32():
    gen = torch.Generator().manual_seed(2)
    crf = CRF(3)
    em = torch.randn(2, 4, 3, generator=gen)
    tags = torch.randint(0, 3, (2, 4), generator=gen)
    for dtype in (torch.float16, torch.bfloat16):
        ll = crf.log_likelihood(em.to(dtype), tags)
        assert ll.dtype == torch.float32
        assert torch.allclose(ll, crf.log_likelihood(em.to(dtype).float(), tags))
    assert crf.decode(em.half()) == crf.decode(em)


def test_crf_learns_tags_that_need_transitions():
    """Emissions see only "capitalised or not"; B vs I needs the previous tag.

    Tokens: 0 = lower-case, 1 = capitalised; gold (IOB2): O for 0, and a run of 1s is
    one entity: B then I. Per-token argmax of any emission model can never get both
    B and I right; the CRF must learn start/O→B and B/I→I from the transitions.
    """
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)

    def batch(n, t=8):
        x = (torch.rand(n, t, generator=gen) < 0.45).long()
        y = torch.zeros_like(x)
        y[x == 1] = 1
        cont = torch.zeros_like(x, dtype=torch.bool)
        cont[:, 1:] = (x[:, 1:] == 1) & (x[:, :-1] == 1)
        y[cont] = 2
        lengths = torch.randint(3, t + 1, (n,), generator=gen)
        mask = torch.arange(t)[None] < lengths[:, None]
        return x, y, mask

    emit = torch.nn.Embedding(2, 3)
    crf = CRF(3)
    opt = torch.optim.Adam(list(emit.parameters()) + list(crf.parameters()), lr=0.2)
    x, y, mask = batch(32)
    first = None
    for _ in range(40):
        loss = crf.nll(emit(x), y, mask)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first
    xt, yt, mt = batch(200)
    with torch.no_grad():
        em = emit(xt)
        pred = crf.decode(em, mt)
        greedy = em.argmax(-1)
    correct = sum(p == yt[i, : len(p)].tolist() for i, p in enumerate(pred))
    assert correct == 200
    greedy_ok = all(greedy[i][mt[i]].tolist() == yt[i][mt[i]].tolist() for i in range(200))
    assert not greedy_ok  # emissions alone cannot do it
    assert crf.transitions[0, 2] < crf.transitions[0, 1]  # O→I learned as worse than O→B


def test_state_dict_keeps_constraints_through_safetensors():
    from safetensors.torch import load, save

    names = tag_set(["PER"], "IOBES")
    crf = CRF(len(names), constraints=allowed_transitions(names, "IOBES"))
    data = save(crf.state_dict())
    fresh = CRF(len(names))
    assert not fresh.constrained
    fresh.load_state_dict(load(data))
    assert fresh.constrained
    em = torch.randn(2, 5, len(names))
    assert fresh.decode(em) == crf.decode(em)
    assert torch.equal(fresh.allowed, crf.allowed)


def test_bad_inputs_raise_input_error():
    crf = CRF(3)
    em = torch.randn(2, 3, 3)
    with pytest.raises(InputError, match="prefix"):
        crf.decode(em, torch.tensor([[1, 0, 1], [1, 1, 1]], dtype=torch.bool))
    with pytest.raises(InputError, match="prefix"):
        crf.log_partition(em, torch.tensor([[0, 0, 0], [1, 1, 1]], dtype=torch.bool))
    with pytest.raises(InputError, match="3 tags"):
        crf.decode(torch.randn(2, 3, 4))
    with pytest.raises(InputError, match=r"\[0, 3\).*batch 1, time 2"):
        crf.nll(em, torch.tensor([[0, 1, 2], [0, 1, 3]]))
    with pytest.raises(InputError, match="no time steps"):
        crf.decode(torch.randn(2, 0, 3))
    with pytest.raises(InputError, match="shape"):
        crf.decode(em, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(InputError, match="every start"):
        CRF(2, constraints=(torch.ones(2, 2), torch.zeros(2), torch.ones(2)))
    with pytest.raises(InputError, match="num_tags"):
        CRF(0)
    assert crf.decode(torch.randn(0, 3, 3)) == []


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(9)
    names = tag_set(["PER", "LOC"], "IOBES")
    crf = CRF(len(names), constraints=allowed_transitions(names, "IOBES"))
    em = torch.randn(4, 7, len(names), generator=gen)
    mask = random_mask(4, 7, gen)
    tags = torch.randint(0, len(names), (4, 7), generator=gen)
    gpu = CRF(len(names)).to("cuda")
    gpu.load_state_dict(crf.state_dict())
    em_g, mask_g, tags_g = em.to("cuda"), mask.to("cuda"), tags.to("cuda")
    assert gpu.decode(em_g, mask_g) == crf.decode(em, mask)
    assert torch.allclose(gpu.log_likelihood(em_g, tags_g, mask_g).cpu(), crf.log_likelihood(em, tags, mask), atol=1e-4)
    assert torch.allclose(gpu.marginals(em_g, mask_g).cpu(), crf.marginals(em, mask), atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 10.0, 30.0, 100.0, 300.0, 1000.0])
def test_scaled_marginals_stay_exact_for_peaked_float32_scores(scale):
    """The probability-space products of ``marginals`` against d log Z / d emissions in float64.

    From scale ~300 on, alphas of one step differ by more than the ~745 nats float64 can
    hold, so without the log-space fallback these cases returned inf / wrong probabilities."""
    gen = torch.Generator().manual_seed(int(scale))
    crf = random_crf(6, gen, constraints=iob_constraints(6, gen))
    with torch.no_grad():
        crf.transitions.mul_(scale / 3)
    emissions = scale * torch.randn(4, 9, 6, generator=gen)
    mask = random_mask(4, 9, gen)
    marg = crf.marginals(emissions, mask)
    assert torch.isfinite(marg).all() and marg.dtype == torch.float32
    exact = emissions.double().requires_grad_(True)
    crf.double().log_partition(exact, mask).sum().backward()
    assert torch.allclose(marg.double(), exact.grad, atol=1e-4)
    assert torch.allclose(marg.sum(-1), mask.float(), atol=1e-4)


def test_marginals_exact_when_allowed_predecessors_are_far_below_a_forbidden_one():
    """Tags O, B, I with O → I forbidden. After a first token where O is 1000 nats above B, the
    only ways into I start from B (1000 nats down): the scaled product underflowed to log 0 there
    and returned inf for B and 0.5/0.5 for the second token, while the answer is the path B, I."""
    allowed = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 1]], dtype=torch.bool)
    start = torch.tensor([1, 1, 0], dtype=torch.bool)
    crf = CRF(3, constraints=(allowed, start, torch.ones(3, dtype=torch.bool))).double()
    with torch.no_grad():
        for p in (crf.transitions, crf.start_transitions, crf.end_transitions):
            p.zero_()
    emissions = torch.tensor([[[1000.0, 0.0, 0.0], [0.0, 0.0, 2000.0]]], dtype=torch.float64)
    marg = crf.marginals(emissions)
    # p(B, I) = 1 / (1 + 2 e^-1000 + e^-2000 + forbidden) = 1 in float64
    assert torch.equal(marg, torch.tensor([[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64))
    assert crf.decode(emissions) == [[1, 2]]
    assert float(crf.log_partition(emissions).detach()) == 2000.0


@pytest.mark.parametrize("scale", [100.0, 1000.0, 3000.0])
@pytest.mark.parametrize("seed", range(4))
def test_marginals_match_brute_force_at_large_scales_with_constraints(scale, seed):
    gen = torch.Generator().manual_seed(100 + seed)
    k, t, b = 4, 5, 3
    crf = random_crf(k, gen, constraints=iob_constraints(k, gen))
    with torch.no_grad():
        crf.transitions.mul_(scale / 3)
    emissions = scale * torch.randn(b, t, k, generator=gen, dtype=torch.float64)
    mask = random_mask(b, t, gen)
    marg = crf.marginals(emissions, mask)
    assert torch.isfinite(marg).all()
    for i in range(b):
        n = int(mask[i].sum())
        # every sequence, forbidden ones at their IMPOSSIBLE score, as log Z counts them
        paths, _ = brute_force(crf, emissions[i, :n], n, only_allowed=False)
        trans, s, e = crf._scores(torch.float64)
        scores = s[paths[:, 0]] + e[paths[:, -1]] + emissions[i, torch.arange(n), paths].sum(1)
        for pos in range(1, n):
            scores = scores + trans[paths[:, pos - 1], paths[:, pos]]
        probs = torch.softmax(scores, 0)
        for pos in range(n):
            expected = torch.zeros(k, dtype=torch.float64).index_add_(0, paths[:, pos], probs)
            assert torch.allclose(marg[i, pos], expected, atol=1e-9), (i, pos)
        assert (marg[i, n:] == 0).all()


# ----------------------------------------------------------------------------- CPU inference in numpy
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_inference_equals_the_torch_loops(seed, dtype):
    """decode / viterbi / marginals / decode_with_confidence on a CPU (numpy loops) against the
    torch loops every device runs (``_viterbi``, ``_marginals``), padded and unpadded, constrained."""
    gen = torch.Generator().manual_seed(seed)
    names = tag_set(["PER", "LOC", "ORG"], "IOBES")
    crf = random_crf(len(names), gen, constraints=allowed_transitions(names, "IOBES")).to(dtype)
    for b, t in [(1, 1), (1, 9), (4, 7), (3, 1)]:
        emissions = (3 * torch.randn(b, t, len(names), generator=gen, dtype=torch.float64)).to(dtype)
        for mask in (None, random_mask(b, t, gen)):
            paths, scores, lengths = crf._viterbi(emissions, mask)
            expected = [row[:n] for row, n in zip(paths.tolist(), lengths.tolist())]
            assert crf.decode(emissions, mask) == expected
            got_paths, got_scores = crf.viterbi(emissions, mask)
            assert torch.equal(got_paths, paths) and torch.equal(got_scores, scores)  # bit-identical
            marginals = crf.marginals(emissions, mask)
            assert marginals.dtype == dtype
            assert torch.allclose(marginals, crf._marginals(emissions, mask), atol=1e-12 if dtype == torch.float64 else 1e-6)
            decoded, confidences = crf.decode_with_confidence(emissions, mask)
            assert decoded == expected
            for i, path in enumerate(decoded):
                assert confidences[i] == marginals[i, torch.arange(len(path)), torch.tensor(path)].tolist()


def test_viterbi_ties_go_to_the_first_tag_on_both_paths():
    crf = CRF(4)
    with torch.no_grad():
        for p in (crf.transitions, crf.start_transitions, crf.end_transitions):
            p.zero_()
    emissions = torch.zeros(2, 5, 4)
    emissions[1, 2] = torch.tensor([0.0, 1.0, 1.0, 0.0])
    assert crf.decode(emissions) == [r[:5] for r in crf._viterbi(emissions, None)[0].tolist()] == [[0] * 5, [0, 0, 1, 0, 0]]


@pytest.mark.parametrize("scale", [1.0, 30.0, 1000.0])
def test_rescaled_marginals_agree_with_log_space_or_decline(scale):
    """The probability-space forward-backward equals the log-space one where it answers, answers
    at ordinary scales, and declines (None) rather than return a wrong value at extreme ones."""
    from seqlab.nn.crf import _log_space_marginals, _rescaled_marginals

    gen = torch.Generator().manual_seed(int(scale))
    names = tag_set(["PER", "LOC"], "IOBES")
    crf = random_crf(len(names), gen, constraints=allowed_transitions(names, "IOBES"))
    answered = 0
    for b, t in [(1, 12), (5, 8)]:
        emissions = scale * torch.randn(b, t, len(names), generator=gen, dtype=torch.float64)
        mask = random_mask(b, t, gen)
        host = crf._prepare_host(emissions, mask)
        scores = crf._host_scores(torch.float64)
        exact = _log_space_marginals(host.emissions, host.mask, host.full, *scores)
        fast = _rescaled_marginals(host.emissions, host.mask, host.full, *scores)
        if fast is not None:
            answered += 1
            assert abs(fast - exact).max() < 1e-12
        assert torch.allclose(crf.marginals(emissions, mask), torch.from_numpy(exact), atol=1e-12)
    if scale <= 30:
        assert answered == 2


def test_host_scores_follow_parameter_changes():
    gen = torch.Generator().manual_seed(3)
    crf = random_crf(3, gen)
    emissions = torch.randn(1, 4, 3, generator=gen, dtype=torch.float64)
    first = crf.decode_with_confidence(emissions)
    with torch.no_grad():
        crf.transitions.mul_(-5.0)  # an optimiser step: in place
    assert crf.decode_with_confidence(emissions) != first
    assert crf.decode(emissions) == [crf._viterbi(emissions, None)[0][0].tolist()]
    crf.load_state_dict({k: v.clone() for k, v in random_crf(3, torch.Generator().manual_seed(4)).state_dict().items()})
    assert crf.decode(emissions) == [crf._viterbi(emissions, None)[0][0].tolist()]
    assert torch.allclose(crf.marginals(emissions), crf._marginals(emissions, None), atol=1e-12)


def test_cpu_inference_on_an_empty_batch():
    crf = CRF(4)
    emissions = torch.randn(0, 3, 4)
    assert crf.decode(emissions) == [] and crf.decode_with_confidence(emissions) == ([], [])
    assert crf.marginals(emissions).shape == (0, 3, 4) and crf.viterbi(emissions)[0].shape == (0, 3)
