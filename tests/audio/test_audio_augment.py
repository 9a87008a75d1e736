"""SpecAugment: masks stay inside each clip and their bounds; the identity in eval mode."""
from __future__ import annotations

import pytest
import torch

from seqlab.audio import SpecAugment, SpecAugmentConfig, spec_augment
from seqlab.core.errors import ConfigError


def _runs(mask_1d: torch.Tensor) -> list[int]:
    """Lengths of the runs of True."""
    runs, n = [], 0
    for v in mask_1d.tolist() + [False]:
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def test_masks_stay_within_bounds_and_clip_lengths():
    cfg = SpecAugmentConfig(freq_masks=1, freq_width=6, time_masks=1, time_width=10, time_ratio=0.2, mask_value=-7.0)
    lengths = torch.tensor([100, 40, 5])
    x = torch.randn(3, 100, 20)
    gen = torch.Generator().manual_seed(0)
    seen_time = seen_freq = 0
    for _ in range(50):
        y = spec_augment(x, lengths, cfg, gen)
        masked = y == -7.0
        for b, n in enumerate(lengths.tolist()):
            assert not masked[b, n:].any()  # never in the padding
            time_rows = masked[b, :n].all(dim=1)  # frames masked across every channel
            freq_cols = masked[b, :n].all(dim=0) if n else torch.zeros(20, dtype=torch.bool)
            runs = _runs(time_rows)
            assert all(r <= min(10, int(0.2 * n)) for r in runs) or freq_cols.all()
            assert all(r <= 6 for r in _runs(freq_cols))
            seen_time += bool(runs)
            seen_freq += bool(freq_cols.any())
            # everything else untouched
            keep = ~masked[b]
            assert torch.equal(y[b][keep], x[b][keep])
    assert seen_time > 20 and seen_freq > 20  # the masks do happen


def test_identity_in_eval_mode_and_deterministic_with_a_generator():
    aug = SpecAugment(freq_masks=2, freq_width=5, time_masks=2, time_width=8)
    x = torch.randn(2, 60, 13)
    lengths = torch.tensor([60, 30])
    assert aug.eval()(x, lengths) is x
    aug.train()
    a = aug(x, lengths, torch.Generator().manual_seed(5))
    b = aug(x, lengths, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)


def test_zero_width_policy_changes_nothing_and_bad_config_is_refused():
    x = torch.randn(1, 10, 4)
    assert torch.equal(spec_augment(x, None, SpecAugmentConfig(freq_width=0, time_width=0)), x)
    with pytest.raises(ConfigError, match="time_ratio"):
        SpecAugment(time_ratio=2.0)
