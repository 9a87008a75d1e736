"""Autoencoders: undercomplete, denoising, sparse, contractive, variational; dense,
convolutional and recurrent (sequence) encoders.

An autoencoder learns ``code = encode(x)`` and ``x̂ = decode(code)`` to reconstruct x;
what keeps it from learning the identity is the regulariser (Goodfellow, Bengio &
Courville, 2016, *Deep Learning*, ch. 14):

- **undercomplete**: a code smaller than the input (§14.1);
- **denoising**: reconstruct the clean x from a corrupted x̃ — Gaussian noise, masking
  noise (a random fraction of entries set to 0) or salt-and-pepper noise (a random
  fraction set to the minimum or maximum) (Vincent et al., 2010, JMLR 11, §4.2);
- **sparse**: add λ·Ω(code), Ω = Σ|h_j| (L1), or Ω = Σ_j KL(ρ ‖ ρ̂_j), where ρ̂_j is the
  mean activation of code unit j over the batch and ρ the target activation
  (Ng, 2011, "Sparse autoencoder", CS294A notes, §3);
- **contractive**: add λ·‖J_f(x)‖²_F, the squared Frobenius norm of the encoder's
  Jacobian (Rifai et al., 2011, ICML, eq. 3). For a sigmoid layer h = σ(Wx + b) it has the
  closed form Σ_j (h_j(1 − h_j))² Σ_i W_ji² (their eq. 4); any other encoder uses autograd;
- **variational**: the encoder gives q(z|x) = N(μ, diag σ²); z = μ + σ ⊙ ε with
  ε ~ N(0, I) (the reparameterisation trick) and the loss is the negative ELBO,
  reconstruction + β·KL(q(z|x) ‖ N(0, I)), with the closed form
  KL = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²) (Kingma & Welling, 2014, appendix B;
  β-VAE: Higgins et al., 2017).

Every model has one interface: ``forward(x) -> (reconstruction, extras)``,
``loss(x) -> (total, parts)`` and ``reconstruction_error(x) -> (B,)`` — the mean error of
each example, the anomaly score. Sequence models take ``lengths`` as a second argument.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.config import suggest
from ..core.errors import ConfigError, InputError
from .activations import activation as make_activation
from .blocks import MLP, ConvLayerSpec, ConvStack
from .recurrent import RecurrentEncoder

__all__ = [
    "Autoencoder",
    "ContractiveAutoencoder",
    "ConvAutoencoder",
    "DenoisingAutoencoder",
    "DenseAutoencoder",
    "NOISES",
    "SequenceAutoencoder",
    "SparseAutoencoder",
    "UndercompleteAutoencoder",
    "VariationalAutoencoder",
    "contractive_penalty",
    "gaussian_kl",
    "gaussian_noise",
    "kl_sparsity",
    "l1_sparsity",
    "masking_noise",
    "salt_and_pepper_noise",
    "sigmoid_contractive_penalty",
]


# -- corruption (denoising) -------------------------------------------------------------------

def _check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}: the fraction of corrupted entries must be in [0, 1], got {value!r}")
    return float(value)


def _rand(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def gaussian_noise(x: Tensor, std: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """x + N(0, std²) noise on every entry.

    >>> gaussian_noise(torch.zeros(3), std=0.0)
    tensor([0., 0., 0.])
    """
    if isinstance(std, bool) or not isinstance(std, (int, float)) or std < 0:
        raise ConfigError(f"gaussian_noise: std must be a number >= 0, got {std!r}")
    return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def masking_noise(x: Tensor, fraction: float = 0.25, generator: torch.Generator | None = None) -> Tensor:
    """Each entry set to 0 with probability ``fraction`` (Vincent et al., 2010).

    >>> masking_noise(torch.ones(4), fraction=1.0)
    tensor([0., 0., 0., 0.])
    """
    fraction = _check_fraction(fraction, "masking_noise")
    return x.masked_fill(_rand(x, generator) < fraction, 0.0)


def salt_and_pepper_noise(
    x: Tensor,
    fraction: float = 0.1,
    low: float | None = None,
    high: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Each entry, with probability ``fraction``, set to ``low`` or ``high`` (even odds).

    ``low`` / ``high`` default to the minimum / maximum of ``x``.

    >>> y = salt_and_pepper_noise(torch.tensor([0.5, 0.5, 0.5, 0.5]), 1.0, low=0.0, high=1.0)
    >>> sorted(set(y.tolist())) in ([0.0], [1.0], [0.0, 1.0])
    True
    """
    fraction = _check_fraction(fraction, "salt_and_pepper_noise")
    low = float(x.min()) if low is None else low
    high = float(x.max()) if high is None else high
    hit = _rand(x, generator) < fraction
    salt = _rand(x, generator) < 0.5
    return torch.where(hit, torch.where(salt, torch.full_like(x, high), torch.full_like(x, low)), x)


#: The corruption of a denoising autoencoder by name: name → fn(x, level).
NOISES: dict[str, Callable[[Tensor, float], Tensor]] = {
    "gaussian": lambda x, level: gaussian_noise(x, level),
    "masking": lambda x, level: masking_noise(x, level),
    "salt_and_pepper": lambda x, level: salt_and_pepper_noise(x, level),
}


# -- penalties ----------------------------------------------------------------------------------

def l1_sparsity(code: Tensor) -> Tensor:
    """Σ_j |h_j| per example, averaged over the batch.

    >>> l1_sparsity(torch.tensor([[1.0, -2.0], [0.0, 1.0]]))
    tensor(2.)
    """
    return code.reshape(code.shape[0], -1).abs().sum(1).mean()


def kl_sparsity(code: Tensor, target: float) -> Tensor:
    """Σ_j KL(ρ ‖ ρ̂_j) = Σ_j ρ log(ρ/ρ̂_j) + (1−ρ) log((1−ρ)/(1−ρ̂_j)), ρ̂_j the batch mean of unit j.

    The code must lie in [0, 1] (a sigmoid code); ρ = ``target`` in (0, 1).

    >>> float(kl_sparsity(torch.full((4, 3), 0.05), 0.05))
    0.0
    """
    _check_target(target)
    low, high = (float(v) for v in torch.aminmax(code.detach())) if code.numel() else (0.0, 0.0)
    if low < 0 or high > 1:
        raise InputError(
            "kl_sparsity: the code must lie in [0, 1] (a mean activation is compared with the target "
            f"probability); got values in [{low:.3g}, {high:.3g}]. Use a sigmoid code "
            "activation, or sparsity='l1'"
        )
    rho_hat = code.reshape(code.shape[0], -1).mean(0).clamp(1e-6, 1 - 1e-6)
    rho = target
    return (rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()


def _check_target(target: Any) -> float:
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 < target < 1.0:
        raise ConfigError(f"sparsity_target ρ must be in (0, 1) (a target mean activation), got {target!r}")
    return float(target)


def _jacobian_frobenius(code: Tensor, x: Tensor) -> Tensor:
    """Σ_{j,i} (∂h_j/∂x_i)² per example, averaged over the batch, by one backward pass per unit.

    Valid when example b's code depends only on example b's input (no batch norm in
    training mode), which lets one pass over ``h[:, j].sum()`` give every example's row j.
    """
    flat = code.reshape(code.shape[0], -1)
    total = x.new_zeros(x.shape[0])
    for j in range(flat.shape[1]):
        (grad,) = torch.autograd.grad(flat[:, j].sum(), x, create_graph=True, retain_graph=True)
        total = total + grad.reshape(x.shape[0], -1).pow(2).sum(1)
    return total.mean()


def contractive_penalty(encoder: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """‖J_f(x)‖²_F of ``encoder`` at each example, averaged over the batch (autograd; differentiable).

    >>> lin = nn.Linear(3, 2)
    >>> bool(torch.isclose(contractive_penalty(lin, torch.randn(4, 3)), lin.weight.pow(2).sum()))
    True
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        return _jacobian_frobenius(encoder(x), x)


def sigmoid_contractive_penalty(code: Tensor, weight: Tensor) -> Tensor:
    """Closed form of ‖J‖²_F for h = σ(Wx + b): Σ_j (h_j(1 − h_j))² Σ_i W_ji², batch mean.

    ``code`` is h (B, code), ``weight`` is W (code, input).
    """
    slope = (code * (1 - code)).pow(2)  # (B, code)
    return (slope * weight.pow(2).sum(1)).sum(1).mean()


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = −½ Σ_j (1 + log σ_j² − μ_j² − σ_j²), one value per example.

    >>> gaussian_kl(torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2))   # ½ μ² when σ = 1
    tensor([0.5000])
    """
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).reshape(mu.shape[0], -1).sum(1)


# -- the common interface -------------------------------------------------------------------------

@contextlib.contextmanager
def _evaluating(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


RECONSTRUCTION_LOSSES = ("mse", "bce")
SPARSITIES = ("l1", "kl")


def _elementwise_error(recon: Tensor, x: Tensor, kind: str) -> Tensor:
    if kind == "mse":
        return (recon - x).pow(2)
    return F.binary_cross_entropy(recon.clamp(0, 1), x, reduction="none")


def _check_weight(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
        raise ConfigError(f"{where}: {name} must be a number >= 0, got {value!r}")
    return float(value)


class Autoencoder(nn.Module):
    """An ``encoder`` and a ``decoder`` with the regularisers above, chosen by keyword.

    - ``reconstruction``: ``"mse"`` (mean squared error over entries) or ``"bce"``
      (binary cross-entropy; the decoder must output values in [0, 1], e.g. a sigmoid);
    - ``noise`` (``"gaussian"``, ``"masking"``, ``"salt_and_pepper"`` or None) at
      ``noise_level`` (the std, or the fraction of corrupted entries), applied in training only;
    - ``sparsity`` (``"l1"``, ``"kl"`` or None) with ``sparsity_weight`` and, for KL,
      ``sparsity_target`` ρ in (0, 1);
    - ``contractive_weight`` > 0 adds the Jacobian penalty.

    ``loss(x)`` returns ``(total, parts)``: the raw terms ``parts["reconstruction"]``,
    ``parts["sparsity"]``, ``parts["contractive"]`` (those in use), and
    ``total = reconstruction + sparsity_weight·sparsity + contractive_weight·contractive``.

    >>> ae = Autoencoder(nn.Linear(4, 2), nn.Linear(2, 4), sparsity="l1", sparsity_weight=0.1)
    >>> recon, extras = ae(torch.randn(3, 4))
    >>> recon.shape, extras["code"].shape
    (torch.Size([3, 4]), torch.Size([3, 2]))
    >>> total, parts = ae.loss(torch.randn(3, 4))
    >>> sorted(parts)
    ['reconstruction', 'sparsity']
    >>> ae.reconstruction_error(torch.randn(3, 4)).shape
    torch.Size([3])
    """

    #: Whether ``forward``/``loss`` take ``lengths`` (sequence models).
    takes_lengths = False

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        *,
        reconstruction: str = "mse",
        noise: str | None = None,
        noise_level: float = 0.1,
        sparsity: str | None = None,
        sparsity_weight: float = 1e-2,
        sparsity_target: float = 0.05,
        contractive_weight: float = 0.0,
    ) -> None:
        super().__init__()
        where = type(self).__name__
        if reconstruction not in RECONSTRUCTION_LOSSES:
            raise ConfigError(
                f"{where}: unknown reconstruction loss {reconstruction!r}{suggest(str(reconstruction), list(RECONSTRUCTION_LOSSES))}; "
                f"valid: {', '.join(RECONSTRUCTION_LOSSES)}"
            )
        if noise is not None and noise not in NOISES:
            raise ConfigError(
                f"{where}: unknown noise {noise!r}{suggest(str(noise), list(NOISES))}; valid: {', '.join(NOISES)} or None"
            )
        if noise == "gaussian":
            _check_weight(noise_level, "noise_level (the noise std)", where)
        elif noise is not None:
            _check_fraction(noise_level, f"{where}: noise_level")
        if sparsity is not None and sparsity not in SPARSITIES:
            raise ConfigError(
                f"{where}: unknown sparsity {sparsity!r}{suggest(str(sparsity), list(SPARSITIES))}; valid: l1, kl or None"
            )
        try:
            _check_target(sparsity_target)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        self.encoder = encoder
        self.decoder = decoder
        self.reconstruction = reconstruction
        self.noise = noise
        self.noise_level = float(noise_level)
        self.sparsity = sparsity
        self.sparsity_weight = _check_weight(sparsity_weight, "sparsity_weight", where)
        self.sparsity_target = float(sparsity_target)
        self.contractive_weight = _check_weight(contractive_weight, "contractive_weight", where)

    # -- the two halves (subclasses with their own shapes override these) -------------------------
    def _no_lengths(self, lengths: Tensor | None) -> None:
        if lengths is not None and not self.takes_lengths:
            raise InputError(f"{type(self).__name__} works on fixed-size inputs and takes no lengths")

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The code of ``x`` (no noise)."""
        self._no_lengths(lengths)
        return self.encoder(x)

    def decode(self, code: Tensor) -> Tensor:
        return self.decoder(code)

    def _reconstruct(self, code: Tensor, x: Tensor, lengths: Tensor | None) -> Tensor:
        return self.decode(code)

    def _valid(self, x: Tensor, lengths: Tensor | None) -> Tensor | None:
        """(B, T, 1) float mask of the real steps of a sequence batch; None when all are real."""
        return None

    def corrupt(self, x: Tensor) -> Tensor:
        """x̃: ``x`` with this model's noise (``x`` itself when it has none)."""
        if self.noise is None:
            return x
        return NOISES[self.noise](x, self.noise_level)

    def _contractive_closed_form(self, code: Tensor) -> Tensor | None:
        """Subclasses with a single sigmoid encoder layer return the closed-form penalty."""
        return None

    # -- the interface ----------------------------------------------------------------------------
    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """``(reconstruction, {"code", "input"})``; ``input`` is the corrupted x̃ in training."""
        x_in = self.corrupt(x) if self.training else x
        code = self.encode(x_in, lengths)
        return self._reconstruct(code, x, lengths), {"code": code, "input": x_in}

    def loss(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        x_in = self.corrupt(x) if self.training else x
        contractive = self.contractive_weight > 0
        closed = None
        if contractive:
            x_in = x_in.detach().requires_grad_(True)
        code = self.encode(x_in, lengths)
        recon = self._reconstruct(code, x, lengths)
        parts = {"reconstruction": self._reconstruction_loss(recon, x, lengths)}
        total = parts["reconstruction"]
        if self.sparsity == "l1":
            parts["sparsity"] = l1_sparsity(code)
        elif self.sparsity == "kl":
            parts["sparsity"] = kl_sparsity(code, self.sparsity_target)
        if "sparsity" in parts:
            total = total + self.sparsity_weight * parts["sparsity"]
        if contractive:
            closed = self._contractive_closed_form(code)
            parts["contractive"] = closed if closed is not None else _jacobian_frobenius(code, x_in)
            total = total + self.contractive_weight * parts["contractive"]
        return total, parts

    def _reconstruction_loss(self, recon: Tensor, x: Tensor, lengths: Tensor | None) -> Tensor:
        err = _elementwise_error(recon, x, self.reconstruction)
        valid = self._valid(x, lengths)
        if valid is None:
            return err.mean()
        return (err * valid).sum() / (valid.sum() * x.shape[-1]).clamp(min=1)

    def reconstruction_error(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Mean reconstruction error of each example, ``(B,)``: no noise, eval mode, no grad."""
        with _evaluating(self):
            recon = self._reconstruct(self.encode(x, lengths), x, lengths)
            err = _elementwise_error(recon, x, self.reconstruction)
            valid = self._valid(x, lengths)
            if valid is None:
                return err.reshape(x.shape[0], -1).mean(1)
            return (err * valid).reshape(x.shape[0], -1).sum(1) / (valid.reshape(x.shape[0], -1).sum(1) * x.shape[-1])


# -- dense -------------------------------------------------------------------------------------------

def _code_activation(code_activation: str | None, sparsity: str | None, where: str) -> str | None:
    """A KL-sparse code must be a probability: default it to sigmoid, refuse anything else."""
    if sparsity == "kl":
        if code_activation is None:
            return "sigmoid"
        if code_activation != "sigmoid":
            raise ConfigError(
                f"{where}: sparsity 'kl' compares mean code activations with a target probability, so the code "
                f"activation must be 'sigmoid', got {code_activation!r} (or use sparsity 'l1')"
            )
    return code_activation


class DenseAutoencoder(Autoencoder):
    """MLP encoder ``[input, *hidden, code]`` and mirrored MLP decoder, on ``(B, input_size)``.

    ``code_activation`` (default linear; sigmoid when ``sparsity="kl"``) ends the encoder,
    ``output_activation`` the decoder (e.g. ``"sigmoid"`` for data in [0, 1] with
    ``reconstruction="bce"``). Regularisers: see ``Autoencoder``.

    >>> ae = DenseAutoencoder(8, 3, hidden_sizes=(6,), noise="masking", noise_level=0.2)
    >>> ae(torch.randn(5, 8))[0].shape
    torch.Size([5, 8])
    """

    def __init__(
        self,
        input_size: int,
        code_size: int,
        hidden_sizes: Sequence[int] = (),
        activation: str = "relu",
        code_activation: str | None = None,
        output_activation: str | None = None,
        dropout: float = 0.0,
        **regularizers: Any,
    ) -> None:
        where = type(self).__name__
        code_activation = _code_activation(code_activation, regularizers.get("sparsity"), where)
        sizes = [input_size, *hidden_sizes, code_size]
        encoder = MLP(sizes, activation, dropout, final_activation=code_activation)
        decoder = MLP(sizes[::-1], activation, dropout, final_activation=output_activation)
        super().__init__(encoder, decoder, **regularizers)
        self.input_size, self.code_size = input_size, code_size
        self.code_activation = code_activation
        # Rifai et al.'s closed form holds for exactly one sigmoid layer σ(Wx + b).
        self.contractive_method = (
            "closed_form" if not hidden_sizes and code_activation in ("sigmoid", "logistic") else "autograd"
        )

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        self._no_lengths(lengths)
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise InputError(f"{type(self).__name__} expects x of shape (B, {self.input_size}), got {tuple(x.shape)}")
        return self.encoder(x)

    def _contractive_closed_form(self, code: Tensor) -> Tensor | None:
        if self.contractive_method != "closed_form":
            return None
        return sigmoid_contractive_penalty(code, self.encoder.layers[0].weight)


class UndercompleteAutoencoder(DenseAutoencoder):
    """A ``DenseAutoencoder`` whose code is smaller than its input (the bottleneck is the regulariser).

    >>> UndercompleteAutoencoder(4, 8)
    Traceback (most recent call last):
    ...
    seqlab.core.errors.ConfigError: UndercompleteAutoencoder: code_size 8 must be smaller than input_size 4
    """

    def __init__(self, input_size: int, code_size: int, hidden_sizes: Sequence[int] = (), **kwargs: Any) -> None:
        if isinstance(code_size, int) and isinstance(input_size, int) and code_size >= input_size:
            raise ConfigError(
                f"{type(self).__name__}: code_size {code_size} must be smaller than input_size {input_size}"
            )
        super().__init__(input_size, code_size, hidden_sizes, **kwargs)


class DenoisingAutoencoder(DenseAutoencoder):
    """A ``DenseAutoencoder`` trained to undo ``noise`` (default Gaussian, std 0.1).

    >>> DenoisingAutoencoder(8, 4, noise="salt_and_pepper", noise_level=0.1).noise
    'salt_and_pepper'
    """

    def __init__(
        self, input_size: int, code_size: int, hidden_sizes: Sequence[int] = (),
        noise: str = "gaussian", noise_level: float = 0.1, **kwargs: Any,
    ) -> None:
        if noise is None:
            raise ConfigError(f"{type(self).__name__}: noise must be one of {', '.join(NOISES)}, not None")
        super().__init__(input_size, code_size, hidden_sizes, noise=noise, noise_level=noise_level, **kwargs)


class SparseAutoencoder(DenseAutoencoder):
    """A ``DenseAutoencoder`` with a sparsity penalty: KL to ``sparsity_target`` ρ (default) or L1.

    >>> SparseAutoencoder(8, 16, sparsity_target=1.5)
    Traceback (most recent call last):
    ...
    seqlab.core.errors.ConfigError: SparseAutoencoder: sparsity_target ρ must be in (0, 1) (a target mean activation), got 1.5
    """

    def __init__(
        self, input_size: int, code_size: int, hidden_sizes: Sequence[int] = (),
        sparsity: str = "kl", sparsity_weight: float = 0.1, sparsity_target: float = 0.05, **kwargs: Any,
    ) -> None:
        if sparsity is None:
            raise ConfigError(f"{type(self).__name__}: sparsity must be 'kl' or 'l1', not None")
        super().__init__(
            input_size, code_size, hidden_sizes, sparsity=sparsity, sparsity_weight=sparsity_weight,
            sparsity_target=sparsity_target, **kwargs,
        )


class ContractiveAutoencoder(DenseAutoencoder):
    """A ``DenseAutoencoder`` with the contractive penalty; a sigmoid code layer by default,
    so with no hidden layers the penalty uses Rifai et al.'s closed form.

    >>> ContractiveAutoencoder(8, 4).contractive_method
    'closed_form'
    >>> ContractiveAutoencoder(8, 4, hidden_sizes=(6,)).contractive_method
    'autograd'
    """

    def __init__(
        self, input_size: int, code_size: int, hidden_sizes: Sequence[int] = (),
        contractive_weight: float = 0.1, code_activation: str | None = "sigmoid", **kwargs: Any,
    ) -> None:
        super().__init__(
            input_size, code_size, hidden_sizes, code_activation=code_activation,
            contractive_weight=contractive_weight, **kwargs,
        )
        if self.contractive_weight <= 0:
            raise ConfigError(f"{type(self).__name__}: contractive_weight must be > 0, got {contractive_weight!r}")


# -- convolutional -----------------------------------------------------------------------------------

class ConvAutoencoder(Autoencoder):
    """Strided convolutions down, transposed convolutions back up, for ``(B, *input_shape)``.

    ``input_shape`` is ``(C, T)`` (1-D) or ``(C, H, W)`` (2-D). Each encoder layer halves
    (``stride``) the size with an odd ``kernel`` and padding (kernel−1)/2, i.e.
    ceil(n/s); each decoder layer inverts one, its ``output_padding`` computed so the
    reconstruction has exactly the input's shape, whatever the sizes. ``code_size`` adds a
    linear bottleneck after the convolutions (else the code is the last feature map).

    >>> ae = ConvAutoencoder((1, 13, 30), channels=(4, 8))
    >>> ae.code_shape
    (8, 4, 8)
    >>> ae(torch.randn(2, 1, 13, 30))[0].shape
    torch.Size([2, 1, 13, 30])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        channels: Sequence[int] = (16, 32),
        kernel: int = 3,
        stride: int = 2,
        activation: str = "relu",
        output_activation: str | None = None,
        norm: str | None = None,
        code_size: int | None = None,
        code_activation: str | None = None,
        **regularizers: Any,
    ) -> None:
        where = type(self).__name__
        input_shape = tuple(input_shape)
        if len(input_shape) not in (2, 3) or any(not isinstance(s, int) or s < 1 for s in input_shape):
            raise ConfigError(f"{where}: input_shape must be (C, T) or (C, H, W) positive ints, got {input_shape!r}")
        if not channels:
            raise ConfigError(f"{where}: channels is empty; give one entry per encoder layer")
        if not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise ConfigError(f"{where}: kernel must be an odd positive integer (so padding (k−1)/2 centres it), got {kernel!r}")
        dims = len(input_shape) - 1
        pad = (kernel - 1) // 2
        down = [
            ConvLayerSpec(channels=c, kernel=kernel, stride=stride, padding=pad, activation=activation, norm=norm)
            for c in channels
        ]
        conv_encoder = ConvStack(input_shape[0], down, dims=dims)
        # Sizes at every encoder boundary, to give each transposed layer the right output_padding.
        sizes = [input_shape[1:]]
        for layer in conv_encoder.layers:
            try:
                sizes.append(layer.output_sizes(sizes[-1], input_shape))
            except InputError as err:
                raise ConfigError(f"{where}: input_shape {input_shape} is too small for {len(channels)} layers: {err}") from None
        up = []
        outs = [*list(channels[:-1])[::-1], input_shape[0]]
        for i, out_channels in enumerate(outs):
            small, large = sizes[-1 - i], sizes[-2 - i]
            last = i == len(outs) - 1
            up.append(ConvLayerSpec(
                channels=out_channels, kernel=kernel, stride=stride, padding=pad, transposed=True,
                output_padding=tuple(n - ((m - 1) * stride + 1) for n, m in zip(large, small)),
                activation=output_activation if last else activation, norm=None if last else norm,
            ))
        conv_decoder = ConvStack(channels[-1], up, dims=dims)
        feature_shape = (channels[-1], *sizes[-1])
        if code_size is not None:
            flat = math.prod(feature_shape)
            code_activation = _code_activation(code_activation, regularizers.get("sparsity"), where)
            encoder: nn.Module = nn.Sequential(
                conv_encoder, nn.Flatten(), nn.Linear(flat, code_size), make_activation(code_activation)
            )
            decoder: nn.Module = nn.Sequential(
                nn.Linear(code_size, flat), make_activation(activation), nn.Unflatten(1, feature_shape), conv_decoder
            )
            self_code_shape: tuple[int, ...] = (code_size,)
        else:
            if regularizers.get("sparsity") == "kl":
                raise ConfigError(f"{where}: sparsity 'kl' needs a sigmoid code; set code_size (and the code is a sigmoid layer)")
            encoder, decoder = conv_encoder, conv_decoder
            self_code_shape = feature_shape
        super().__init__(encoder, decoder, **regularizers)
        self.input_shape = input_shape
        self.code_shape = self_code_shape

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        self._no_lengths(lengths)
        if tuple(x.shape[1:]) != self.input_shape:
            raise InputError(
                f"{type(self).__name__} expects x of shape (B, {', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}"
            )
        return self.encoder(x)


# -- recurrent ----------------------------------------------------------------------------------------

class SequenceAutoencoder(Autoencoder):
    """A recurrent sequence autoencoder (Srivastava, Mansimov & Salakhutdinov, 2015, §2.2).

    A GRU/LSTM reads the padded sequence ``(B, T, input_size)`` (packed, so pads are never
    read); its final state becomes the code ``(B, code_size)``. The decoder starts from a
    state computed from the code and, at every step, is fed the code again (an
    unconditioned decoder: it cannot copy its previous output), then a linear layer gives
    the frame. Pass ``lengths`` to every method; padded steps count in no loss or error.

    >>> ae = SequenceAutoencoder(5, hidden_size=8, code_size=3, cell="gru")
    >>> recon, extras = ae(torch.randn(2, 7, 5), torch.tensor([7, 4]))
    >>> recon.shape, extras["code"].shape
    (torch.Size([2, 7, 5]), torch.Size([2, 3]))
    >>> ae.reconstruction_error(torch.randn(2, 7, 5), torch.tensor([7, 4])).shape
    torch.Size([2])
    """

    takes_lengths = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int = 64,
        code_size: int = 32,
        cell: str = "gru",
        num_layers: int = 1,
        bidirectional: bool = False,
        code_activation: str | None = None,
        output_activation: str | None = None,
        **regularizers: Any,
    ) -> None:
        where = type(self).__name__
        code_activation = _code_activation(code_activation, regularizers.get("sparsity"), where)
        encoder = RecurrentEncoder(input_size, hidden_size, num_layers, cell, bidirectional)
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[encoder.cell]
        decoder = rnn_cls(code_size, hidden_size, num_layers=num_layers, batch_first=True)
        super().__init__(encoder, decoder, **regularizers)
        self.input_size, self.code_size, self.num_layers = input_size, code_size, num_layers
        self.to_code = nn.Sequential(nn.Linear(encoder.output_size, code_size), make_activation(code_activation))
        self.to_state = nn.Linear(code_size, num_layers * hidden_size)
        self.to_frame = nn.Sequential(nn.Linear(hidden_size, input_size), make_activation(output_activation))
        self.is_lstm = encoder.cell == "lstm"

    def encode(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise InputError(f"{type(self).__name__} expects x of shape (B, T, {self.input_size}), got {tuple(x.shape)}")
        _, final, _ = self.encoder(x, lengths)
        return self.to_code(final)

    def decode(self, code: Tensor, steps: int) -> Tensor:
        """Frames ``(B, steps, input_size)`` from codes ``(B, code_size)``."""
        batch = code.shape[0]
        h0 = torch.tanh(self.to_state(code)).view(batch, self.num_layers, -1).transpose(0, 1).contiguous()
        state = (h0, torch.zeros_like(h0)) if self.is_lstm else h0
        outputs, _ = self.decoder(code.unsqueeze(1).expand(batch, steps, code.shape[1]), state)
        return self.to_frame(outputs)

    def _reconstruct(self, code: Tensor, x: Tensor, lengths: Tensor | None) -> Tensor:
        recon = self.decode(code, x.shape[1])
        valid = self._valid(x, lengths)
        return recon if valid is None else recon * valid

    def _valid(self, x: Tensor, lengths: Tensor | None) -> Tensor | None:
        if lengths is None:
            return None
        steps = torch.arange(x.shape[1], device=x.device)
        return (steps.unsqueeze(0) < lengths.to(x.device).unsqueeze(1)).unsqueeze(-1).to(x.dtype)


# -- variational ----------------------------------------------------------------------------------------

class VariationalAutoencoder(nn.Module):
    """A VAE with MLP encoder/decoder on ``(B, input_size)``; loss = reconstruction + β·KL.

    The reconstruction term is summed over an example's entries (squared error, or BCE for
    ``reconstruction="bce"``) and averaged over the batch, as is the KL, so
    ``total = reconstruction + beta * kl`` is the negative ELBO per example (up to constants).

    >>> vae = VariationalAutoencoder(6, latent_size=2, hidden_sizes=(8,), beta=0.5)
    >>> recon, extras = vae(torch.randn(4, 6))
    >>> sorted(extras)
    ['code', 'logvar', 'mu', 'z']
    >>> vae.sample(3).shape
    torch.Size([3, 6])
    """

    def __init__(
        self,
        input_size: int,
        latent_size: int = 16,
        hidden_sizes: Sequence[int] = (64,),
        activation: str = "relu",
        output_activation: str | None = None,
        beta: float = 1.0,
        reconstruction: str = "mse",
    ) -> None:
        super().__init__()
        where = type(self).__name__
        self.beta = _check_weight(beta, "beta", where)
        if reconstruction not in RECONSTRUCTION_LOSSES:
            raise ConfigError(f"{where}: unknown reconstruction loss {reconstruction!r}; valid: {', '.join(RECONSTRUCTION_LOSSES)}")
        for name, value in (("input_size", input_size), ("latent_size", latent_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}: {name} must be a positive integer, got {value!r}")
        self.reconstruction = reconstruction
        self.input_size, self.latent_size = input_size, latent_size
        hidden = list(hidden_sizes)
        self.body = MLP([input_size, *hidden], activation, final_activation=activation) if hidden else nn.Identity()
        width = hidden[-1] if hidden else input_size
        self.to_mu = nn.Linear(width, latent_size)
        self.to_logvar = nn.Linear(width, latent_size)
        self.decoder = MLP([latent_size, *hidden[::-1], input_size], activation, final_activation=output_activation)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²) of q(z | x)."""
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise InputError(f"{type(self).__name__} expects x of shape (B, {self.input_size}), got {tuple(x.shape)}")
        h = self.body(x)
        return self.to_mu(h), self.to_logvar(h)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        """z = μ + σ ⊙ ε, ε ~ N(0, I): a sample whose gradient flows to μ and σ."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), {"code": mu, "mu": mu, "logvar": logvar, "z": z}

    def loss(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        recon, extras = self(x)
        rec = _elementwise_error(recon, x, self.reconstruction).reshape(x.shape[0], -1).sum(1).mean()
        kl = gaussian_kl(extras["mu"], extras["logvar"]).mean()
        return rec + self.beta * kl, {"reconstruction": rec, "kl": kl}

    def reconstruction_error(self, x: Tensor) -> Tensor:
        """Mean error per example, ``(B,)``, reconstructing from the mean code z = μ."""
        with _evaluating(self):
            mu, _ = self.encode(x)
            return _elementwise_error(self.decode(mu), x, self.reconstruction).reshape(x.shape[0], -1).mean(1)

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``n`` draws from the decoder with z ~ N(0, I)."""
        ref = self.to_mu.weight
        with _evaluating(self):
            return self.decode(torch.randn(n, self.latent_size, device=ref.device, dtype=ref.dtype))
