"""Seq2Seq: teacher forcing = stepwise decoding, loss, tying/sharing, and learning to reverse sequences."""
from __future__ import annotations

import math

import pytest
import torch

from seqlab.core.errors import ConfigError
from seqlab.nn.seq2seq import Seq2Seq, Seq2SeqConfig

VOCAB = 12


def _config(**kw):
    base = dict(embedding_dim=8, encoder_hidden=6, decoder_hidden=12, attention_dim=7, dropout=0.0,
                label_smoothing=0.0, source_vocab_size=VOCAB, target_vocab_size=VOCAB)
    base.update(kw)
    return Seq2SeqConfig(**base)


def _batch():
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0], [4, 11, 5, 0]])
    tgt = torch.tensor([[6, 7, 8], [10, 0, 0], [11, 4, 0]])
    return src, torch.tensor([4, 2, 3]), tgt, torch.tensor([3, 1, 2])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["bahdanau", "dot", "general"])
@pytest.mark.parametrize("input_feeding", [False, True])
def test_teacher_forcing_equals_step_by_step_decoding(cell, attention, input_feeding):
    torch.manual_seed(0)
    net = Seq2Seq(_config(cell=cell, attention=attention, input_feeding=input_feeding, decoder_layers=2,
                          encoder_layers=2, tie_embeddings=attention != "dot")).double().eval()
    src, src_len, tgt, tgt_len = _batch()
    tgt_in, _ = net.teacher_forcing_pair(tgt, tgt_len)
    with torch.no_grad():
        logits, weights = net(src, src_len, tgt_in)
        state, memory = net.encode(src, src_len)
        for t in range(tgt_in.shape[1]):
            log_probs, state, step_weights = net.step(tgt_in[:, t], state, memory)
            assert torch.allclose(log_probs, logits[:, t].log_softmax(-1), atol=1e-10)
            assert torch.allclose(step_weights, weights[:, t], atol=1e-10)
    # Attention never looks at source pads.
    assert bool(weights[1, :, 2:].eq(0).all()) and bool(weights[2, :, 3:].eq(0).all())


def test_teacher_forcing_pair_and_loss_value():
    torch.manual_seed(0)
    net = Seq2Seq(_config()).double().eval()
    src, src_len, tgt, tgt_len = _batch()
    tgt_in, tgt_out = net.teacher_forcing_pair(tgt, tgt_len)
    assert tgt_in.tolist() == [[2, 6, 7, 8], [2, 10, 0, 0], [2, 11, 4, 0]]
    assert tgt_out.tolist() == [[6, 7, 8, 3], [10, 3, 0, 0], [11, 4, 3, 0]]
    with torch.no_grad():
        logits, _ = net(src, src_len, tgt_in)
    logp = logits.log_softmax(-1)
    picked = [float(logp[b, t, tgt_out[b, t]]) for b in range(3) for t in range(4) if tgt_out[b, t] != 0]
    assert len(picked) == 9  # 6 target tokens + 3 <eos>
    assert math.isclose(float(net.loss(src, src_len, tgt, tgt_len).detach()), -sum(picked) / 9, rel_tol=1e-9)
    # Label smoothing: (1-ε)·NLL + ε·mean over the vocabulary of -log p.
    smooth = Seq2Seq(_config(label_smoothing=0.1)).double().eval()
    smooth.load_state_dict(net.state_dict())
    uniform = [-float(logp[b, t].mean()) for b in range(3) for t in range(4) if tgt_out[b, t] != 0]
    expected = 0.9 * (-sum(picked) / 9) + 0.1 * sum(uniform) / 9
    assert math.isclose(float(smooth.loss(src, src_len, tgt, tgt_len).detach()), expected, rel_tol=1e-9)


def test_tied_and_shared_embeddings():
    net = Seq2Seq(_config(tie_embeddings=True, share_embeddings=True))
    assert net.output.weight is net.target_embedding.weight
    assert net.source_embedding is net.target_embedding
    assert net.config.attentional_dim == 8 and net.combine.out_features == 8
    untied = Seq2Seq(_config())
    assert untied.output.weight is not untied.target_embedding.weight
    assert untied.source_embedding is not untied.target_embedding
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in untied.parameters())
    with pytest.raises(ConfigError, match="joint vocabulary"):
        Seq2Seq(_config(share_embeddings=True, target_vocab_size=VOCAB + 1))
    with pytest.raises(ConfigError, match="dot attention"):
        _config(attention="dot", decoder_hidden=10).validate()
    with pytest.raises(ConfigError, match="vocab"):
        Seq2Seq(_config(source_vocab_size=0))


def _reverse_batch(n, generator, vocab=VOCAB):
    lengths = torch.randint(2, 6, (n,), generator=generator)
    src = torch.zeros(n, int(lengths.max()), dtype=torch.long)
    tgt = torch.zeros_like(src)
    for i, length in enumerate(lengths.tolist()):
        src[i, :length] = torch.randint(4, vocab, (length,), generator=generator)
        tgt[i, :length] = src[i, :length].flip(0)
    return src, lengths, tgt, lengths


@pytest.mark.parametrize("attention", ["bahdanau", "general"])
def test_learns_to_reverse_random_sequences(attention):
    torch.manual_seed(0)
    net = Seq2Seq(_config(embedding_dim=24, encoder_hidden=32, decoder_hidden=64, attention_dim=32, attention=attention))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(1)
    for _ in range(200):
        loss = net.loss(*_reverse_batch(64, g))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()
    src, src_len, tgt, tgt_len = _reverse_batch(200, torch.Generator().manual_seed(99))  # unseen sequences
    for beam_size in (1, 3):
        hyps = net.translate(src, src_len, beam_size=beam_size)
        exact = sum(h.tokens == tgt[i, : tgt_len[i]].tolist() for i, h in enumerate(hyps)) / len(hyps)
        assert exact >= 0.95, (attention, beam_size, exact)
    # The attention of the first output token sits on the last source token.
    hyp = hyps[0]
    assert int(hyp.attention[0].argmax()) == int(src_len[0]) - 1
