"""Autoencoders: noise, penalties against independent computations, and learning a toy problem."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from seqlab.core.errors import ConfigError, InputError
from seqlab.nn.autoencoder import (
    Autoencoder,
    ContractiveAutoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    DenseAutoencoder,
    SequenceAutoencoder,
    SparseAutoencoder,
    UndercompleteAutoencoder,
    VariationalAutoencoder,
    contractive_penalty,
    gaussian_kl,
    gaussian_noise,
    kl_sparsity,
    l1_sparsity,
    masking_noise,
    salt_and_pepper_noise,
    sigmoid_contractive_penalty,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Many tiny ops: one intra-op thread is faster than waking a pool on a busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- noise -------------------------------------------------------------------------------------------

def test_gaussian_noise_has_the_asked_std():
    torch.manual_seed(0)
    x = torch.full((200, 100), 3.0)
    noise = gaussian_noise(x, std=0.5) - x
    assert abs(float(noise.mean())) < 0.01 and abs(float(noise.std()) - 0.5) < 0.01
    assert torch.equal(gaussian_noise(x, 0.0), x)
    with pytest.raises(ConfigError, match="std"):
        gaussian_noise(x, -1.0)


def test_masking_noise_zeroes_the_asked_fraction():
    torch.manual_seed(0)
    x = torch.rand(100, 200) + 1.0  # never 0 before masking
    y = masking_noise(x, 0.3)
    zeroed = y == 0
    assert abs(float(zeroed.float().mean()) - 0.3) < 0.01
    assert torch.equal(y[~zeroed], x[~zeroed])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        masking_noise(x, 1.2)


def test_salt_and_pepper_sets_min_or_max():
    torch.manual_seed(0)
    x = torch.rand(100, 200) * 0.8 + 0.1  # inside (0.1, 0.9)
    y = salt_and_pepper_noise(x, 0.2, low=0.0, high=1.0)
    changed = y != x
    assert abs(float(changed.float().mean()) - 0.2) < 0.01
    assert set(y[changed].unique().tolist()) == {0.0, 1.0}
    assert abs(float((y[changed] == 1.0).float().mean()) - 0.5) < 0.03
    # Defaults: the tensor's own min and max.
    z = salt_and_pepper_noise(x, 1.0)
    assert set(z.unique().tolist()) <= {float(x.min()), float(x.max())}


# -- sparsity ------------------------------------------------------------------------------------------

def test_l1_and_kl_sparsity_values():
    code = torch.tensor([[0.1, 0.5], [0.3, 0.7]])
    assert math.isclose(float(l1_sparsity(code)), (0.6 + 1.0) / 2, rel_tol=1e-6)
    rho, means = 0.2, (0.2, 0.6)
    expected = sum(rho * math.log(rho / m) + (1 - rho) * math.log((1 - rho) / (1 - m)) for m in means)
    assert math.isclose(float(kl_sparsity(code, rho)), expected, rel_tol=1e-5)
    with pytest.raises(InputError, match=r"code must lie in \[0, 1\]"):
        kl_sparsity(code - 1, 0.2)


@pytest.mark.parametrize("rho", [0.0, 1.0, 1.5, -0.1])
def test_sparsity_target_must_be_a_probability(rho):
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        SparseAutoencoder(8, 16, sparsity_target=rho)


def test_kl_sparse_code_is_a_sigmoid():
    ae = SparseAutoencoder(8, 16)
    assert ae.code_activation == "sigmoid"
    with pytest.raises(ConfigError, match="must be 'sigmoid'"):
        SparseAutoencoder(8, 16, code_activation="relu")
    assert SparseAutoencoder(8, 16, sparsity="l1", code_activation="relu").sparsity == "l1"


def test_sparse_loss_adds_the_weighted_penalty():
    torch.manual_seed(0)
    ae = SparseAutoencoder(6, 10, sparsity_weight=0.5, sparsity_target=0.1).eval()
    x = torch.randn(4, 6)
    total, parts = ae.loss(x)
    code = ae.encode(x)
    torch.testing.assert_close(parts["sparsity"], kl_sparsity(code, 0.1))
    torch.testing.assert_close(parts["reconstruction"], ((ae.decode(code) - x) ** 2).mean())
    torch.testing.assert_close(total, parts["reconstruction"] + 0.5 * parts["sparsity"])


def test_sparse_training_drives_mean_activation_towards_the_target():
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(3))
    means = {}
    for weight in (0.0, 3.0):
        torch.manual_seed(0)
        ae = SparseAutoencoder(8, 12, sparsity_weight=weight, sparsity_target=0.05)
        opt = torch.optim.Adam(ae.parameters(), lr=3e-2)
        for _ in range(100):
            loss, _ = ae.loss(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            means[weight] = float(ae.encode(x).mean())
    assert means[0.0] > 0.35 and means[3.0] < 0.15


# -- contractive ------------------------------------------------------------------------------------------

def _jacobian_norm(encoder, x: torch.Tensor) -> torch.Tensor:
    """Mean over examples of ‖∂f(x_b)/∂x_b‖²_F, one full Jacobian per example."""
    values = []
    for b in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: encoder(v.unsqueeze(0))[0], x[b])
        values.append(jac.pow(2).sum())
    return torch.stack(values).mean()


def test_contractive_closed_form_equals_the_autograd_jacobian():
    torch.manual_seed(0)
    ae = ContractiveAutoencoder(5, 3, contractive_weight=0.7).double().eval()
    assert ae.contractive_method == "closed_form"
    x = torch.randn(6, 5, dtype=torch.float64)
    expected = _jacobian_norm(ae.encoder, x)
    total, parts = ae.loss(x)
    torch.testing.assert_close(parts["contractive"], expected)
    torch.testing.assert_close(total, parts["reconstruction"] + 0.7 * parts["contractive"])
    # The closed form and the general autograd penalty agree, value and gradient.
    closed = sigmoid_contractive_penalty(ae.encoder(x), ae.encoder.layers[0].weight)
    general = contractive_penalty(ae.encoder, x)
    torch.testing.assert_close(closed, general)
    (g_closed,) = torch.autograd.grad(closed, ae.encoder.layers[0].weight)
    (g_general,) = torch.autograd.grad(general, ae.encoder.layers[0].weight)
    torch.testing.assert_close(g_closed, g_general)


def test_contractive_autograd_for_a_deep_encoder():
    torch.manual_seed(1)
    ae = ContractiveAutoencoder(4, 2, hidden_sizes=(5,), activation="tanh").double().eval()
    assert ae.contractive_method == "autograd"
    x = torch.randn(3, 4, dtype=torch.float64)
    _, parts = ae.loss(x)
    torch.testing.assert_close(parts["contractive"], _jacobian_norm(ae.encoder, x))
    parts["contractive"].backward()  # differentiable w.r.t. the weights
    assert ae.encoder.layers[0].weight.grad.abs().sum() > 0


def test_contractive_training_shrinks_the_jacobian():
    torch.manual_seed(0)
    x = torch.randn(32, 6)
    norms = {}
    for weight in (1e-9, 1.0):
        torch.manual_seed(0)
        ae = ContractiveAutoencoder(6, 4, contractive_weight=weight)
        opt = torch.optim.Adam(ae.parameters(), lr=1e-2)
        for _ in range(100):
            loss, _ = ae.loss(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        norms[weight] = float(contractive_penalty(ae.encoder, x).detach())
    assert norms[1.0] < 0.5 * norms[1e-9]


# -- denoising and the common interface ---------------------------------------------------------------------

def _manifold(n: int, seed: int) -> torch.Tensor:
    """Points on a 2-D curved surface in 10-D."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, 2, generator=g) * 2 - 1
    basis = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, -0.7], [0.5, 0.5], [-0.3, 0.9],
                          [0.2, 0.1], [0.9, 0.4], [-0.6, 0.2], [0.1, -0.8], [0.4, 0.3]])
    return torch.tanh(z @ basis.T * 1.5)


def test_denoising_autoencoder_learns_to_remove_noise():
    torch.manual_seed(0)
    train, test = _manifold(512, 0), _manifold(256, 1)
    ae = DenoisingAutoencoder(10, 4, hidden_sizes=(32,), noise="gaussian", noise_level=0.2)
    opt = torch.optim.Adam(ae.parameters(), lr=5e-3)
    before = float(ae.reconstruction_error(test).mean())
    for step in range(300):
        batch = train[(step * 64) % 512: (step * 64) % 512 + 64]
        loss, parts = ae.loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = float(ae.reconstruction_error(test).mean())
    assert after < 0.1 * before
    # It denoises: from a noisy copy it lands closer to the clean points than the noise left them.
    noisy = test + 0.2 * torch.randn(test.shape, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        cleaned, _ = ae.eval()(noisy)
    assert float(((cleaned - test) ** 2).mean()) < 0.5 * float(((noisy - test) ** 2).mean())


def test_noise_is_applied_in_training_only():
    torch.manual_seed(0)
    ae = DenoisingAutoencoder(5, 3, noise="masking", noise_level=0.5)
    x = torch.randn(4, 5)
    _, extras = ae.train()(x)
    assert (extras["input"] == 0).any() and not torch.equal(extras["input"], x)
    _, extras = ae.eval()(x)
    assert torch.equal(extras["input"], x)
    e1, e2 = ae.train().reconstruction_error(x), ae.reconstruction_error(x)
    assert torch.equal(e1, e2) and ae.training  # deterministic, and the mode is restored


def test_reconstruction_error_is_the_per_example_mean():
    torch.manual_seed(0)
    ae = DenseAutoencoder(5, 2, hidden_sizes=(4,), dropout=0.3, output_activation="sigmoid", reconstruction="bce")
    x = torch.rand(3, 5)
    err = ae.reconstruction_error(x)
    ae.eval()
    recon = ae.decode(ae.encode(x))
    expected = nn.functional.binary_cross_entropy(recon, x, reduction="none").mean(1)
    torch.testing.assert_close(err, expected)


def test_autoencoder_config_errors():
    enc, dec = nn.Linear(3, 2), nn.Linear(2, 3)
    with pytest.raises(ConfigError, match="unknown noise 'gauss'.*did you mean 'gaussian'"):
        Autoencoder(enc, dec, noise="gauss")
    with pytest.raises(ConfigError, match="unknown reconstruction"):
        Autoencoder(enc, dec, reconstruction="l1")
    with pytest.raises(ConfigError, match="contractive_weight must be a number >= 0"):
        Autoencoder(enc, dec, contractive_weight=-1)
    with pytest.raises(ConfigError, match="code_size 4 must be smaller than input_size 4"):
        UndercompleteAutoencoder(4, 4)
    with pytest.raises(InputError, match="takes no lengths"):
        DenseAutoencoder(3, 2).loss(torch.randn(2, 3), torch.tensor([1, 1]))
    with pytest.raises(InputError, match=r"\(B, 3\)"):
        DenseAutoencoder(3, 2)(torch.randn(2, 4))


# -- convolutional and recurrent ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 13, 32), (2, 9, 7), (3, 17), (1, 1)])
def test_conv_autoencoder_reconstructs_any_shape(shape):
    torch.manual_seed(0)
    channels = (4, 8) if shape != (1, 1) else (4,)
    ae = ConvAutoencoder(shape, channels=channels, norm="batch")
    x = torch.randn(2, *shape)
    recon, extras = ae(x)
    assert recon.shape == x.shape and tuple(extras["code"].shape[1:]) == ae.code_shape
    assert ae.reconstruction_error(x).shape == (2,)
    bottleneck = ConvAutoencoder(shape, channels=channels, code_size=5, sparsity="kl")
    assert bottleneck(x)[0].shape == x.shape and bottleneck.code_shape == (5,)
    total, parts = bottleneck.loss(x)
    assert set(parts) == {"reconstruction", "sparsity"}


def test_conv_autoencoder_learns_and_checks_shapes():
    torch.manual_seed(0)
    ae = ConvAutoencoder((1, 8, 8), channels=(4,), kernel=3, stride=2, code_size=6, contractive_weight=0.01)
    x = torch.rand(8, 1, 8, 8)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-2)
    first, _ = ae.loss(x)
    for _ in range(60):
        loss, parts = ae.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert "contractive" in parts and loss.item() < 0.5 * first.item()
    with pytest.raises(InputError, match=r"\(B, 1, 8, 8\)"):
        ae(torch.randn(2, 1, 8, 9))
    with pytest.raises(ConfigError, match="odd"):
        ConvAutoencoder((1, 8, 8), kernel=4)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_sequence_autoencoder_ignores_padding(cell):
    torch.manual_seed(0)
    ae = SequenceAutoencoder(3, hidden_size=8, code_size=4, cell=cell).eval()
    seqs = [torch.randn(n, 3) for n in (6, 2, 4)]
    lengths = torch.tensor([6, 2, 4])
    batch = torch.full((3, 7, 3), 50.0)  # garbage pads
    for b, s in enumerate(seqs):
        batch[b, : len(s)] = s
    err = ae.reconstruction_error(batch, lengths)
    alone = torch.cat([ae.reconstruction_error(s.unsqueeze(0)) for s in seqs])
    torch.testing.assert_close(err, alone)
    total, _ = ae.loss(batch, lengths)
    batch2 = batch.clone()
    batch2[1, 2:] = -3.0
    torch.testing.assert_close(ae.loss(batch2, lengths)[0], total)
    recon, extras = ae(batch, lengths)
    assert recon.shape == batch.shape and extras["code"].shape == (3, 4)
    assert torch.all(recon[1, 2:] == 0)


def test_sequence_autoencoder_learns():
    torch.manual_seed(0)
    t = torch.linspace(0, 3, 10)
    phase = torch.rand(32, 1) * 3
    x = torch.stack([torch.sin(t + phase), torch.cos(t + phase)], dim=-1)  # (32, 10, 2)
    ae = SequenceAutoencoder(2, hidden_size=16, code_size=4, sparsity="l1", sparsity_weight=1e-4)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-2)
    before = float(ae.reconstruction_error(x).mean())
    for _ in range(80):
        loss, _ = ae.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(ae.reconstruction_error(x).mean()) < 0.2 * before


# -- variational ---------------------------------------------------------------------------------------------

def test_gaussian_kl_equals_the_closed_form_and_a_monte_carlo_estimate():
    torch.manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 0.0], [2.0, 0.3, -0.4]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, -1.0, 0.7], [0.5, -0.2, -2.0]], dtype=torch.float64)
    ours = gaussian_kl(mu, logvar)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(ours, torch.distributions.kl_divergence(q, p).sum(-1))
    # KL = E_q[log q(z) − log p(z)], estimated from samples.
    z = q.sample((200_000,))
    estimate = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    torch.testing.assert_close(ours, estimate, rtol=0.03, atol=0.02)


def test_vae_loss_is_reconstruction_plus_beta_kl():
    torch.manual_seed(0)
    vae = VariationalAutoencoder(5, latent_size=2, hidden_sizes=(6,), beta=0.25)
    x = torch.randn(4, 5)
    torch.manual_seed(1)
    total, parts = vae.loss(x)
    torch.manual_seed(1)
    recon, extras = vae(x)
    torch.testing.assert_close(parts["reconstruction"], ((recon - x) ** 2).sum(1).mean())
    torch.testing.assert_close(parts["kl"], gaussian_kl(extras["mu"], extras["logvar"]).mean())
    torch.testing.assert_close(total, parts["reconstruction"] + 0.25 * parts["kl"])
    # z = μ + σ ε: gradients reach both heads through the sample.
    total.backward()
    assert vae.to_mu.weight.grad.abs().sum() > 0 and vae.to_logvar.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("beta", [-0.1, float("nan")])
def test_vae_beta_must_be_non_negative(beta):
    with pytest.raises(ConfigError, match="beta must be a number >= 0"):
        VariationalAutoencoder(4, beta=beta)


def test_vae_learns_and_samples():
    torch.manual_seed(0)
    x = _manifold(256, 2)
    vae = VariationalAutoencoder(10, latent_size=2, hidden_sizes=(32,), beta=0.1)
    opt = torch.optim.Adam(vae.parameters(), lr=5e-3)
    before = float(vae.reconstruction_error(x).mean())
    for _ in range(200):
        loss, parts = vae.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(vae.reconstruction_error(x).mean()) < 0.3 * before
    assert vae.sample(7).shape == (7, 10)
    assert vae.reconstruction_error(x).shape == (256,)
