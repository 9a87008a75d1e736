"""Autoencoders trained on (clean, noisy) pairs (seqlab.nn.paired_denoiser)."""
from __future__ import annotations

import pytest
import torch

from seqlab.core.errors import InputError
from seqlab.nn.paired_denoiser import PairedDenoisingDenoiser, PairedDenseDenoiser


def test_paired_loss_is_the_reconstruction_of_clean_from_the_given_noisy_input():
    torch.manual_seed(0)
    ae = PairedDenseDenoiser(6, 4, [8])
    clean, noisy = torch.randn(5, 6), torch.randn(5, 6)
    ae.train()
    total, _ = ae.paired_loss(clean, noisy)
    recon = ae.decode(ae.encode(noisy))
    assert torch.allclose(total, (recon - clean).pow(2).mean())
    assert torch.allclose(ae.denoise(noisy), recon)
    assert ae.training   # denoise() leaves the mode as it was
    with pytest.raises(InputError, match="differ"):
        ae.paired_loss(clean, noisy[:, :3])


def test_a_module_with_noise_of_its_own_adds_it_on_top_of_the_given_input():
    torch.manual_seed(0)
    ae = PairedDenoisingDenoiser(6, 4, [8], noise="gaussian", noise_level=0.5)
    clean, noisy = torch.randn(5, 6), torch.randn(5, 6)
    ae.train()
    total, _ = ae.paired_loss(clean, noisy)
    without_extra = (ae.decode(ae.encode(noisy)) - clean).pow(2).mean()
    assert not torch.allclose(total, without_extra)
