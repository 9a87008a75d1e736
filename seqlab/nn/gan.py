"""Generative adversarial networks: vanilla (MLP), conditional, and DCGAN.

A generator G maps noise z ~ N(0, I) to data; a discriminator D gives the logit of "x is
real" (Goodfellow et al., 2014, "Generative adversarial nets", eq. 1). Each
``train_step`` updates D, then G, with their own Adam optimisers, minimising

- D: −log D(x) − log(1 − D(G(z)))           (the discriminator's cross-entropy)
- G: −log D(G(z))                          (the non-saturating loss of §3, which gives
                                             G strong gradients early, when D wins easily)

both computed from logits with ``binary_cross_entropy_with_logits`` (log σ(a) never
under/overflows, unlike ``log(sigmoid(a))``).

- ``ConditionalGAN``: a label embedding is fed to both networks, so G(z, y) generates
  class y and D(x, y) judges pairs (Mirza & Osindero, 2014, "Conditional generative
  adversarial nets", §3.2).
- ``DCGAN``: strided convolutions in D, transposed convolutions in G, no pooling, batch
  norm in both (not on D's input or G's output), ReLU in G, LeakyReLU(0.2) in D, tanh
  output, Adam(lr 2e-4, β₁ 0.5) (Radford, Metz & Chintala, 2016, §3–4). Built with the
  ``ConvStack`` builder for any (C, H, W) — e.g. 1×13×32 MFCC patches — the generator's
  output padding computed from the discriminator's sizes so it reproduces H × W exactly.
  Pass ``num_classes`` for a conditional DCGAN (the label map is an extra D input channel).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.errors import ConfigError, InputError
from .blocks import MLP, ConvLayerSpec, ConvStack

__all__ = [
    "DCGAN",
    "ConditionalGAN",
    "ConvDiscriminator",
    "ConvGenerator",
    "GAN",
    "MLPDiscriminator",
    "MLPGenerator",
    "VanillaGAN",
    "discriminator_loss",
    "generator_loss",
]


# -- the losses --------------------------------------------------------------------------------

def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Batch mean of −log D(x) − log(1 − D(G(z))), from D's logits.

    >>> float(discriminator_loss(torch.zeros(4), torch.zeros(4)))  # D = ½ everywhere: 2 log 2
    1.3862943649291992
    """
    return (
        F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    )


def generator_loss(fake_logits: Tensor) -> Tensor:
    """Batch mean of the non-saturating −log D(G(z)), from D's logits.

    >>> float(generator_loss(torch.zeros(3)))  # log 2
    0.6931471824645996
    """
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


# -- helpers -------------------------------------------------------------------------------------

def _positive(value: Any, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {name} must be a positive integer, got {value!r}")
    return value


def _conditioning(num_classes: int | None, embedding_size: int | None, where: str) -> int:
    """Size of the label embedding (0 for an unconditional network)."""
    if num_classes is None:
        return 0
    _positive(num_classes, "num_classes", where)
    return _positive(embedding_size if embedding_size is not None else min(50, 2 * num_classes), "embedding_size", where)


# -- MLP networks ------------------------------------------------------------------------------------

class MLPGenerator(nn.Module):
    """z (B, latent) [+ label embedding] → MLP → (B, data_size).

    >>> MLPGenerator(4, 2, hidden_sizes=(8,), num_classes=3)(torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])).shape
    torch.Size([5, 2])
    """

    def __init__(
        self, latent_size: int, data_size: int, hidden_sizes: Sequence[int] = (128, 128), activation: str = "relu",
        output_activation: str | None = None, num_classes: int | None = None, embedding_size: int | None = None,
    ) -> None:
        super().__init__()
        embed = _conditioning(num_classes, embedding_size, "MLPGenerator")
        self.embedding = nn.Embedding(num_classes, embed) if embed else None
        self.net = MLP([latent_size + embed, *hidden_sizes, data_size], activation, final_activation=output_activation)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embedding is not None:
            z = torch.cat([z, self.embedding(labels)], dim=-1)
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """x (B, data_size) [+ label embedding] → MLP → logits (B,).

    >>> MLPDiscriminator(2, hidden_sizes=(8,))(torch.randn(5, 2)).shape
    torch.Size([5])
    """

    def __init__(
        self, data_size: int, hidden_sizes: Sequence[int] = (128, 128), activation: str = "leaky_relu",
        activation_params: dict | None = None, dropout: float = 0.0, num_classes: int | None = None,
        embedding_size: int | None = None,
    ) -> None:
        super().__init__()
        embed = _conditioning(num_classes, embedding_size, "MLPDiscriminator")
        self.embedding = nn.Embedding(num_classes, embed) if embed else None
        if activation_params is None:
            activation_params = {"slope": 0.2} if activation == "leaky_relu" else {}
        self.net = MLP([data_size + embed, *hidden_sizes, 1], activation, dropout, activation_params=activation_params)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embedding is not None:
            x = torch.cat([x, self.embedding(labels)], dim=-1)
        return self.net(x).squeeze(-1)


# -- convolutional (DCGAN) networks ------------------------------------------------------------------

def _down_specs(channels: Sequence[int], kernel: int, stride: int, padding: int) -> list[ConvLayerSpec]:
    return [
        ConvLayerSpec(
            channels=c, kernel=kernel, stride=stride, padding=padding, activation="leaky_relu",
            activation_params={"slope": 0.2}, norm=None if i == 0 else "batch", bias=i == 0,
        )
        for i, c in enumerate(channels)
    ]


class ConvDiscriminator(nn.Module):
    """DCGAN discriminator: strided convs (LeakyReLU 0.2, batch norm after the first) → linear logit.

    A conditional one gets the label as an extra input channel (a learned H×W map per class).

    >>> d = ConvDiscriminator((1, 13, 32), channels=(4, 8))
    >>> d.feature_shape, d(torch.randn(2, 1, 13, 32)).shape
    ((8, 3, 8), torch.Size([2]))
    """

    def __init__(
        self, image_shape: Sequence[int], channels: Sequence[int] = (64, 128), kernel: int = 4, stride: int = 2,
        padding: int = 1, num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        c, h, w = self.image_shape
        self.label_map = nn.Embedding(num_classes, h * w) if num_classes is not None else None
        self.convs = ConvStack(c + (1 if self.label_map is not None else 0), _down_specs(channels, kernel, stride, padding), dims=2)
        try:
            self.feature_shape = self.convs.output_shape((self.convs.in_channels, h, w))
        except InputError as err:
            raise ConfigError(f"DCGAN: image shape {self.image_shape} is too small for {len(channels)} strided layers: {err}") from None
        self.out = nn.Linear(math.prod(self.feature_shape), 1)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.label_map is not None:
            _, h, w = self.image_shape
            x = torch.cat([x, self.label_map(labels).view(-1, 1, h, w)], dim=1)
        return self.out(self.convs(x).flatten(1)).squeeze(-1)


class ConvGenerator(nn.Module):
    """DCGAN generator: project z to the discriminator's last feature map, then transposed convs.

    Each transposed layer undoes one discriminator layer; its ``output_padding`` is chosen
    from that layer's input size, so odd sizes (13 → 6 → 3 → 6 → 13) come out exactly.

    >>> g = ConvGenerator((1, 13, 32), latent_size=8, channels=(4, 8)).eval()
    >>> g.start_shape, g(torch.randn(2, 8)).shape
    ((8, 3, 8), torch.Size([2, 1, 13, 32]))
    """

    def __init__(
        self, image_shape: Sequence[int], latent_size: int, channels: Sequence[int] = (64, 128), kernel: int = 4,
        stride: int = 2, padding: int = 1, output_activation: str | None = "tanh", num_classes: int | None = None,
        embedding_size: int | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        c = self.image_shape[0]
        embed = _conditioning(num_classes, embedding_size, "ConvGenerator")
        self.embedding = nn.Embedding(num_classes, embed) if embed else None
        # The discriminator's size arithmetic, run forwards, gives the size at each boundary.
        probe = ConvStack(c, _down_specs(channels, kernel, stride, padding), dims=2)
        sizes = [self.image_shape[1:]]
        for layer in probe.layers:
            try:
                sizes.append(layer.output_sizes(sizes[-1], self.image_shape))
            except InputError as err:
                raise ConfigError(f"DCGAN: image shape {self.image_shape} is too small for {len(channels)} strided layers: {err}") from None
        self.start_shape = (channels[-1], *sizes[-1])
        flat = math.prod(self.start_shape)
        self.project = nn.Sequential(
            nn.Linear(latent_size + embed, flat, bias=False), nn.BatchNorm1d(flat), nn.ReLU(),
        )
        specs = []
        outs = [*list(channels[:-1])[::-1], c]
        for i, out_channels in enumerate(outs):
            small, large = sizes[-1 - i], sizes[-2 - i]
            base = [(m - 1) * stride - 2 * padding + kernel for m in small]
            extra = tuple(n - b for n, b in zip(large, base))
            if any(not 0 <= e < stride for e in extra):
                raise ConfigError(
                    f"DCGAN: kernel {kernel}, stride {stride}, padding {padding} cannot map size {small} back to "
                    f"{large} with a transposed convolution; use the DCGAN default kernel 4, stride 2, padding 1"
                )
            last = i == len(outs) - 1
            specs.append(ConvLayerSpec(
                channels=out_channels, kernel=kernel, stride=stride, padding=padding, transposed=True,
                output_padding=extra, activation=output_activation if last else "relu",
                norm=None if last else "batch", bias=last,
            ))
        self.deconvs = ConvStack(channels[-1], specs, dims=2)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embedding is not None:
            z = torch.cat([z, self.embedding(labels)], dim=-1)
        return self.deconvs(self.project(z).view(-1, *self.start_shape))


# -- the adversarial game -------------------------------------------------------------------------------

class GAN(nn.Module):
    """A generator, a discriminator, their optimisers and the training step that plays them.

    ``generator(z, labels)`` → data ``(B, *data_shape)``; ``discriminator(x, labels)`` →
    logits ``(B,)``. With ``num_classes`` set the GAN is conditional: every call needs
    ``labels`` in ``[0, num_classes)``. Adam(lr, betas) per network, the DCGAN settings
    by default. ``VanillaGAN``, ``ConditionalGAN`` and ``DCGAN`` build the networks; any
    pair with those signatures works:

    >>> gan = GAN(MLPGenerator(3, 2, (8,)), MLPDiscriminator(2, (8,)), latent_size=3, data_shape=(2,))
    >>> stats = gan.train_step(torch.randn(16, 2))
    >>> gan.sample(4).shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        latent_size: int,
        data_shape: Sequence[int],
        num_classes: int | None = None,
        lr_generator: float = 2e-4,
        lr_discriminator: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
    ) -> None:
        super().__init__()
        where = type(self).__name__
        self.latent_size = _positive(latent_size, "latent_size", where)
        self.num_classes = None if num_classes is None else _positive(num_classes, "num_classes", where)
        self.data_shape = tuple(data_shape)
        for name, lr in (("lr_generator", lr_generator), ("lr_discriminator", lr_discriminator)):
            if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
                raise ConfigError(f"{where}: {name} must be a number > 0, got {lr!r}")
        self.generator = generator
        self.discriminator = discriminator
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=lr_generator, betas=tuple(betas))
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr_discriminator, betas=tuple(betas))

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    def _ref(self) -> Tensor:
        return next(self.generator.parameters())

    def check_labels(self, labels: Any, n: int, device: torch.device | None = None) -> Tensor | None:
        """``labels`` as a ``(n,)`` long tensor (an int means n copies); InputError if out of range."""
        where = type(self).__name__
        if not self.conditional:
            if labels is not None:
                raise InputError(f"{where} is unconditional (no num_classes); it takes no labels")
            return None
        if labels is None:
            raise InputError(f"{where} is conditional: give labels in 0..{self.num_classes - 1} (one per example)")
        device = device if device is not None else self._ref().device
        if isinstance(labels, int) and not isinstance(labels, bool):
            labels = torch.full((n,), labels, dtype=torch.long, device=device)
        else:
            labels = torch.as_tensor(labels, device=device)
            if labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise InputError(f"{where}: labels must be integers, got dtype {labels.dtype}")
            labels = labels.long().reshape(-1)
        if labels.shape[0] != n:
            raise InputError(f"{where}: {labels.shape[0]} labels for {n} examples; give one label per example")
        if labels.numel():
            bad = (labels < 0) | (labels >= self.num_classes)
            if bool(bad.any()):
                label = int(labels[bad][0])
                raise InputError(
                    f"{where}: label {label} is out of range; this GAN was trained on labels 0..{self.num_classes - 1} "
                    f"(num_classes={self.num_classes})"
                )
        return labels

    def _check_data(self, real: Tensor) -> None:
        if tuple(real.shape[1:]) != self.data_shape or real.shape[0] < 1:
            raise InputError(
                f"{type(self).__name__}: expected data of shape (B, {', '.join(map(str, self.data_shape))}), got "
                f"{tuple(real.shape)}"
            )

    def generate(self, z: Tensor, labels: Any = None) -> Tensor:
        """G(z [, y]) with gradients (for training); see ``sample`` for inference."""
        return self.generator(z, self.check_labels(labels, z.shape[0], z.device))

    def discriminate(self, x: Tensor, labels: Any = None) -> Tensor:
        """D's logits ``(B,)`` for ``x``."""
        return self.discriminator(x, self.check_labels(labels, x.shape[0], x.device))

    @torch.no_grad()
    def sample(self, n: int, labels: Any = None) -> Tensor:
        """``n`` generated examples (in eval mode, no grad); ``labels`` an int, a list or a tensor."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"{type(self).__name__}.sample: n must be a positive integer, got {n!r}")
        ref = self._ref()
        labels = self.check_labels(labels, n, ref.device)
        z = torch.randn(n, self.latent_size, device=ref.device, dtype=ref.dtype)
        was_training = self.generator.training
        self.generator.eval()
        try:
            return self.generator(z, labels)
        finally:
            self.generator.train(was_training)

    def train_step(
        self, real: Tensor, labels: Any = None, z: Tensor | None = None,
        optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer] | None = None,
        clip: Callable[[Iterable[nn.Parameter]], float] | None = None,
    ) -> dict[str, float]:
        """One update of D, then one of G, on the batch ``real`` (and its ``labels``).

        ``z`` (B, latent) fixes the noise (tests); it is drawn from N(0, I) otherwise.
        ``optimizers`` = (D's, G's) replaces the GAN's own (a Trainer's per-step hook builds
        them); ``clip(parameters)`` clips each network's gradients before its step.
        Returns ``d_loss``, ``g_loss`` and the mean probabilities ``d_real`` = D(x) and
        ``d_fake`` = D(G(z)) before the updates.
        """
        self._check_data(real)
        self.train()
        batch = real.shape[0]
        labels = self.check_labels(labels, batch, real.device)
        if z is None:
            z = torch.randn(batch, self.latent_size, device=real.device, dtype=real.dtype)
        elif tuple(z.shape) != (batch, self.latent_size):
            raise InputError(f"{type(self).__name__}.train_step: z must have shape ({batch}, {self.latent_size}), got {tuple(z.shape)}")
        fake = self.generator(z, labels)

        # D: real → 1, fake → 0. The fakes are detached: this step must not move G.
        real_logits = self.discriminator(real, labels)
        fake_logits = self.discriminator(fake.detach(), labels)
        d_loss = discriminator_loss(real_logits, fake_logits)
        d_optimizer, g_optimizer = optimizers if optimizers is not None else (self.d_optimizer, self.g_optimizer)
        d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        if clip is not None:
            clip(self.discriminator.parameters())
        d_optimizer.step()

        # G: make the *updated* D call the same fakes real. D's weights are frozen meanwhile
        # so this backward pass computes no gradients for them.
        for p in self.discriminator.parameters():
            p.requires_grad_(False)
        try:
            g_loss = generator_loss(self.discriminator(fake, labels))
            g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            if clip is not None:
                clip(self.generator.parameters())
            g_optimizer.step()
        finally:
            for p in self.discriminator.parameters():
                p.requires_grad_(True)
        return {
            "d_loss": float(d_loss.detach()),
            "g_loss": float(g_loss.detach()),
            "d_real": float(torch.sigmoid(real_logits.detach()).mean()),
            "d_fake": float(torch.sigmoid(fake_logits.detach()).mean()),
        }


class VanillaGAN(GAN):
    """Goodfellow et al.'s GAN with MLP generator and discriminator on ``(B, data_size)``.

    >>> torch.manual_seed(0) is not None
    True
    >>> gan = VanillaGAN(2, latent_size=4, hidden_sizes=(16,))
    >>> sorted(gan.train_step(torch.randn(8, 2)))
    ['d_fake', 'd_loss', 'd_real', 'g_loss']
    >>> gan.sample(5).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        data_size: int,
        latent_size: int = 16,
        hidden_sizes: Sequence[int] = (128, 128),
        output_activation: str | None = None,
        num_classes: int | None = None,
        embedding_size: int | None = None,
        dropout: float = 0.0,
        lr_generator: float = 2e-4,
        lr_discriminator: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
    ) -> None:
        where = type(self).__name__
        _positive(data_size, "data_size", where)
        _positive(latent_size, "latent_size", where)
        generator = MLPGenerator(
            latent_size, data_size, hidden_sizes, "relu", output_activation, num_classes, embedding_size
        )
        discriminator = MLPDiscriminator(
            data_size, hidden_sizes, "leaky_relu", None, dropout, num_classes, embedding_size
        )
        super().__init__(generator, discriminator, latent_size, (data_size,), num_classes, lr_generator, lr_discriminator, betas)


class ConditionalGAN(VanillaGAN):
    """Mirza & Osindero's conditional GAN: ``VanillaGAN`` with a label embedding fed to G and D.

    >>> gan = ConditionalGAN(2, num_classes=3, latent_size=4, hidden_sizes=(16,))
    >>> gan.sample(4, labels=2).shape
    torch.Size([4, 2])
    >>> gan.sample(1, labels=3)
    Traceback (most recent call last):
    ...
    seqlab.core.errors.InputError: ConditionalGAN: label 3 is out of range; this GAN was trained on labels 0..2 (num_classes=3)
    """

    def __init__(self, data_size: int, num_classes: int, latent_size: int = 16, **kwargs: Any) -> None:
        if num_classes is None:
            raise ConfigError("ConditionalGAN: num_classes is required (use VanillaGAN for an unconditional GAN)")
        super().__init__(data_size, latent_size, num_classes=num_classes, **kwargs)


class DCGAN(GAN):
    """Radford et al.'s deep convolutional GAN for fixed-size ``(C, H, W)`` images / patches.

    ``channels`` are the discriminator's widths, input side first; the generator mirrors
    them. Any H, W work as long as ``len(channels)`` stride-2 layers leave at least 1×1.

    >>> gan = DCGAN((1, 13, 32), latent_size=8, channels=(8, 16))
    >>> gan.sample(2).shape
    torch.Size([2, 1, 13, 32])
    >>> sorted(gan.train_step(torch.rand(4, 1, 13, 32) * 2 - 1))
    ['d_fake', 'd_loss', 'd_real', 'g_loss']
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_size: int = 100,
        channels: Sequence[int] = (64, 128),
        kernel: int = 4,
        stride: int = 2,
        padding: int = 1,
        output_activation: str | None = "tanh",
        num_classes: int | None = None,
        embedding_size: int | None = None,
        lr_generator: float = 2e-4,
        lr_discriminator: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
    ) -> None:
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in image_shape):
            raise ConfigError(f"DCGAN: image_shape must be (C, H, W) positive integers, got {image_shape!r}")
        if not channels:
            raise ConfigError("DCGAN: channels is empty; give one width per strided layer, e.g. (64, 128)")
        _positive(latent_size, "latent_size", "DCGAN")
        generator = ConvGenerator(
            image_shape, latent_size, channels, kernel, stride, padding, output_activation, num_classes, embedding_size
        )
        discriminator = ConvDiscriminator(image_shape, channels, kernel, stride, padding, num_classes)
        super().__init__(generator, discriminator, latent_size, image_shape, num_classes, lr_generator, lr_discriminator, betas)
