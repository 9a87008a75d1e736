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


# -- speed perturbation ------------------------------------------------------------------------
def _peak_hz(x, rate):
    import numpy as np

    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_scales_duration_and_frequency(factor):
    import numpy as np

    from seqlab.audio import speed_perturb

    rate = 8000
    t = np.arange(rate) / rate
    clip = (0.5 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    (out,) = speed_perturb([clip], rate, factor)
    assert out.dtype == np.float32 and abs(len(out) - rate / factor) <= 1
    assert abs(_peak_hz(out, rate) - 500 * factor) <= 2.0
    assert np.sqrt(np.mean(out[200:-200] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_speed_perturbed_data_keeps_the_transcripts_aligned():
    import numpy as np

    from seqlab.audio import speed_perturb_data

    data = {"audio": [np.ones(800, np.float32), np.ones(1600, np.float32)], "text": ["a", "b"], "sample_rate": [8000, 8000]}
    out = speed_perturb_data(data, (0.9, 1.1), 8000)
    assert out["text"] == ["a", "b"] * 3 and out["sample_rate"] == [8000] * 6
    assert [len(a) for a in out["audio"]] == [800, 1600, 889, 1778, 728, 1455]
    assert data["text"] == ["a", "b"]  # the input is not changed
    with pytest.raises(ConfigError, match="speed factor"):
        speed_perturb_data(data, (0.0,), 8000)
    with pytest.raises(ConfigError, match="no column 'audio'"):
        speed_perturb_data({"wave": []}, (0.9,), 8000)
