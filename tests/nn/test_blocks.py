"""MLP and ConvStack: the size arithmetic against real torch layers, padding, errors."""
from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from seqlab.core.errors import ConfigError, InputError
from seqlab.nn.blocks import (
    MLP,
    ConvLayerSpec,
    ConvStack,
    ConvStackConfig,
    MLPConfig,
    conv_output_length,
    pool_output_length,
    transposed_conv_output_length,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Hundreds of tiny convolutions: one intra-op thread is faster than waking a pool.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- the helpers against single torch layers -----------------------------------------------------

@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv_output_length_matches_torch_layers_on_random_configs():
    rng = random.Random(0)
    checked = 0
    while checked < 240:
        k, s, d = rng.randint(1, 6), rng.randint(1, 4), rng.randint(1, 3)
        p = rng.choice([0, 1, 2, 3, "valid", "same"])
        n = rng.randint(1, 40)
        two_d = rng.random() < 0.4
        if p == "same" and s > 1:
            continue  # torch's own 'same' needs stride 1; the stack's 'same' is checked below
        expected = conv_output_length(n, k, s, p, d)
        if two_d:
            layer = nn.Conv2d(1, 1, (k, 2), (s, 1), padding=p if isinstance(p, str) else (p, 0), dilation=(d, 1))
            x = torch.zeros(1, 1, n, 3)
        else:
            layer = nn.Conv1d(1, 1, k, s, padding=p, dilation=d)
            x = torch.zeros(1, 1, n)
        if expected < 1:
            with pytest.raises(RuntimeError):
                layer(x)
        else:
            assert layer(x).shape[2] == expected, (n, k, s, p, d)
        checked += 1


def test_pool_and_transposed_lengths_match_torch_layers():
    rng = random.Random(1)
    for _ in range(120):
        n, k = rng.randint(2, 30), rng.randint(1, 4)
        s = rng.choice([None, 1, 2, 3])
        if k <= n:
            x = torch.zeros(1, 1, n)
            assert nn.MaxPool1d(k, s)(x).shape[-1] == pool_output_length(n, k, s)
            assert nn.AvgPool1d(k, s)(x).shape[-1] == pool_output_length(n, k, s)
        kt, st, dt = rng.randint(1, 5), rng.randint(1, 3), rng.randint(1, 2)
        pt = rng.randint(0, (dt * (kt - 1)) // 2)
        op = rng.randint(0, max(st, dt) - 1)
        m = rng.randint(1, 12)
        layer = nn.ConvTranspose1d(1, 1, kt, st, pt, op, dilation=dt)
        assert layer(torch.zeros(1, 1, m)).shape[-1] == transposed_conv_output_length(m, kt, st, pt, dt, op)


def test_length_helpers_take_tensors():
    lengths = torch.tensor([5, 16, 40])
    out = conv_output_length(lengths, kernel=3, stride=2, padding=1)
    assert out.tolist() == [conv_output_length(int(n), 3, 2, 1) for n in lengths]


# -- whole stacks: output_shape against running them ---------------------------------------------------

def _random_spec(rng: random.Random, dims: int) -> dict:
    spec = {
        "channels": rng.randint(1, 3),
        "kernel": rng.randint(1, 4) if dims == 1 or rng.random() < 0.5 else (rng.randint(1, 4), rng.randint(1, 3)),
        "stride": rng.randint(1, 3),
        "padding": rng.choice(["valid", "same", 0, 1, 2]),
        "dilation": rng.randint(1, 2),
        "activation": rng.choice(["relu", "tanh", "leaky_relu", None]),
        "norm": rng.choice([None, None, "batch", "layer"]),
        "pool": rng.choice([None, None, "max", "avg", "global_max", "global_avg"]),
        "pool_kernel": rng.randint(1, 3),
    }
    if rng.random() < 0.3:
        spec["pool_stride"] = rng.randint(1, 2)
    if rng.random() < 0.2:  # an upsampling layer
        spec["transposed"] = True
        spec["padding"] = rng.choice(["valid", 0, 1])
        spec["output_padding"] = rng.randint(0, max(spec["stride"], spec["dilation"]) - 1)
    return spec


@pytest.mark.parametrize("dims", [1, 2])
def test_output_shape_matches_the_real_stack(dims):
    rng = random.Random(10 + dims)
    ran = refused = 0
    for _ in range(130):
        specs = [_random_spec(rng, dims) for _ in range(rng.randint(1, 3))]
        in_channels = rng.randint(1, 3)
        stack = ConvStack(in_channels, specs, dims=dims).eval()
        sizes = (rng.randint(1, 30),) if dims == 1 else (rng.randint(1, 16), rng.randint(1, 16))
        shape = (in_channels, *sizes)
        try:
            expected = stack.output_shape(shape)
        except InputError:
            # Too small for some layer: the raw torch layers must refuse it too.
            refused += 1
            x = torch.randn(2, *shape)
            with pytest.raises(RuntimeError):
                for layer in stack.layers:
                    x, _ = layer(x)
            continue
        y = stack(torch.randn(2, *shape))
        assert tuple(y.shape) == (2, *expected), (specs, shape)
        assert stack.output_shape((2, *shape)) == (2, *expected)
        ran += 1
    assert ran > 60 and refused > 5


@pytest.mark.parametrize("dims", [1, 2])
def test_padded_batches_give_each_sequence_its_own_output(dims):
    """With lengths, padding never leaks in: each example equals its run alone (eval mode)."""
    rng = random.Random(20 + dims)
    checked = 0
    for trial in range(60):
        specs = [_random_spec(rng, dims) for _ in range(rng.randint(1, 3))]
        torch.manual_seed(trial)
        stack = ConvStack(2, specs, dims=dims).eval()
        lengths = torch.tensor([rng.randint(4, 24) for _ in range(3)])
        steps = int(lengths.max()) + rng.randint(0, 5)
        height = rng.randint(6, 10)
        x = torch.randn(3, 2, steps) if dims == 1 else torch.randn(3, 2, height, steps)
        try:
            out_lengths = stack.output_lengths(lengths)
            y, got_lengths = stack(x, lengths)
        except InputError:
            continue
        assert torch.equal(got_lengths, out_lengths)
        for b in range(3):
            alone = stack(x[b: b + 1, ..., : int(lengths[b])])
            n = int(out_lengths[b])
            assert alone.shape[-1] == n
            torch.testing.assert_close(y[b: b + 1, ..., :n], alone, rtol=1e-5, atol=1e-5)
            assert torch.all(y[b, ..., n:] == 0)  # padding is zeroed on the way out
        checked += 1
    assert checked > 25


def test_same_padding_matches_torch_same_for_even_kernels():
    torch.manual_seed(0)
    stack = ConvStack(2, [ConvLayerSpec(channels=3, kernel=4, padding="same", activation=None, dilation=2)])
    ref = nn.Conv1d(2, 3, 4, padding="same", dilation=2)
    ref.load_state_dict(stack.layers[0].conv.state_dict())
    x = torch.randn(2, 2, 11)
    torch.testing.assert_close(stack(x), ref(x))


def test_same_padding_with_stride_gives_ceil_and_transposed_same_gives_n_times_s():
    down = ConvStack(1, [{"channels": 2, "kernel": 3, "stride": 3, "padding": "same"}])
    for n in (1, 8, 9, 10):
        assert down.output_shape((1, n)) == (2, -(-n // 3))
        assert down(torch.randn(1, 1, n)).shape[-1] == -(-n // 3)
    up = ConvStack(2, [{"channels": 1, "kernel": 5, "stride": 2, "padding": "same", "transposed": True}], dims=2)
    assert up.output_shape((2, 3, 7)) == (1, 6, 14)
    assert up(torch.randn(1, 2, 3, 7)).shape == (1, 1, 6, 14)
    with pytest.raises(ConfigError, match="impossible"):
        ConvStack(1, [{"channels": 1, "kernel": 2, "padding": "same", "transposed": True}])


def test_global_pooling_with_lengths_uses_only_valid_steps():
    stack = ConvStack(1, [{"channels": 1, "kernel": 1, "activation": None, "pool": "global_avg"}])
    nn.init.ones_(stack.layers[0].conv.weight)
    nn.init.zeros_(stack.layers[0].conv.bias)
    x = torch.tensor([[[1.0, 2.0, 3.0, 100.0]], [[-5.0, 50.0, 60.0, 70.0]]])
    y, n = stack(x, torch.tensor([3, 1]))
    assert y.flatten().tolist() == [2.0, -5.0] and n.tolist() == [1, 1]
    stack.layers[0].pool_kind = "global_max"
    y, _ = stack(x, torch.tensor([3, 1]))
    assert y.flatten().tolist() == [3.0, -5.0]


def test_layer_norm_is_per_position_over_channels():
    torch.manual_seed(0)
    stack = ConvStack(2, [{"channels": 4, "kernel": 1, "norm": "layer", "activation": None}])
    x = torch.randn(2, 2, 5)
    y = stack(x)
    conv = stack.layers[0].conv(x)
    mean = conv.mean(1, keepdim=True)
    var = conv.var(1, unbiased=False, keepdim=True)
    torch.testing.assert_close(y, (conv - mean) / torch.sqrt(var + 1e-5))


# -- errors -------------------------------------------------------------------------------------------------

def test_input_shorter_than_a_kernel_names_the_layer_and_shapes():
    stack = ConvStack(3, [{"channels": 4, "kernel": 3}, {"channels": 4, "kernel": 5}])
    with pytest.raises(InputError) as err:
        stack(torch.randn(2, 3, 6))
    message = str(err.value)
    assert "layer 1" in message and "kernel 5" in message and "(4,)" in message and "(2, 3, 6)" in message
    with pytest.raises(InputError, match="layer 0 expects 3 input channel"):
        stack.output_shape((2, 10))
    with pytest.raises(InputError, match=r"expects input \(B, C, T\)"):
        stack(torch.randn(3, 10))
    with pytest.raises(InputError, match="layer 1 .*example 1 of length 5"):
        stack.output_lengths(torch.tensor([12, 5]))
    with pytest.raises(InputError, match="lengths must lie in"):
        stack(torch.randn(2, 3, 12), torch.tensor([12, 13]))


def test_bad_configs_are_config_errors():
    with pytest.raises(ConfigError, match="padding"):
        ConvStack(1, [{"channels": 2, "padding": "full"}])
    with pytest.raises(ConfigError, match="unknown key 'kernal'"):
        ConvStack(1, [{"channels": 2, "kernal": 3}])
    with pytest.raises(ConfigError, match="unknown pool 'maximum'"):
        ConvStack(1, [{"channels": 2, "pool": "maximum"}])
    with pytest.raises(ConfigError, match="dims must be 1 or 2"):
        ConvStack(1, [{"channels": 2}], dims=3)
    with pytest.raises(ConfigError, match="output_padding applies only to transposed"):
        ConvStack(1, [{"channels": 2, "output_padding": 1}])
    with pytest.raises(ConfigError, match=r"kernel \(3, 3, 3\) must be one int or 2 ints"):
        ConvStack(1, [{"channels": 2, "kernel": (3, 3, 3)}], dims=2)
    with pytest.raises(ConfigError, match="unknown activation"):
        ConvStack(1, [{"channels": 2, "activation": "relux"}])


def test_from_config_reads_plain_data():
    data = {"in_channels": 13, "dims": 1, "layers": [
        {"channels": 8, "kernel": 3, "stride": 2, "padding": "same", "norm": "batch"},
        {"channels": 8, "kernel": [3], "stride": 2, "padding": 1, "dropout": 0.1},
    ]}
    stack = ConvStack.from_config(data)
    assert isinstance(stack.config, ConvStackConfig)
    assert stack.output_lengths(torch.tensor([100, 7])).tolist() == [25, 2]
    assert stack.output_lengths(100) == 25
    assert stack.out_channels == 8
    same = ConvStack(ConvStackConfig(in_channels=13, layers=[ConvLayerSpec(channels=8, kernel=3, stride=2, padding="same")] * 2))
    assert same.output_lengths(100) == 25 and same.in_channels == 13
    with pytest.raises(ConfigError, match="either a config"):
        ConvStack(data, [{"channels": 2}])


# -- MLP ------------------------------------------------------------------------------------------------------

def test_mlp_computes_the_layers_it_says():
    torch.manual_seed(0)
    mlp = MLP([3, 4, 2], activation="tanh", final_activation="sigmoid")
    x = torch.randn(5, 3)
    first, second = mlp.layers[0], mlp.layers[2]
    expected = torch.sigmoid(second(torch.tanh(first(x))))
    torch.testing.assert_close(mlp(x), expected)
    assert mlp.input_size == 3 and mlp.output_size == 2


def test_mlp_norms_dropout_and_leading_axes():
    torch.manual_seed(0)
    mlp = MLP([4, 6, 6, 3], activation="leaky_relu", activation_params={"slope": 0.1}, dropout=0.5, norm="batch")
    kinds = [type(m).__name__ for m in mlp.layers]
    assert kinds == ["Linear", "_FeatureBatchNorm", "Activation", "Dropout"] * 2 + ["Linear"]
    x = torch.randn(2, 7, 4)
    mlp.eval()
    torch.testing.assert_close(mlp(x)[1, 3], mlp(x[1, 3].unsqueeze(0))[0])
    mlp.train()
    assert not torch.equal(mlp(x), mlp(x))  # dropout is active in training
    layer = MLP([4, 5, 2], norm="layer")
    assert isinstance(layer.layers[1], nn.LayerNorm)


def test_mlp_errors():
    with pytest.raises(InputError, match=r"expects inputs \(\.\.\., 3\)"):
        MLP([3, 2])(torch.randn(2, 4))
    with pytest.raises(ConfigError, match="at least"):
        MLP([3])
    with pytest.raises(ConfigError, match="sizes\\[1\\]"):
        MLP([3, 0, 2])
    with pytest.raises(ConfigError, match="dropout"):
        MLP([3, 2], dropout=1.0)
    with pytest.raises(ConfigError, match="unknown norm"):
        MLP([3, 2], norm="group")
    with pytest.raises(ConfigError, match="unknown key 'size'"):
        MLP.from_config({"size": [3, 2]})
    mlp = MLP.from_config({"sizes": [3, 8, 2], "activation": "elu", "final_activation": "softmax"})
    assert isinstance(mlp.config, MLPConfig)
    torch.testing.assert_close(mlp(torch.randn(4, 3)).sum(-1), torch.ones(4))


def test_nn_docs_examples_run():
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "nn.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 7
    for block in blocks:
        torch.manual_seed(0)
        exec(compile(block, str(doc), "exec"), {})
