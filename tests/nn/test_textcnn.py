"""Kim's text CNN: the values it computes, and padding that never changes them."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from seqlab.core.errors import ConfigError, InputError
from seqlab.nn.textcnn import TextCNNConfig, TextCNNEncoder


def _encoder(**kwargs) -> TextCNNEncoder:
    torch.manual_seed(0)
    return TextCNNEncoder(6, num_filters=5, kernel_sizes=(2, 3, 4), dropout=0.0, **kwargs).eval()


def _by_hand(enc: TextCNNEncoder, sentence: torch.Tensor) -> torch.Tensor:
    """Kim's eq.: c_i = relu(w · x_{i:i+h-1} + b), ĉ = max_i c_i, concatenated over h."""
    feats = []
    for k, branch in zip(enc.config.kernel_sizes, enc.branches):
        conv = branch.layers[0].conv
        x = sentence.T.unsqueeze(0)  # (1, E, T)
        if x.shape[-1] < k:  # a short sentence is zero-padded to the window
            x = F.pad(x, (0, k - x.shape[-1]))
        c = torch.relu(F.conv1d(x, conv.weight, conv.bias))
        feats.append(c.amax(-1)[0])
    return torch.cat(feats)


def test_output_is_max_over_time_of_each_filter():
    enc = _encoder()
    assert enc.output_size == 15
    x = torch.randn(3, 7, 6)
    lengths = torch.tensor([7, 5, 3])
    out = enc(x, lengths)
    assert out.shape == (3, 15)
    for b in range(3):
        torch.testing.assert_close(out[b], _by_hand(enc, x[b, : int(lengths[b])]))


def test_padding_does_not_change_an_example():
    enc = _encoder()
    torch.manual_seed(1)
    sentences = [torch.randn(n, 6) for n in (9, 4, 1, 2)]
    alone = torch.cat([enc(s.unsqueeze(0), torch.tensor([len(s)])) for s in sentences])
    padded = torch.full((4, 12, 6), 1e3)  # huge garbage in the pads: it must never win a max
    for b, s in enumerate(sentences):
        padded[b, : len(s)] = s
    lengths = torch.tensor([len(s) for s in sentences])
    torch.testing.assert_close(enc(padded, lengths), alone)
    # ... and the pads get no gradient.
    padded.requires_grad_(True)
    enc(padded, lengths).sum().backward()
    for b, s in enumerate(sentences):
        assert torch.all(padded.grad[b, len(s):] == 0)
        assert padded.grad[b, : len(s)].abs().sum() > 0


def test_sentences_shorter_than_every_window_still_encode():
    enc = _encoder()
    one = torch.randn(2, 1, 6)
    out = enc(one, torch.tensor([1, 1]))
    torch.testing.assert_close(out[0], _by_hand(enc, one[0]))
    assert torch.isfinite(out).all()
    assert enc(one).shape == (2, 15)  # lengths default to T


def test_dropout_only_in_training():
    torch.manual_seed(0)
    enc = TextCNNEncoder(4, num_filters=8, kernel_sizes=(3,), dropout=0.5)
    x = torch.randn(2, 5, 4)
    enc.train()
    assert not torch.equal(enc(x), enc(x))
    enc.eval()
    assert torch.equal(enc(x), enc(x))


def test_activation_is_selectable_and_config_reads_plain_data():
    enc = TextCNNEncoder.from_config({"input_size": 4, "num_filters": 3, "kernel_sizes": [2], "activation": "tanh", "dropout": 0.0})
    assert isinstance(enc.config, TextCNNConfig)
    assert enc(torch.randn(2, 5, 4)).abs().max() <= 1.0
    with pytest.raises(ConfigError, match="unknown key 'filters'"):
        TextCNNEncoder.from_config({"input_size": 4, "filters": 3})


def test_errors():
    enc = _encoder()
    with pytest.raises(InputError, match=r"\(B, T, 6\)"):
        enc(torch.randn(2, 5, 4), torch.tensor([5, 5]))
    with pytest.raises(InputError, match=r"lengths must lie in \[1, 5\]"):
        enc(torch.randn(2, 5, 6), torch.tensor([6, 5]))
    with pytest.raises(InputError, match="lengths must lie"):
        enc(torch.randn(2, 5, 6), torch.tensor([0, 5]))
    with pytest.raises(ConfigError, match="kernel_sizes is empty"):
        TextCNNEncoder(6, kernel_sizes=())
    with pytest.raises(ConfigError, match="dropout"):
        TextCNNEncoder(6, dropout=1.5)
    with pytest.raises(ConfigError, match="unknown activation"):
        TextCNNEncoder(6, activation="rectifier")
