"""Autoencoders trained on (clean, noisy) pairs: the corruption x̃ is given, not drawn.

A denoising autoencoder (Vincent et al., 2010, JMLR 11) learns to map a corrupted x̃ back
to x; here x̃ is real noisy data (noise added to the waveform, then features computed),
handed to the module's own ``loss`` as its corrupted input. A module that adds noise of
its own (``DenoisingAutoencoder``) adds it on top.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.errors import InputError
from .autoencoder import ConvAutoencoder, DenoisingAutoencoder, DenseAutoencoder

__all__ = ["PairedConvDenoiser", "PairedDenoisingDenoiser", "PairedDenseDenoiser", "PairedInput"]


class PairedInput:
    """Mixin for ``Autoencoder`` subclasses: ``paired_loss(clean, noisy)`` is the module's own
    ``loss(clean)`` with the given noisy input as its corrupted x̃ (plus the module's own
    noise on top, if it has one)."""

    _given: Tensor | None = None

    def corrupt(self, x: Tensor) -> Tensor:
        if self._given is None:
            return super().corrupt(x)  # type: ignore[misc]
        given = self._given
        return super().corrupt(given) if self.noise is not None else given  # type: ignore[misc,attr-defined]

    def paired_loss(self, clean: Tensor, noisy: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if clean.shape != noisy.shape:
            raise InputError(f"{type(self).__name__}: clean {tuple(clean.shape)} and noisy {tuple(noisy.shape)} differ")
        self._given = noisy
        try:
            return self.loss(clean)  # type: ignore[attr-defined]
        finally:
            self._given = None

    def denoise(self, noisy: Tensor) -> Tensor:
        """The clean estimate of ``noisy`` (eval mode, no grad)."""
        was = self.training  # type: ignore[attr-defined]
        self.eval()  # type: ignore[attr-defined]
        try:
            with torch.no_grad():
                return self(noisy)[0]  # type: ignore[operator]
        finally:
            self.train(was)  # type: ignore[attr-defined]


class PairedDenseDenoiser(PairedInput, DenseAutoencoder):
    """A dense autoencoder trained on (clean, noisy) pairs; see ``PairedInput``."""


class PairedDenoisingDenoiser(PairedInput, DenoisingAutoencoder):
    """A denoising autoencoder (own Gaussian/masking noise on top) trained on (clean, noisy) pairs."""


class PairedConvDenoiser(PairedInput, ConvAutoencoder):
    """A convolutional autoencoder trained on (clean, noisy) pairs."""
