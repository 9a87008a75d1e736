"""Activation functions by name, each with its closed-form derivative.

One table serves every builder (``MLP``, ``ConvStack``, the autoencoders and GANs), so a
recipe names an activation (``"relu"``, ``"leaky_relu"``, ``"sigmoid"``…) and gets the
same function everywhere. Besides the usual deep-learning set it holds the classic
teaching set (e.g. Fausett, 1994, *Fundamentals of Neural Networks*, §1.4; Haykin,
2009, *Neural Networks and Learning Machines*, §4.6), written from their formulas:

==================  =========================================  ==========================================
name                f(x)                                       f'(x)
==================  =========================================  ==========================================
sigmoid             1 / (1 + e^{-λx})                          λ f (1 - f)
bipolar_sigmoid     (1 - e^{-λx}) / (1 + e^{-λx}) = tanh(λx/2)  λ/2 (1 + f)(1 - f)
tanh                tanh x                                     1 - f²
relu                max(0, x)                                  1 if x > 0 else 0
leaky_relu          x if x > 0 else a·x                        1 if x > 0 else a
elu                 x if x > 0 else α(e^x - 1)                 1 if x > 0 else α e^x
binary_step         1 if x ≥ θ else 0                          0 (undefined at θ)
bipolar_step        1 if x ≥ θ else -1                         0 (undefined at θ)
ramp                clip(x, low, high)                         1 if low ≤ x ≤ high else 0
softmax             e^{x_i} / Σ_j e^{x_j}  (along ``dim``)      Jacobian diag(s) - s sᵀ
identity            x                                          1
softplus            log(1 + e^{βx}) / β                        sigmoid(βx)
gelu                x Φ(x)                                     Φ(x) + x φ(x)
silu                x σ(x)                                     σ(x)(1 + x(1 - σ(x)))
==================  =========================================  ==========================================

At a kink (x = 0 for relu, leaky_relu, elu; the thresholds of step and ramp) the value
given is the one autograd uses, so ``derivative`` and ``torch.autograd`` agree wherever
the function is differentiable. Step functions have no useful gradient: they are here
for perceptron exercises, not for backpropagation.

>>> import torch
>>> activate("sigmoid", torch.tensor([0.0]), steepness=2.0)
tensor([0.5000])
>>> derivative("sigmoid", torch.tensor([0.0]), steepness=2.0)
tensor([0.5000])
>>> activation("leaky_relu", slope=0.1)(torch.tensor([-1.0, 2.0]))
tensor([-0.1000,  2.0000])
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.config import suggest
from ..core.errors import ConfigError

__all__ = ["ACTIVATION_NAMES", "Activation", "activate", "activation", "derivative"]


# -- the formulas -------------------------------------------------------------------------
# Where torch has a fused, numerically stable kernel for the same function it is used
# (sigmoid(λx) never overflows, unlike 1/(1+exp(-λx)) written out); the tests check every
# one against the textbook formula.

def _sigmoid(x: Tensor, steepness: float) -> Tensor:
    return torch.sigmoid(steepness * x)


def _d_sigmoid(x: Tensor, steepness: float) -> Tensor:
    f = torch.sigmoid(steepness * x)
    return steepness * f * (1 - f)


def _bipolar_sigmoid(x: Tensor, steepness: float) -> Tensor:
    # (1 - e^{-λx}) / (1 + e^{-λx}) = tanh(λx / 2), which is stable for large |x|.
    return torch.tanh(0.5 * steepness * x)


def _d_bipolar_sigmoid(x: Tensor, steepness: float) -> Tensor:
    f = torch.tanh(0.5 * steepness * x)
    return 0.5 * steepness * (1 + f) * (1 - f)


def _tanh(x: Tensor) -> Tensor:
    return torch.tanh(x)


def _d_tanh(x: Tensor) -> Tensor:
    return 1 - torch.tanh(x) ** 2


def _relu(x: Tensor) -> Tensor:
    return torch.relu(x)


def _d_relu(x: Tensor) -> Tensor:
    return (x > 0).to(x.dtype)


def _leaky_relu(x: Tensor, slope: float) -> Tensor:
    return F.leaky_relu(x, slope)


def _d_leaky_relu(x: Tensor, slope: float) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, slope))


def _elu(x: Tensor, alpha: float) -> Tensor:
    return F.elu(x, alpha)


def _d_elu(x: Tensor, alpha: float) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), alpha * torch.exp(torch.clamp(x, max=0)))


def _binary_step(x: Tensor, threshold: float) -> Tensor:
    return (x >= threshold).to(x.dtype)


def _bipolar_step(x: Tensor, threshold: float) -> Tensor:
    return torch.where(x >= threshold, torch.ones_like(x), -torch.ones_like(x))


def _d_step(x: Tensor, threshold: float) -> Tensor:
    return torch.zeros_like(x)


def _ramp(x: Tensor, low: float, high: float) -> Tensor:
    return torch.clamp(x, low, high)


def _d_ramp(x: Tensor, low: float, high: float) -> Tensor:
    return ((x >= low) & (x <= high)).to(x.dtype)


def _softmax(x: Tensor, dim: int) -> Tensor:
    return torch.softmax(x, dim=dim)


def _d_softmax(x: Tensor, dim: int) -> Tensor:
    # Softmax maps a vector to a vector, so its derivative is a Jacobian per vector:
    # ∂s_i/∂x_j = s_i (δ_ij - s_j). Returned with the two softmax axes last: (..., n, n).
    s = torch.softmax(x, dim=dim).movedim(dim, -1)
    return torch.diag_embed(s) - s.unsqueeze(-1) * s.unsqueeze(-2)


def _identity(x: Tensor) -> Tensor:
    return x


def _d_identity(x: Tensor) -> Tensor:
    return torch.ones_like(x)


def _softplus(x: Tensor, beta: float) -> Tensor:
    return F.softplus(x, beta=beta)


def _d_softplus(x: Tensor, beta: float) -> Tensor:
    return torch.sigmoid(beta * x)


def _gelu(x: Tensor) -> Tensor:
    return F.gelu(x)


def _d_gelu(x: Tensor) -> Tensor:
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


def _silu(x: Tensor) -> Tensor:
    return F.silu(x)


def _d_silu(x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


# -- the table ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Spec:
    function: Callable[..., Tensor]
    derivative: Callable[..., Tensor]
    defaults: dict[str, Any]
    check: Callable[[dict[str, Any], str], None] | None = None


def _positive(*names: str) -> Callable[[dict[str, Any], str], None]:
    def check(params: dict[str, Any], where: str) -> None:
        for name in names:
            if not params[name] > 0:
                raise ConfigError(f"{where}: {name} must be > 0, got {params[name]!r}")
    return check


def _non_negative(*names: str) -> Callable[[dict[str, Any], str], None]:
    def check(params: dict[str, Any], where: str) -> None:
        for name in names:
            if not params[name] >= 0:
                raise ConfigError(f"{where}: {name} must be >= 0, got {params[name]!r}")
    return check


def _check_ramp(params: dict[str, Any], where: str) -> None:
    if not params["low"] < params["high"]:
        raise ConfigError(f"{where}: low must be < high, got low={params['low']!r}, high={params['high']!r}")


_TABLE: dict[str, _Spec] = {
    "sigmoid": _Spec(_sigmoid, _d_sigmoid, {"steepness": 1.0}, _positive("steepness")),
    "bipolar_sigmoid": _Spec(_bipolar_sigmoid, _d_bipolar_sigmoid, {"steepness": 1.0}, _positive("steepness")),
    "tanh": _Spec(_tanh, _d_tanh, {}),
    "relu": _Spec(_relu, _d_relu, {}),
    "leaky_relu": _Spec(_leaky_relu, _d_leaky_relu, {"slope": 0.01}, _non_negative("slope")),
    "elu": _Spec(_elu, _d_elu, {"alpha": 1.0}, _non_negative("alpha")),
    "binary_step": _Spec(_binary_step, _d_step, {"threshold": 0.0}),
    "bipolar_step": _Spec(_bipolar_step, _d_step, {"threshold": 0.0}),
    "ramp": _Spec(_ramp, _d_ramp, {"low": 0.0, "high": 1.0}, _check_ramp),
    "softmax": _Spec(_softmax, _d_softmax, {"dim": -1}),
    "identity": _Spec(_identity, _d_identity, {}),
    "softplus": _Spec(_softplus, _d_softplus, {"beta": 1.0}, _positive("beta")),
    "gelu": _Spec(_gelu, _d_gelu, {}),
    "silu": _Spec(_silu, _d_silu, {}),
}

#: Other spellings people use for the same functions.
_ALIASES = {
    "logistic": "sigmoid",
    "bipolar": "bipolar_sigmoid",
    "leakyrelu": "leaky_relu",
    "linear": "identity",
    "none": "identity",
    "step": "binary_step",
    "heaviside": "binary_step",
    "sign": "bipolar_step",
    "swish": "silu",
}

#: Every canonical activation name, in table order.
ACTIVATION_NAMES: tuple[str, ...] = tuple(_TABLE)


def _lookup(name: str, params: dict[str, Any], where: str) -> tuple[str, _Spec, dict[str, Any]]:
    """Resolve a name (any case, ``-`` or ``_``) and fill in / check its parameters."""
    if not isinstance(name, str):
        raise ConfigError(f"{where}: activation name must be a string, got {name!r}; valid names: {', '.join(ACTIVATION_NAMES)}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in _TABLE:
        raise ConfigError(
            f"{where}: unknown activation {name!r}{suggest(key, list(ACTIVATION_NAMES))}; "
            f"valid names: {', '.join(ACTIVATION_NAMES)}"
        )
    spec = _TABLE[key]
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        valid = ", ".join(sorted(spec.defaults)) or "none"
        raise ConfigError(f"{where}: activation {key!r} takes no parameter {unknown[0]!r}; its parameters: {valid}")
    full = {**spec.defaults, **params}
    for pname, value in full.items():
        want = int if pname == "dim" else float
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (want is int and not isinstance(value, int)):
            raise ConfigError(f"{where}: activation {key!r} parameter {pname} must be a number, got {value!r}")
        full[pname] = want(value)
    if spec.check is not None:
        spec.check(full, f"{where}: activation {key!r}")
    return key, spec, full


def activate(name: str, x: Tensor, **params: Any) -> Tensor:
    """Apply activation ``name`` to ``x`` (the functional form).

    >>> activate("ramp", torch.tensor([-0.5, 0.25, 3.0]))
    tensor([0.0000, 0.2500, 1.0000])
    """
    _, spec, full = _lookup(name, params, "activate")
    return spec.function(x, **full)


def derivative(name: str, x: Tensor, **params: Any) -> Tensor:
    """The derivative f'(x) of activation ``name``, elementwise (same shape as ``x``).

    For ``softmax`` it is the Jacobian of each vector along ``dim``, shape
    ``(..., n, n)`` with the softmax axis moved last: ``J[..., i, j] = ∂s_i/∂x_j``.

    >>> derivative("tanh", torch.tensor([0.0]))
    tensor([1.])
    """
    _, spec, full = _lookup(name, params, "derivative")
    return spec.derivative(x, **full)


class Activation(nn.Module):
    """An activation function as a module, chosen by name with its parameters.

    >>> act = Activation("bipolar_sigmoid", steepness=2.0)
    >>> act
    Activation(bipolar_sigmoid, steepness=2.0)
    >>> act(torch.tensor([0.0]))
    tensor([0.])
    """

    def __init__(self, name: str, **params: Any) -> None:
        super().__init__()
        self.name, self._spec, self.params = _lookup(name, params, "activation")

    def forward(self, x: Tensor) -> Tensor:
        return self._spec.function(x, **self.params)

    def derivative(self, x: Tensor) -> Tensor:
        """f'(x) at ``x`` (see ``derivative``)."""
        return self._spec.derivative(x, **self.params)

    def extra_repr(self) -> str:
        return ", ".join([self.name] + [f"{k}={v!r}" for k, v in self.params.items()])


def activation(name: str | None, **params: Any) -> nn.Module:
    """Build the activation module called ``name``; ``None`` gives ``nn.Identity()``.

    Unknown names raise ``ConfigError`` listing the valid ones.

    >>> activation("elu", alpha=0.5)
    Activation(elu, alpha=0.5)
    """
    if name is None:
        if params:
            raise ConfigError(f"activation: parameters {sorted(params)} given without an activation name")
        return nn.Identity()
    return Activation(name, **params)
