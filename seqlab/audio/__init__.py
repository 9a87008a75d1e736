"""seqlab.audio: reading, resampling, normalising audio; log-mel and MFCC features; SpecAugment.

Stages (registry names): ``audio_loader`` → :class:`AudioLoader`, ``mfcc`` → :class:`MFCC`,
``log_mel`` → :class:`LogMel`. The same features inside a model: :class:`MFCCTransform`,
:class:`LogMelTransform` (padded batch + lengths → features + frame lengths).
"""
from .augment import (
    EdgeAugmentConfig,
    SpecAugment,
    SpecAugmentConfig,
    edge_augment,
    edge_augment_data,
    spec_augment,
    speech_bounds,
    speed_perturb,
    speed_perturb_data,
    trim_edges,
)
from .features import (
    MFCC,
    LogMel,
    LogMelConfig,
    LogMelTransform,
    MFCCConfig,
    MFCCTransform,
    librosa_reference,
)
from .io import AudioLoader, AudioLoaderConfig, read_audio, split_clip
from .resample import resample, resample_clips
from .signal import peak_normalize, rms_normalize, to_float32, to_mono

__all__ = [
    "MFCC", "AudioLoader", "AudioLoaderConfig", "EdgeAugmentConfig", "edge_augment", "edge_augment_data", "speech_bounds",
    "trim_edges", "LogMel", "LogMelConfig", "LogMelTransform", "MFCCConfig",
    "MFCCTransform", "SpecAugment", "SpecAugmentConfig", "librosa_reference", "peak_normalize", "read_audio",
    "resample", "resample_clips", "rms_normalize", "spec_augment", "speed_perturb", "speed_perturb_data", "split_clip", "to_float32", "to_mono",
]
