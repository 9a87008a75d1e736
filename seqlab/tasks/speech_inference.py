"""Running a trained speech pipeline beyond ``pipe.predict``.

``transcribe_audio`` transcribes clips of any length (what ``seqlab predict`` runs for a
speech model): a long clip is cut at pauses (``seqlab.audio.chunks.chunk_bounds``) and its
chunks transcribed separately. ``speech_features`` gives the features a pipeline feeds its
model, and ``recognise_digits`` classifies isolated spoken digits by the CTC probability of
each digit word (the FSDD benchmark's, and the generative benchmark's judge of generated MFCCs).
All are re-exported by ``seqlab.tasks.speech``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..audio.chunks import CHUNK_SECONDS, MIN_AUDIO_SECONDS, chunk_bounds
from ..core.errors import InputError
from ..data.clips import DIGIT_WORDS

if TYPE_CHECKING:
    from .speech import SpeechModel

__all__ = ["recognise_digits", "speech_features", "transcribe_audio"]


def _model_of(pipe_or_model: Any) -> SpeechModel:
    # Imported here: seqlab.tasks.speech re-exports this module's functions.
    from .speech import SpeechModel

    model = getattr(pipe_or_model, "model", pipe_or_model)
    if not isinstance(model, SpeechModel):
        raise InputError(f"expected a speech pipeline or SpeechModel, got {type(pipe_or_model).__name__}")
    return model


def speech_features(pipe: Any, audio: Sequence[Any], sample_rate: int | None = None) -> list[np.ndarray]:
    """The features a speech pipeline feeds its model: one ``(frames, feature_dim)`` float32 array per clip.

    ``audio``: paths or arrays (arrays at ``sample_rate``, default the model's rate).
    """
    model = _model_of(pipe)
    inputs = [model.check_input(a, i) for i, a in enumerate(audio)]
    data: dict[str, list] = {"audio": inputs}
    if sample_rate is not None:
        data["sample_rate"] = [sample_rate] * len(inputs)
    return list(pipe.preprocess(data, with_targets=False)["features"])


def transcribe_audio(pipe: Any, inputs: Sequence[Any], chunk_seconds: float = CHUNK_SECONDS, **settings: Any) -> list[Any]:
    """Transcribe clips of any length; what ``seqlab predict`` runs for a speech model.

    A clip shorter than ``MIN_AUDIO_SECONDS`` is an ``InputError`` naming it. A clip up to
    ``chunk_seconds`` gives its transcript (a string, as ``pipe.predict``); a longer one is cut
    at pauses (``chunk_bounds``) into chunks transcribed separately, and gives
    ``{"text": all chunks' words, "chunks": [{"start", "end", "text"}]}`` with seconds from the
    start of the clip. ``settings`` are the per-call decoding settings (``decoder``, ``beam_size``).
    """
    from ..audio.io import AudioLoader

    model = _model_of(pipe)
    loader = next((s for s in pipe.stages if isinstance(s, AudioLoader)), None)
    if loader is None:
        raise InputError("transcribe_audio needs a speech pipeline with an audio_loader stage")
    # Read whole clips at the model's rate; the pipeline's loader normalises each chunk later.
    reader = AudioLoader(dataclasses.replace(loader.config, max_seconds=None, normalize="none"))
    rate = reader.config.sample_rate
    pieces: list[np.ndarray] = []
    spans: list[list[tuple[int, int]]] = []
    for index, value in enumerate(inputs):
        model.check_input(value, index)
        clip = reader({reader.config.column: [value]})["audio"][0]
        if len(clip) < MIN_AUDIO_SECONDS * rate:
            name = f" ({str(value)!r:.80})" if isinstance(value, (str, Path)) else ""
            raise InputError(
                f"input {index}{name}: the audio lasts {len(clip) / rate:.3f} s; speech needs at least "
                f"{MIN_AUDIO_SECONDS:g} s to hold a word"
            )
        bounds = chunk_bounds(clip, rate, chunk_seconds)
        spans.append(bounds)
        pieces.extend(clip[a:b] for a, b in bounds)
    rates = {reader.config.sample_rate_column: rate}  # the pieces are at the model's rate already
    texts = pipe.predict(pieces, **rates, **settings) if pieces else []
    outputs: list[Any] = []
    position = 0
    for bounds in spans:
        chunk_texts = texts[position: position + len(bounds)]
        position += len(bounds)
        if len(bounds) == 1:
            outputs.append(chunk_texts[0])
            continue
        chunks = [
            {"start": round(a / rate, 2), "end": round(b / rate, 2), "text": t["text"] if isinstance(t, dict) else t}
            for (a, b), t in zip(bounds, chunk_texts)
        ]
        outputs.append({"text": " ".join(c["text"] for c in chunks if c["text"]), "chunks": chunks})
    return outputs


def _as_feature_batch(features: Any, lengths: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(features, (list, tuple)):
        arrays = [torch.as_tensor(np.asarray(f, dtype=np.float32)) for f in features]
        if any(a.dim() != 2 for a in arrays):
            raise InputError("features: expected one (frames, dims) array per example")
        lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
        batch = torch.zeros(len(arrays), int(lengths.max()), arrays[0].shape[1])
        for i, a in enumerate(arrays):
            batch[i, : a.shape[0]] = a
        return batch.to(device), lengths.to(device)
    tensor = torch.as_tensor(np.asarray(features, dtype=np.float32)) if not isinstance(features, torch.Tensor) else features
    if tensor.dim() == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 3:
        raise InputError(f"features: expected (batch, frames, dims), got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise InputError("features: some values are NaN or infinite")
    if lengths is None:
        lengths = torch.full((tensor.shape[0],), tensor.shape[1], dtype=torch.long)
    return tensor.to(device, torch.float32), torch.as_tensor(lengths, dtype=torch.long).to(device)


def recognise_digits(
    pipe_or_model: Any,
    audio: Sequence[Any] | None = None,
    *,
    features: Any = None,
    lengths: Any = None,
    sample_rate: int | None = None,
    words: Sequence[str] = DIGIT_WORDS,
) -> list[dict[str, Any]]:
    """Classify isolated spoken digits with a trained speech model (the FSDD benchmark's).

    Each example gets the digit whose word has the highest CTC probability
    ``p(word | x)`` (``SpeechModel.candidate_log_probs``), renormalised over the ten words:
    ``{"digit": 7, "word": "seven", "score": p, "scores": [p_0 … p_9]}``. Give ``audio``
    (paths or arrays, run through the pipeline's stages) or ``features`` directly —
    a ``(B, frames, dims)`` tensor/array (+ ``lengths``) or a list of ``(frames, dims)``
    arrays, in the space the pipeline's feature stage outputs (e.g. generated MFCC images
    with the same settings: see ``speech_features`` and docs/speech.md).
    """
    model = _model_of(pipe_or_model)
    if (audio is None) == (features is None):
        raise InputError("recognise_digits: give either audio or features")
    device = next(model.parameters()).device
    if audio is not None:
        if not hasattr(pipe_or_model, "preprocess"):
            raise InputError("recognise_digits: audio needs the pipeline (for its feature stages); a bare model takes features")
        features = speech_features(pipe_or_model, list(audio), sample_rate)
        lengths = None
    feats, lens = _as_feature_batch(features, lengths, device)
    log_p = model.candidate_log_probs(feats, lens, list(words))
    posterior = torch.softmax(log_p, dim=1).cpu()
    out = []
    for row in posterior.tolist():
        best = max(range(len(row)), key=row.__getitem__)
        out.append({"digit": best, "word": words[best], "score": row[best], "scores": row})
    return out
