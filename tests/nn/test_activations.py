"""Activations and their derivatives against the textbook formulas and against autograd."""
from __future__ import annotations

import math

import pytest
import torch

from seqlab.core.errors import ConfigError
from seqlab.nn.activations import ACTIVATION_NAMES, Activation, activate, activation, derivative

# A grid that avoids the kinks (0 and the ramp's ends), in float64 for tight comparisons.
X = torch.cat([torch.linspace(-4.0, -0.013, 37), torch.linspace(0.011, 4.0, 41)]).double()
X = X[(X - 1.0).abs() > 1e-3]


def _sig(x, lam=1.0):
    return 1.0 / (1.0 + torch.exp(-lam * x))


# name, params, f(x) from the formula, f'(x) from the formula (written independently of the module).
FORMULAS = [
    ("sigmoid", {}, lambda x: _sig(x), lambda x: _sig(x) * (1 - _sig(x))),
    ("sigmoid", {"steepness": 2.5}, lambda x: _sig(x, 2.5), lambda x: 2.5 * _sig(x, 2.5) * (1 - _sig(x, 2.5))),
    (
        "bipolar_sigmoid", {"steepness": 1.5},
        lambda x: (1 - torch.exp(-1.5 * x)) / (1 + torch.exp(-1.5 * x)),
        lambda x: 1.5 / 2 * (1 + (1 - torch.exp(-1.5 * x)) / (1 + torch.exp(-1.5 * x)))
        * (1 - (1 - torch.exp(-1.5 * x)) / (1 + torch.exp(-1.5 * x))),
    ),
    ("tanh", {}, lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
     lambda x: 4 / (torch.exp(x) + torch.exp(-x)) ** 2),
    ("relu", {}, lambda x: torch.where(x > 0, x, 0 * x), lambda x: (x > 0).double()),
    ("leaky_relu", {"slope": 0.2}, lambda x: torch.where(x > 0, x, 0.2 * x),
     lambda x: torch.where(x > 0, 1.0 + 0 * x, 0.2 + 0 * x)),
    ("elu", {"alpha": 0.7}, lambda x: torch.where(x > 0, x, 0.7 * (torch.exp(x) - 1)),
     lambda x: torch.where(x > 0, 1.0 + 0 * x, 0.7 * torch.exp(x))),
    ("binary_step", {}, lambda x: (x >= 0).double(), lambda x: 0 * x),
    ("binary_step", {"threshold": 0.5}, lambda x: (x >= 0.5).double(), lambda x: 0 * x),
    ("bipolar_step", {}, lambda x: torch.where(x >= 0, 1.0 + 0 * x, -1.0 + 0 * x), lambda x: 0 * x),
    ("ramp", {}, lambda x: torch.where(x < 0, 0 * x, torch.where(x > 1, 1 + 0 * x, x)),
     lambda x: ((x > 0) & (x < 1)).double()),
    ("ramp", {"low": -1.0, "high": 2.0}, lambda x: torch.where(x < -1, -1 + 0 * x, torch.where(x > 2, 2 + 0 * x, x)),
     lambda x: ((x > -1) & (x < 2)).double()),
    ("identity", {}, lambda x: x, lambda x: 1 + 0 * x),
    ("softplus", {"beta": 2.0}, lambda x: torch.log(1 + torch.exp(2 * x)) / 2, lambda x: _sig(2 * x)),
    ("gelu", {}, lambda x: x * 0.5 * (1 + torch.erf(x / math.sqrt(2))),
     lambda x: 0.5 * (1 + torch.erf(x / math.sqrt(2))) + x * torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
    ("silu", {}, lambda x: x * _sig(x), lambda x: _sig(x) + x * _sig(x) * (1 - _sig(x))),
]

NOT_DIFFERENTIABLE = {"binary_step", "bipolar_step"}


def test_every_elementwise_activation_has_a_formula_test():
    tested = {name for name, *_ in FORMULAS} | {"softmax"}
    assert tested == set(ACTIVATION_NAMES)


@pytest.mark.parametrize("name, params, f, df", FORMULAS, ids=[f"{n}-{p}" for n, p, *_ in FORMULAS])
def test_value_and_derivative_match_the_formula(name, params, f, df):
    torch.testing.assert_close(activate(name, X, **params), f(X), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(derivative(name, X, **params), df(X), rtol=1e-10, atol=1e-12)
    module = activation(name, **params)
    torch.testing.assert_close(module(X), f(X), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(module.derivative(X), df(X), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, params", [(n, p) for n, p, *_ in FORMULAS if n not in NOT_DIFFERENTIABLE])
def test_derivative_matches_autograd(name, params):
    x = X.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(activate(name, x, **params).sum(), x)
    torch.testing.assert_close(derivative(name, X, **params), grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name, params", [("relu", {}), ("leaky_relu", {"slope": 0.3}), ("elu", {"alpha": 2.0}), ("ramp", {})])
def test_derivative_at_the_kinks_is_the_one_autograd_uses(name, params):
    x = torch.tensor([0.0, 1.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(activate(name, x, **params).sum(), x)
    torch.testing.assert_close(derivative(name, x.detach(), **params), grad)


def test_steps_take_their_value_at_the_threshold():
    x = torch.tensor([-0.1, 0.0, 0.1])
    assert activate("binary_step", x).tolist() == [0.0, 1.0, 1.0]
    assert activate("bipolar_step", x).tolist() == [-1.0, 1.0, 1.0]
    assert derivative("bipolar_step", x).tolist() == [0.0, 0.0, 0.0]


def test_sigmoids_stay_finite_for_large_inputs():
    x = torch.tensor([-1000.0, 1000.0])
    assert activate("sigmoid", x, steepness=3.0).tolist() == [0.0, 1.0]
    assert activate("bipolar_sigmoid", x).tolist() == [-1.0, 1.0]
    assert torch.isfinite(derivative("sigmoid", x)).all() and torch.isfinite(derivative("bipolar_sigmoid", x)).all()


def test_bipolar_sigmoid_is_a_scaled_sigmoid():
    # (1 - e^{-λx})/(1 + e^{-λx}) = 2σ(λx) - 1
    torch.testing.assert_close(activate("bipolar_sigmoid", X, steepness=0.5), 2 * _sig(X, 0.5) - 1)


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_value_and_jacobian(dim):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    torch.testing.assert_close(activate("softmax", x, dim=dim), e / e.sum(dim=dim, keepdim=True))
    jac = derivative("softmax", x, dim=dim)
    moved = x.movedim(dim, -1)
    assert jac.shape == (*moved.shape, moved.shape[-1])
    # Against autograd for one vector: J[i, j] = ∂s_i/∂x_j.
    vector = moved[1, 2]
    expected = torch.autograd.functional.jacobian(lambda v: torch.softmax(v, dim=0), vector)
    torch.testing.assert_close(jac[1, 2], expected)
    # Closed form diag(s) - s sᵀ, and every row of the Jacobian sums to 0 (softmax sums to 1).
    s = torch.softmax(vector, 0)
    torch.testing.assert_close(jac[1, 2], torch.diag(s) - torch.outer(s, s))
    torch.testing.assert_close(jac.sum(-2), torch.zeros_like(moved), atol=1e-12, rtol=0)


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ConfigError) as err:
        activation("reluu")
    message = str(err.value)
    assert "'reluu'" in message and "did you mean 'relu'" in message
    for name in ACTIVATION_NAMES:
        assert name in message
    with pytest.raises(ConfigError, match="valid names"):
        activate("swishy", torch.zeros(1))
    with pytest.raises(ConfigError, match="valid names"):
        derivative("nope", torch.zeros(1))


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="takes no parameter 'steepness'; its parameters: none"):
        activation("relu", steepness=2.0)
    with pytest.raises(ConfigError, match="its parameters: slope"):
        activation("leaky_relu", alpha=0.1)
    with pytest.raises(ConfigError, match="steepness must be > 0"):
        activation("sigmoid", steepness=0.0)
    with pytest.raises(ConfigError, match="low must be < high"):
        activation("ramp", low=1.0, high=1.0)
    with pytest.raises(ConfigError, match="must be a number"):
        activation("elu", alpha="big")
    with pytest.raises(ConfigError, match="alpha must be >= 0"):
        activation("elu", alpha=-1.0)


def test_names_are_forgiving_and_none_is_identity():
    assert activation("Leaky-ReLU", slope=0.5).name == "leaky_relu"
    assert activation("logistic").name == "sigmoid"
    assert isinstance(activation(None), torch.nn.Identity)
    act = Activation("sigmoid", steepness=2)
    assert act.params == {"steepness": 2.0}
    assert repr(act) == "Activation(sigmoid, steepness=2.0)"


def test_activation_module_keeps_gradients_and_device():
    x = torch.randn(5, requires_grad=True)
    y = activation("elu", alpha=0.5)(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, derivative("elu", x.detach(), alpha=0.5))
    assert y.device == x.device
