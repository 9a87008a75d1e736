"""GANs: the losses against their formulas, one training step replayed by hand, a tiny cGAN."""
from __future__ import annotations

import copy

import pytest
import torch

from seqlab.core.errors import ConfigError, InputError
from seqlab.nn.gan import DCGAN, ConditionalGAN, VanillaGAN, discriminator_loss, generator_loss


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Many tiny ops: one intra-op thread is faster than waking a pool on a busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _d_formula(real_logits, fake_logits):
    d_real, d_fake = torch.sigmoid(real_logits), torch.sigmoid(fake_logits)
    return (-torch.log(d_real) - torch.log(1 - d_fake)).mean()


def _g_formula(fake_logits):
    return (-torch.log(torch.sigmoid(fake_logits))).mean()


def test_losses_equal_the_formulas():
    torch.manual_seed(0)
    real, fake = torch.randn(16, dtype=torch.float64) * 3, torch.randn(16, dtype=torch.float64) * 3
    torch.testing.assert_close(discriminator_loss(real, fake), _d_formula(real, fake))
    torch.testing.assert_close(generator_loss(fake), _g_formula(fake))


def test_losses_stay_finite_where_the_naive_formula_overflows():
    real, fake = torch.tensor([-200.0]), torch.tensor([200.0])  # D sure of the wrong answers
    assert torch.isinf(_d_formula(real, fake)) and torch.isinf(_g_formula(-fake))
    torch.testing.assert_close(discriminator_loss(real, fake), torch.tensor(400.0))
    torch.testing.assert_close(generator_loss(-fake), torch.tensor(200.0))


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _replay(module, loss_fn, lr, betas):
    """One Adam step of ``module`` on ``loss_fn(module)``, as train_step should have done."""
    opt = torch.optim.Adam(module.parameters(), lr=lr, betas=betas)
    opt.zero_grad()
    loss_fn(module).backward()
    opt.step()
    return module


@pytest.mark.parametrize("kind", ["vanilla", "conditional", "dcgan"])
def test_train_step_updates_d_then_g_and_reports_the_formulas(kind):
    torch.manual_seed(0)
    if kind == "vanilla":
        gan = VanillaGAN(3, latent_size=4, hidden_sizes=(8,), lr_generator=1e-2, lr_discriminator=5e-3)
        real, labels = torch.randn(6, 3), None
    elif kind == "conditional":
        gan = ConditionalGAN(3, num_classes=3, latent_size=4, hidden_sizes=(8,))
        real, labels = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    else:
        gan = DCGAN((1, 9, 10), latent_size=5, channels=(4, 8), num_classes=2)
        real, labels = torch.rand(6, 1, 9, 10) * 2 - 1, torch.tensor([0, 1, 0, 1, 1, 0])
    gan = gan.double()
    real = real.double()
    z = torch.randn(6, gan.latent_size, dtype=torch.float64)
    g0, d0 = copy.deepcopy(gan.generator), copy.deepcopy(gan.discriminator)
    g_before, d_before = _params(gan.generator), _params(gan.discriminator)

    out = gan.train_step(real, labels, z=z)

    # Both networks moved.
    assert any(not torch.equal(a, b) for a, b in zip(g_before, gan.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, gan.discriminator.parameters()))
    # D's loss is the formula with the networks as they were; its step is one Adam step on it.
    fake = g0(z, labels).detach()
    expected_d = _d_formula(d0(real, labels), d0(fake, labels))
    assert out["d_loss"] == pytest.approx(expected_d.item(), rel=1e-9)
    lr_d = gan.d_optimizer.param_groups[0]["lr"]
    d1 = _replay(copy.deepcopy(d0), lambda d: _d_formula(d(real, labels), d(fake, labels)), lr_d, (0.5, 0.999))
    for mine, theirs in zip(d1.parameters(), gan.discriminator.parameters()):
        torch.testing.assert_close(mine, theirs)  # the G step left D alone
    # G's loss is −log D(G(z)) judged by the *updated* D; its step is one Adam step on it.
    expected_g = _g_formula(d1(g0(z, labels), labels))
    assert out["g_loss"] == pytest.approx(expected_g.item(), rel=1e-9)
    lr_g = gan.g_optimizer.param_groups[0]["lr"]
    g1 = _replay(copy.deepcopy(g0), lambda g: _g_formula(d1(g(z, labels), labels)), lr_g, (0.5, 0.999))
    for mine, theirs in zip(g1.parameters(), gan.generator.parameters()):
        torch.testing.assert_close(mine, theirs)
    assert 0 < out["d_real"] < 1 and 0 < out["d_fake"] < 1


def test_conditional_gan_puts_samples_at_the_requested_blob():
    torch.manual_seed(0)
    centres = torch.tensor([[2.0, 2.0], [-2.0, -2.0]])
    gan = ConditionalGAN(2, num_classes=2, latent_size=2, hidden_sizes=(32, 32), embedding_size=4,
                         lr_generator=2e-3, lr_discriminator=2e-3)
    for _ in range(400):
        labels = torch.randint(0, 2, (64,))
        real = centres[labels] + 0.3 * torch.randn(64, 2)
        gan.train_step(real, labels)
    for label in (0, 1):
        samples = gan.sample(300, labels=label)
        dist = torch.cdist(samples, centres)  # (300, 2)
        nearest = dist.argmin(1)
        assert float((nearest == label).float().mean()) > 0.95
        assert float((samples.mean(0) - centres[label]).norm()) < 1.0  # the blobs are 5.7 apart


@pytest.mark.parametrize("shape", [(1, 32, 32), (1, 13, 32), (3, 9, 7)])
def test_dcgan_generates_any_image_size(shape):
    torch.manual_seed(0)
    gan = DCGAN(shape, latent_size=8, channels=(4, 8))
    assert gan.sample(3).shape == (3, *shape)
    assert gan.generate(torch.randn(2, 8)).shape == (2, *shape)
    assert gan.discriminate(torch.randn(2, *shape)).shape == (2,)
    x = gan.sample(2)
    assert x.abs().max() <= 1  # tanh output


def test_dcgan_uses_strided_convolutions_and_no_pooling():
    gan = DCGAN((1, 16, 16), latent_size=8, channels=(4, 8, 16))
    down = gan.discriminator.convs.layers
    assert [layer.stride for layer in down] == [(2, 2)] * 3 and all(layer.pool_kind is None for layer in down)
    up = gan.generator.deconvs.layers
    assert all(layer.transposed for layer in up) and all(layer.pool_kind is None for layer in up)
    assert up[-1].out_channels == 1


def test_label_errors():
    gan = ConditionalGAN(2, num_classes=3, latent_size=2, hidden_sizes=(4,))
    with pytest.raises(InputError, match=r"label 5 is out of range.*labels 0\.\.2"):
        gan.sample(2, labels=[1, 5])
    with pytest.raises(InputError, match="label -1 is out of range"):
        gan.sample(1, labels=-1)
    with pytest.raises(InputError, match="is conditional"):
        gan.sample(2)
    with pytest.raises(InputError, match="must be integers"):
        gan.sample(2, labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(InputError, match="3 labels for 2 examples"):
        gan.sample(2, labels=[0, 1, 2])
    with pytest.raises(InputError, match="out of range"):
        gan.train_step(torch.randn(2, 2), torch.tensor([0, 3]))
    with pytest.raises(InputError, match="takes no labels"):
        VanillaGAN(2, latent_size=2, hidden_sizes=(4,)).sample(2, labels=0)


def test_shape_and_config_errors():
    gan = VanillaGAN(3, latent_size=2, hidden_sizes=(4,))
    with pytest.raises(InputError, match=r"expected data of shape \(B, 3\)"):
        gan.train_step(torch.randn(4, 2))
    with pytest.raises(InputError, match=r"z must have shape \(4, 2\)"):
        gan.train_step(torch.randn(4, 3), z=torch.randn(4, 3))
    with pytest.raises(ConfigError, match="too small"):
        DCGAN((1, 4, 4), channels=(4, 8, 16))
    with pytest.raises(ConfigError, match=r"image_shape must be \(C, H, W\)"):
        DCGAN((13, 32))
    with pytest.raises(ConfigError, match="lr_generator must be a number > 0"):
        VanillaGAN(2, lr_generator=0)


def test_sample_keeps_the_training_mode_and_device():
    gan = DCGAN((1, 8, 8), latent_size=4, channels=(4,))
    gan.train()
    x = gan.sample(2)
    assert gan.generator.training and x.device == next(gan.parameters()).device
