"""RecurrentEncoder / BiLSTMEncoder / StackedRecurrentEncoder: packing, final state, state, dropout."""
from __future__ import annotations

import pytest
import torch

from seqlab.core.config import from_dict
from seqlab.core.errors import ConfigError, InputError
from seqlab.nn.recurrent import (
    BiLSTMEncoder,
    RecurrentEncoder,
    RecurrentEncoderConfig,
    StackedRecurrentEncoder,
    StackedRecurrentEncoderConfig,
)

CELLS = ["rnn", "lstm", "gru"]
LENGTHS = [5, 2, 4]  # unsorted on purpose: enforce_sorted=False must restore the order


def _batch(input_size=3, lengths=LENGTHS, seed=0):
    g = torch.Generator().manual_seed(seed)
    steps = max(lengths) + 1  # one extra pad step beyond the longest sequence
    x = torch.randn(len(lengths), steps, input_size, generator=g, dtype=torch.float64)
    for b, n in enumerate(lengths):
        x[b, n:] = 1e3  # garbage in the pads: it must not leak into any result
    return x, torch.tensor(lengths)


def _encoder(cell, bidirectional=True, num_layers=2, hidden=4, input_size=3, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return RecurrentEncoder(input_size, hidden, num_layers, cell, bidirectional, dropout).double().eval()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_packed_equals_each_sequence_alone(cell, bidirectional):
    enc = _encoder(cell, bidirectional)
    x, lengths = _batch()
    outputs, final, state = enc(x, lengths)
    assert outputs.shape == (3, 6, enc.output_size)
    for b, n in enumerate(LENGTHS):
        alone_out, alone_final, alone_state = enc(x[b : b + 1, :n])
        assert torch.allclose(outputs[b, :n], alone_out[0], atol=1e-12, rtol=0)
        assert torch.allclose(final[b], alone_final[0], atol=1e-12, rtol=0)
        h = state[0] if cell == "lstm" else state
        alone_h = alone_state[0] if cell == "lstm" else alone_state
        assert torch.allclose(h[:, b], alone_h[:, 0], atol=1e-12, rtol=0)
        if cell == "lstm":
            assert torch.allclose(state[1][:, b], alone_state[1][:, 0], atol=1e-12, rtol=0)
        # Zeros at the pads, whatever garbage the input held there.
        assert bool(outputs[b, n:].eq(0).all())


@pytest.mark.parametrize("cell", CELLS)
def test_final_is_forward_last_valid_and_backward_first(cell):
    enc = _encoder(cell, bidirectional=True, num_layers=2, hidden=4)
    x, lengths = _batch()
    outputs, final, _ = enc(x, lengths)
    for b, n in enumerate(LENGTHS):
        assert torch.equal(final[b, :4], outputs[b, n - 1, :4])  # forward direction at the last valid step
        assert torch.equal(final[b, 4:], outputs[b, 0, 4:])  # backward direction at step 0
    # Unidirectional: the final is the output at the last valid step.
    uni = _encoder(cell, bidirectional=False)
    outputs, final, _ = uni(x, lengths)
    for b, n in enumerate(LENGTHS):
        assert torch.equal(final[b], outputs[b, n - 1])


@pytest.mark.parametrize("cell", CELLS)
def test_no_lengths_means_full_length(cell):
    enc = _encoder(cell)
    x, _ = _batch()
    full = torch.full((3,), x.shape[1])
    a = enc(x)
    b = enc(x, full)
    assert torch.allclose(a[0], b[0], atol=1e-12, rtol=0)
    assert torch.allclose(a[1], b[1], atol=1e-12, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_initial_state_is_used_and_carries(cell):
    enc = _encoder(cell, bidirectional=False, num_layers=2)
    x, _ = _batch(lengths=[6, 6, 6])
    whole_out, whole_final, whole_state = enc(x)
    # Splitting the sequence and carrying the state gives the same result as one pass.
    first_out, _, state = enc(x[:, :2])
    second_out, second_final, second_state = enc(x[:, 2:], None, state)
    assert torch.allclose(torch.cat([first_out, second_out], 1), whole_out, atol=1e-12, rtol=0)
    assert torch.allclose(second_final, whole_final, atol=1e-12, rtol=0)
    # With lengths (packed path) the initial state also reaches every row, in its own order.
    g = torch.Generator().manual_seed(3)
    shape = (2, 3, 4)
    init = (torch.randn(*shape, generator=g, dtype=torch.float64), torch.randn(*shape, generator=g, dtype=torch.float64))
    init = init if cell == "lstm" else init[0]
    xs, lengths = _batch()
    outputs, _, _ = enc(xs, lengths, init)
    zero_outputs, _, _ = enc(xs, lengths)
    assert not torch.allclose(outputs[:, 0], zero_outputs[:, 0])
    for b, n in enumerate(LENGTHS):
        row = (init[0][:, b : b + 1].contiguous(), init[1][:, b : b + 1].contiguous()) if cell == "lstm" else init[:, b : b + 1].contiguous()
        alone, _, _ = enc(xs[b : b + 1, :n], None, row)
        assert torch.allclose(outputs[b, :n], alone[0], atol=1e-12, rtol=0)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    enc = RecurrentEncoder(3, 4, num_layers=2, cell="lstm", dropout=0.5).double()
    ref = RecurrentEncoder(3, 4, num_layers=2, cell="lstm", dropout=0.0).double()
    ref.load_state_dict(enc.state_dict())
    x, lengths = _batch()
    enc.train()
    a = enc(x, lengths)[0]
    b = enc(x, lengths)[0]
    assert not torch.allclose(a, b)  # dropout is active in training
    enc.eval()
    ref.eval()
    assert torch.equal(enc(x, lengths)[0], ref(x, lengths)[0])  # and off in evaluation
    # One layer: there is no "between", so training mode changes nothing.
    single = RecurrentEncoder(3, 4, num_layers=1, cell="gru", dropout=0.5).double().train()
    assert torch.equal(single(x, lengths)[0], single(x, lengths)[0])


def test_lengths_in_any_form():
    enc = _encoder("gru")
    x, lengths = _batch()
    expected = enc(x, lengths)[0]
    for form in (lengths.to(torch.int32), lengths.tolist()):
        assert torch.equal(enc(x, form)[0], expected)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_with_lengths_on_either_device():
    enc = _encoder("lstm").float()
    x, lengths = _batch()
    expected = enc(x.float(), lengths)[0]
    gpu = enc.to("cuda")
    for where in ("cpu", "cuda"):
        out = gpu(x.float().cuda(), lengths.to(where))[0]
        assert out.device.type == "cuda"
        assert torch.allclose(out.cpu(), expected, atol=1e-4)


def test_errors():
    with pytest.raises(ConfigError, match="unknown cell 'lstn'.*did you mean 'lstm'"):
        RecurrentEncoder(3, cell="lstn")
    with pytest.raises(ConfigError, match="hidden_size"):
        RecurrentEncoder(3, hidden_size=0)
    with pytest.raises(ConfigError, match="dropout"):
        RecurrentEncoder(3, dropout=1.5)
    enc = _encoder("lstm")
    x, lengths = _batch()
    with pytest.raises(InputError, match=r"\(B, T, 3\)"):
        enc(x[..., :2], lengths)
    with pytest.raises(InputError, match=r"\[1, 6\]"):
        enc(x, torch.tensor([7, 2, 4]))
    with pytest.raises(InputError, match=r"\[1, 6\]"):
        enc(x, torch.tensor([0, 2, 4]))
    with pytest.raises(InputError, match=r"shape \(3,\)"):
        enc(x, torch.tensor([5, 2]))
    with pytest.raises(InputError, match="pair"):
        enc(x, lengths, torch.zeros(4, 3, 4, dtype=torch.float64))
    with pytest.raises(InputError, match="shape"):
        enc(x, lengths, (torch.zeros(4, 2, 4), torch.zeros(4, 2, 4)))


def test_config_and_bilstm():
    config = from_dict(RecurrentEncoderConfig, {"input_size": 3, "hidden_size": 5, "cell": "gru", "bidirectional": False})
    enc = RecurrentEncoder.from_config(config)
    assert isinstance(enc.rnn, torch.nn.GRU) and enc.output_size == 5
    with pytest.raises(ConfigError, match="unknown cell"):
        from_dict(RecurrentEncoderConfig, {"cell": "transformer"})
    bi = BiLSTMEncoder(3, hidden_size=5, num_layers=2)
    assert isinstance(bi.rnn, torch.nn.LSTM) and bi.rnn.bidirectional and bi.rnn.num_layers == 2
    assert bi.output_size == 10


def test_stacked_equals_fused_multilayer():
    torch.manual_seed(0)
    fused = RecurrentEncoder(3, 4, num_layers=3, cell="lstm", bidirectional=True).double().eval()
    stacked = StackedRecurrentEncoder(3, [4, 4, 4], cell="lstm", bidirectional=True).double().eval()
    for index, layer in enumerate(stacked.layers):
        for name, param in layer.rnn.named_parameters():
            param.data.copy_(getattr(fused.rnn, name.replace("_l0", f"_l{index}")))
    x, lengths = _batch()
    a_out, a_final, a_state = fused(x, lengths)
    b_out, b_final, b_states = stacked(x, lengths)
    assert torch.allclose(a_out, b_out, atol=1e-12, rtol=0)
    assert torch.allclose(a_final, b_final, atol=1e-12, rtol=0)
    assert torch.allclose(a_state[0][4:6], b_states[2][0], atol=1e-12, rtol=0)


def test_stacked_residual_and_sizes():
    torch.manual_seed(0)
    enc = StackedRecurrentEncoder(3, [5, 5, 2], cell="gru", bidirectional=True, residual=True).double().eval()
    assert enc.residual_layers == [1] and enc.output_size == 4
    x, lengths = _batch()
    outputs, final, states = enc(x, lengths)
    # Recompose by hand: layer 1 adds its input to its output; layers 0 and 2 do not.
    h0, _, _ = enc.layers[0](x, lengths)
    h1, _, _ = enc.layers[1](h0, lengths)
    h2, f2, _ = enc.layers[2](h1 + h0, lengths)
    assert torch.allclose(outputs, h2, atol=1e-12, rtol=0)
    assert torch.allclose(final, f2, atol=1e-12, rtol=0)
    for b, n in enumerate(LENGTHS):
        assert bool(outputs[b, n:].eq(0).all())
    # A residual on the first layer (sizes agree with the input) keeps the pads at zero too.
    first = StackedRecurrentEncoder(4, [2], residual=True).double().eval()
    x4, _ = _batch(input_size=4)
    out = first(x4, lengths)[0]
    assert first.residual_layers == [0]
    for b, n in enumerate(LENGTHS):
        assert bool(out[b, n:].eq(0).all())
        assert torch.allclose(out[b, :n], first.layers[0](x4[b : b + 1, :n])[0][0] + x4[b, :n], atol=1e-12)
    with pytest.raises(ConfigError, match="hidden_sizes"):
        StackedRecurrentEncoder(3, [])
    config = from_dict(StackedRecurrentEncoderConfig, {"input_size": 3, "hidden_sizes": [2, 2], "cell": "rnn"})
    assert StackedRecurrentEncoder.from_config(config).output_size == 4


def test_docs_examples_run():
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "recurrent.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 8
    torch.manual_seed(0)
    for block in blocks:
        exec(compile(block, str(doc), "exec"), {})


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_padded_bidirectional_encoder_equals_the_packed_one(cell):
    from seqlab.nn.recurrent import PaddedBiRecurrentEncoder

    torch.manual_seed(0)
    for layers in (1, 2):
        ref = RecurrentEncoder(5, 4, layers, cell=cell, bidirectional=True).double()
        mine = PaddedBiRecurrentEncoder(5, 4, layers, cell=cell).double()
        for layer in range(layers):
            for reverse, enc in ((False, mine.forward_layers[layer]), (True, mine.backward_layers[layer])):
                suffix = f"_l{layer}" + ("_reverse" if reverse else "")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(enc.rnn, f"{name}_l0").data.copy_(getattr(ref.rnn, name + suffix).data)
        x = torch.randn(3, 7, 5, dtype=torch.double)
        # padded batch (per-direction path); unpadded batch and one sentence (the fused path)
        for inputs, lengths in ((x, torch.tensor([7, 3, 1])), (x, torch.tensor([7, 7, 7])), (x[:1, :4], None)):
            for mode in ("eval", "train"):
                ref.train(mode == "train"), mine.train(mode == "train")
                a = inputs.clone().requires_grad_(True)
                b = inputs.clone().requires_grad_(True)
                expected, expected_final, _ = ref(a, lengths)
                outputs, final, _ = mine(b, lengths)
                assert torch.allclose(outputs, expected, atol=1e-12)
                assert torch.allclose(final, expected_final, atol=1e-12)
                (expected.sum() + expected_final.square().sum()).backward()
                (outputs.sum() + final.square().sum()).backward()
                assert torch.allclose(a.grad, b.grad, atol=1e-12)
