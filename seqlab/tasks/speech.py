"""Speech to text: audio → MFCC / log-mel → CNN → BiLSTM/BiGRU → linear → CTC.

The encoder has the CRDNN shape of SpeechBrain's recipes (Ravanelli et al. 2021,
"SpeechBrain: A General-Purpose Speech Toolkit", §4): a 2-D convolutional front end over
the (feature × time) image, strided to shorten the sequence, built with ``ConvStack``;
a bidirectional LSTM/GRU (``seqlab.nn.recurrent.PaddedBiRecurrentEncoder``: per layer two unidirectional
``RecurrentEncoder``s on the fused kernels, no packing) over the flattened channel ×
feature maps; an optional feed-forward layer; and a linear read-out
to the output labels plus the CTC blank (``seqlab.nn.ctc``). Training minimises the CTC
loss (Graves et al. 2006) with SpecAugment masks on the features (Park et al. 2019,
training only); decoding is greedy or a prefix beam search with an optional word list
and n-gram LM.

Where features are computed. The ``audio_loader`` stage reads and resamples; the ``mfcc``
(or ``log_mel``) stage computes the features once per clip, batched on its device (the
recipe puts it on the pipeline's device). Computing them once, as a stage, is the faster
choice on a CPU: ``Pipeline.fit`` maps the training set once and every epoch reuses the
features, where a transform inside the model would redo the FFTs each epoch on padded
batches. The model takes features ``(B, frames, dims)``; ``SpeechModel.transcribe`` and
``recognise_digits`` (``seqlab.tasks.speech_inference``) run it on precomputed features directly.

Output labels are characters (``unit: char``, a space separating words) or whole words
(``unit: word``, e.g. the ten digit words), in ``SpeechConfig.tokens``; the recipe collects
them from the training transcripts. Transcripts are lower-cased (``lowercase``) and their
white space collapsed before training and scoring.

Lengths. The CNN's time strides shorten the sequence; ``ConvStack.output_lengths`` gives
each example's frames after it. A transcript that needs more frames than that (its length
plus its adjacent repeats) cannot be emitted by CTC: such training examples are left out,
with one warning giving their number, and counted in ``SpeechModel.skipped_examples``.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..audio.augment import EdgeAugmentConfig, SpecAugment, SpecAugmentConfig
from ..audio.chunks import CHUNK_SECONDS, MIN_AUDIO_SECONDS, chunk_bounds
from ..audio.features import LogMelConfig, MFCCConfig
from ..audio.io import AudioLoaderConfig
from ..core.errors import ConfigError, DataError, InputError
from ..core.options import MAX_BEAM_SIZE, Option, check_cap
from ..core.task import TaskModel
from ..data.splits import FileRecipe
from ..nn.blocks import ConvLayerSpec, ConvStack
from ..nn.ctc import (
    BLANK, CTCHead, NGramLM, WordList, beam_search_batch, ctc_align, ctc_loss, ctc_min_frames, greedy_decode,
    sequence_log_prob,
)
from ..nn.recurrent import PaddedBiRecurrentEncoder
from ..train.config import TrainConfig
# Re-exported: the helpers that run a trained speech pipeline live in speech_inference.
from .speech_inference import DIGIT_WORDS, recognise_digits, speech_features, transcribe_audio

__all__ = [
    "CHUNK_SECONDS",
    "DIGIT_WORDS",
    "MIN_AUDIO_SECONDS",
    "DecoderConfig",
    "SpeechConfig",
    "SpeechData",
    "SpeechModel",
    "SpeechRecipe",
    "chunk_bounds",
    "collect_tokens",
    "normalize_transcript",
    "recognise_digits",
    "speech_features",
    "transcribe_audio",
]



def normalize_transcript(text: str, lowercase: bool = True) -> str:
    """Lower-case (optionally) and collapse white space: what the model is trained to output.

    >>> normalize_transcript("  YES  no\\tyes ")
    'yes no yes'
    """
    if not isinstance(text, str):
        raise DataError(f"a transcript must be a string, got {type(text).__name__} {text!r:.60}")
    text = " ".join(text.split())
    return text.lower() if lowercase else text


def collect_tokens(texts: Sequence[str], unit: str = "char", lowercase: bool = True) -> list[str]:
    """The sorted label set of some transcripts: characters (space included) or words.

    >>> collect_tokens(["one two", "two"], unit="word")
    ['one', 'two']
    >>> collect_tokens(["ab", "b a"])
    [' ', 'a', 'b']
    """
    seen: set[str] = set()
    for text in texts:
        norm = normalize_transcript(text, lowercase)
        seen.update(norm.split() if unit == "word" else norm)
    if not seen:
        raise DataError("the training transcripts are all empty: there are no labels to learn")
    return sorted(seen)


def _default_cnn() -> list[ConvLayerSpec]:
    # (feature, time) strides: features /4, time /2 — 20 ms per output frame at a 10 ms hop.
    return [
        ConvLayerSpec(channels=32, kernel=3, stride=(2, 2), padding=1, norm="layer", activation="leaky_relu"),
        ConvLayerSpec(channels=32, kernel=3, stride=(2, 1), padding=1, norm="layer", activation="leaky_relu"),
    ]


@dataclass
class DecoderConfig:
    """How ``decode`` turns the CTC outputs into text."""

    method: Literal["greedy", "beam"] = "greedy"
    beam_size: int = 8
    #: Only these words may be output (beam search). None: any label sequence.
    word_list: list[str] | None = None
    #: A word n-gram LM for beam search: ARPA text (the recipe can fit one on the training
    #: transcripts), or the path of an ARPA file read when first needed.
    lm_arpa: str | None = None
    lm_path: str | None = None
    #: α and β of score = log p_ctc + α log p_lm + β |words|.
    lm_weight: float = 0.5
    word_bonus: float = 0.0
    #: Beam search tries, at each frame, the labels above this probability (and the beam_size best).
    token_min_prob: float = 1e-4

    def validate(self, where: str = "decoder") -> None:
        if self.beam_size < 1:
            raise ConfigError(f"{where}.beam_size must be >= 1, got {self.beam_size}")
        check_cap(where, "beam_size", self.beam_size, MAX_BEAM_SIZE)
        if not 0.0 <= self.token_min_prob < 1.0:
            raise ConfigError(f"{where}.token_min_prob must be in [0, 1), got {self.token_min_prob}")
        if self.lm_arpa is not None and self.lm_path is not None:
            raise ConfigError(f"{where}: give lm_arpa or lm_path, not both")


@dataclass
class SpeechConfig:
    """Model settings; ``tokens``, ``feature_dim`` and ``frame_shift_s`` come from the data and stages."""

    #: Output labels: characters (words separated by a space label) or whole words.
    unit: Literal["char", "word"] = "char"
    #: The labels (ids 1…; 0 is the CTC blank). Empty: the recipe collects them from the training
    #: transcripts (for ``unit: char`` without a recipe, a–z, apostrophe and space).
    tokens: list[str] = field(default_factory=list)
    lowercase: bool = True
    #: The 2-D convolutional front end over (feature, time); strides are (feature, time).
    cnn: list[ConvLayerSpec] = field(default_factory=_default_cnn)
    rnn: Literal["lstm", "gru"] = "lstm"
    hidden_size: int = 128
    num_layers: int = 2
    #: A feed-forward layer (Linear → LeakyReLU) between the RNN and the read-out; 0: none.
    dnn_size: int = 0
    dropout: float = 0.15
    #: Masks on the features while training (None: no augmentation).
    spec_augment: SpecAugmentConfig | None = field(
        default_factory=lambda: SpecAugmentConfig(freq_masks=2, freq_width=4, time_masks=2, time_width=10, time_ratio=0.2)
    )
    #: ``"mean"``: each utterance's loss over its label count, averaged (torch's); ``"sum"``: per-utterance mean.
    ctc_reduction: Literal["mean", "sum"] = "mean"
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    #: Filled from the feature stage: dims per frame and seconds per frame.
    feature_dim: int = 0
    frame_shift_s: float = 0.01

    def validate(self, where: str = "model") -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}.dropout must be in [0, 1), got {self.dropout}")
        for name in ("hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")
        if self.dnn_size < 0 or self.feature_dim < 0:
            raise ConfigError(f"{where}: dnn_size and feature_dim must be >= 0")
        if not self.cnn:
            raise ConfigError(f"{where}.cnn: give at least one convolution layer")
        if len(set(self.tokens)) != len(self.tokens):
            dup = sorted({t for t in self.tokens if self.tokens.count(t) > 1})
            raise ConfigError(f"{where}.tokens: {dup} listed twice")
        if "" in self.tokens:
            raise ConfigError(f"{where}.tokens: an empty label is not allowed (id 0, the blank, has no text)")
        if self.unit == "word" and any(" " in t for t in self.tokens):
            raise ConfigError(f"{where}.tokens: word labels may not hold spaces")
        if self.unit == "char" and any(len(t) != 1 for t in self.tokens):
            raise ConfigError(f"{where}.tokens: with unit: char every label is one character")


#: Labels of a character model built without a recipe (no transcripts to collect them from).
DEFAULT_CHARS = [" ", "'"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]


class SpeechModel(TaskModel):
    """CNN → BiRNN → CTC speech recogniser over feature frames; ``decode`` gives transcripts.

    >>> cfg = SpeechConfig(unit="word", tokens=["no", "yes"], feature_dim=13, hidden_size=8, num_layers=1)
    >>> model = SpeechModel(cfg).eval()
    >>> batch = {"features": torch.randn(2, 30, 13), "features_lengths": torch.tensor([30, 12])}
    >>> log_probs, frames = model.log_probs(batch["features"], batch["features_lengths"])
    >>> tuple(log_probs.shape), frames.tolist()        # time stride 2, blank + 2 words
    ((2, 15, 3), [15, 6])
    >>> [type(t).__name__ for t in model.decode(batch)]
    ['str', 'str']
    """

    task = "speech"
    Config = SpeechConfig
    input_column = "audio"
    target_columns = ("text",)
    selection_metric = "wer"
    selection_mode = "min"
    #: A small dev set reaches WER 0 early; the dev CTC loss then picks among the epochs that do.
    selection_tiebreak = "loss"
    exportable = True
    options = {
        "decoder": Option(str, doc="greedy or beam search", choices=("greedy", "beam"), from_config="decoder.method"),
        "beam_size": Option(int, doc="beam width", low=1, high=MAX_BEAM_SIZE, from_config="decoder.beam_size"),
        "timings": Option(bool, False, "return a dict with per-word and per-label times and scores"),
        "sample_rate": Option(object, doc="the rate of audio given as arrays (default: the model's rate)", column=True),
    }

    def __init__(self, config: SpeechConfig) -> None:
        super().__init__(config)
        if config.feature_dim < 1:
            raise ConfigError(
                "speech model: feature_dim is 0; build it with Pipeline.fit (it reads the dims of the mfcc/log_mel "
                "stage) or set model.feature_dim"
            )
        if not config.tokens:
            raise ConfigError(
                "speech model: tokens is empty; build it with SpeechRecipe (it collects the labels of the training "
                "transcripts) or set model.tokens"
            )
        self.labels = [""] + list(config.tokens)  # id 0: the blank
        self._index = {t: i for i, t in enumerate(self.labels) if i != BLANK}
        self.augment = SpecAugment(config.spec_augment) if config.spec_augment is not None else None
        self.cnn = ConvStack(1, config.cnn, dims=2)
        try:
            channels, freq, _ = self.cnn.output_shape((1, config.feature_dim, 4096))
        except InputError as err:
            raise ConfigError(f"speech model: the cnn cannot take {config.feature_dim} feature dims: {err}") from None
        self.rnn = PaddedBiRecurrentEncoder(channels * freq, config.hidden_size, config.num_layers, config.rnn, config.dropout)
        self.drop = nn.Dropout(config.dropout)
        size = self.rnn.output_size
        if config.dnn_size:
            self.dnn: nn.Module = nn.Sequential(nn.Linear(size, config.dnn_size), nn.LeakyReLU(), nn.Dropout(config.dropout))
            size = config.dnn_size
        else:
            self.dnn = nn.Identity()
        self.head = CTCHead(size, len(config.tokens))
        #: Training examples left out because their transcript cannot fit their frames.
        self.skipped_examples = 0
        self._warned_skip = False
        self._lm: NGramLM | None = None
        self._word_list: WordList | None = None

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def configure(cls, config: SpeechConfig, stages: list) -> SpeechConfig:
        from ..audio.features import LogMel

        feature = next((s for s in stages if isinstance(s, LogMel)), None)
        if feature is None:
            raise ConfigError("the speech pipeline needs an mfcc or log_mel stage after the audio_loader")
        fcfg = feature.config
        changes: dict[str, Any] = {"feature_dim": feature.dim, "frame_shift_s": fcfg.hop_length / fcfg.sample_rate}
        if not config.tokens:
            if config.unit == "word":
                raise ConfigError(
                    "speech model: unit: word needs model.tokens (the words); SpeechRecipe collects them from the "
                    "training transcripts"
                )
            changes["tokens"] = list(DEFAULT_CHARS)
        return dataclasses.replace(config, **changes)

    @property
    def time_stride(self) -> int:
        """Feature frames per output frame (the product of the CNN's time strides and pools)."""
        stride = 1
        for layer in self.cnn.layers:
            stride *= layer.stride[-1]
            if layer.pool_kind in ("max", "avg"):
                stride *= layer.pool_stride[-1]
        return stride

    # -- data ----------------------------------------------------------------------------------
    def pad_values(self, training: bool) -> dict[str, Any]:
        pads: dict[str, Any] = {"features": 0.0}
        if training:
            pads["text"] = None
        return pads

    def length_column(self) -> str:
        return "features"

    def check_input(self, value: Any, index: int) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            raise InputError(
                f"input {index}: expected an audio file path, an array of samples or a datasets.Audio dict, "
                f"got {type(value).__name__} {value!r:.60}"
            )
        return value

    def encode_text(self, text: str, where: str = "transcript") -> list[int]:
        """A transcript → label ids (after ``normalize_transcript``); unknown labels are a DataError."""
        norm = normalize_transcript(text, self.config.lowercase)
        units = norm.split() if self.config.unit == "word" else list(norm)
        ids = []
        for unit in units:
            i = self._index.get(unit)
            if i is None:
                known = ", ".join(repr(t) for t in self.config.tokens[:40])
                raise DataError(
                    f"{where} {text!r:.80} has the {self.config.unit} {unit!r}, which is not an output label of this "
                    f"model (labels: {known}{' …' if len(self.config.tokens) > 40 else ''})"
                )
            ids.append(i)
        return ids

    def ids_to_text(self, ids: Sequence[int]) -> str:
        parts = [self.labels[int(i)] for i in ids if int(i) != BLANK]
        if self.config.unit == "word":
            return " ".join(parts)
        return " ".join("".join(parts).split())

    def output_lengths(self, frames: torch.Tensor) -> torch.Tensor:
        """Encoder frames left after the CNN for ``frames`` feature frames (``ConvStack.output_lengths``)."""
        return self.cnn.output_lengths(frames)

    def train_batches(self, columns: Mapping[str, list], config: TrainConfig, epoch: int) -> list[dict[str, torch.Tensor]]:
        """Length-bucketed batches of padded features + label ids; infeasible examples left out."""
        from ..data.collate import bucket_batches

        features, texts = columns["features"], columns["text"]
        targets = [self.encode_text(t, f"training example {i}: transcript") for i, t in enumerate(texts)]
        frames = torch.tensor([len(f) for f in features], dtype=torch.long)
        out_frames = self.output_lengths(frames)
        lengths = torch.tensor([len(t) for t in targets], dtype=torch.long)
        padded = torch.zeros(len(targets), max(int(lengths.max()), 1), dtype=torch.long)
        for row, ids in enumerate(targets):
            padded[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        feasible = ctc_min_frames(padded, lengths) <= out_frames
        keep = feasible.nonzero().flatten().tolist()
        skipped = len(targets) - len(keep)
        self.skipped_examples = skipped
        if not keep:
            raise DataError(
                f"every one of the {len(targets)} training transcripts is longer than the encoder's output frames "
                f"(the cnn divides time by {self.time_stride}); use smaller cnn time strides or word labels"
            )
        if skipped and not self._warned_skip:
            self._warned_skip = True
            first = int((~feasible).nonzero()[0])
            warnings.warn(
                f"{skipped} of {len(targets)} training examples are left out: their transcript needs more CTC frames "
                f"than the encoder outputs (e.g. example {first}: {int(ctc_min_frames(padded[first:first + 1], lengths[first:first + 1]))} "
                f"needed, {int(out_frames[first])} frames after the cnn's time stride {self.time_stride})",
                stacklevel=2,
            )
        order = bucket_batches(
            [int(frames[i]) for i in keep], config.batch_size, shuffle=True, seed=config.seed + epoch,
            bucket_factor=config.bucket_factor, max_tokens=config.max_tokens,
        )
        batches = []
        for local in order:
            rows = [keep[i] for i in local]
            longest = int(frames[rows].max())
            feats = torch.zeros(len(rows), longest, self.config.feature_dim)
            for r, i in enumerate(rows):
                feats[r, : int(frames[i])] = torch.as_tensor(np.asarray(features[i], dtype=np.float32))
            t_len = lengths[rows]
            batches.append({
                "features": feats,
                "features_lengths": frames[rows].clone(),
                "targets": padded[rows, : max(int(t_len.max()), 1)].clone(),
                "targets_lengths": t_len.clone(),
            })
        return batches

    # -- the network ---------------------------------------------------------------------------
    def log_probs(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(B, frames, feature_dim)`` → CTC log-probabilities ``(B, T', labels + 1)`` and ``T'`` per example."""
        lengths = self._checked_lengths(features, lengths)
        x = features.float()
        if self.augment is not None:
            x = self.augment(x, lengths)  # the identity in eval()
        x = x.transpose(1, 2).unsqueeze(1)  # (B, 1, feature, time): time last, as ConvStack counts lengths on it
        x, out_lengths = self.cnn(x, lengths)
        x = x.flatten(1, 2).transpose(1, 2)  # (B, T', channels · feature')
        x, _, _ = self.rnn(x, out_lengths)
        x = self.dnn(self.drop(x))
        return self.head(x), out_lengths

    # -- export: features → CTC log-probabilities is the network; the search stays in Python -----
    def network_outputs(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"log_probs": (B, T', labels + 1), "lengths": (B,)}`` of ``features`` and ``features_lengths``."""
        log_probs, lengths = self.log_probs(inputs["features"], inputs["features_lengths"])
        return {"log_probs": log_probs, "lengths": lengths}

    def example_network_inputs(self, variant: int = 0) -> dict[str, torch.Tensor]:
        frames = (16 if variant == 0 else 23) * self.time_stride
        lengths = [frames, frames // 2 + 1] if variant == 0 else [frames // 3 + 2, frames, frames - 5]
        generator = torch.Generator().manual_seed(variant)
        features = torch.randn(len(lengths), frames, self.config.feature_dim, generator=generator)
        for row, length in enumerate(lengths):
            features[row, length:] = 0.0  # padding, as the collate pads
        return {"features": features, "features_lengths": torch.tensor(lengths)}

    def network_axes(self) -> dict[str, dict[int, str]]:
        return {"features": {0: "batch", 1: "frames"}, "features_lengths": {0: "batch"},
                "log_probs": {0: "batch", 1: "steps"}, "lengths": {0: "batch"}}

    def _checked_lengths(self, features: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Refuse features of the wrong shape; ``lengths``, or every clip's full length when None."""
        if features.dim() != 3 or features.shape[-1] != self.config.feature_dim:
            raise InputError(
                f"speech model: expected features (batch, frames, {self.config.feature_dim}), got shape {tuple(features.shape)}"
            )
        if lengths is None:
            lengths = torch.full((features.shape[0],), features.shape[1], dtype=torch.long, device=features.device)
        return lengths

    def _inference_log_probs(self, features: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``log_probs`` in prediction: through ``run_network`` (the exported network when there is one)."""
        lengths = self._checked_lengths(features, lengths)
        out = self.run_network({"features": features.float(), "features_lengths": lengths.long()})
        return out["log_probs"], out["lengths"]

    def _batch_ctc_loss(self, batch: dict[str, torch.Tensor], log_probs: torch.Tensor, out_lengths: torch.Tensor) -> torch.Tensor:
        result = ctc_loss(log_probs, out_lengths, batch["targets"], batch["targets_lengths"], self.config.ctc_reduction)
        return result.loss

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "targets" not in batch:
            raise DataError("SpeechModel.loss needs a batch from train_batches (features, targets and their lengths)")
        return self._batch_ctc_loss(batch, *self.log_probs(batch["features"], batch["features_lengths"]))

    # -- decoding ------------------------------------------------------------------------------
    def _decoder_resources(self) -> tuple[WordList | None, NGramLM | None]:
        dcfg = self.config.decoder
        if self._word_list is None and dcfg.word_list:
            self._word_list = WordList(normalize_transcript(w, self.config.lowercase) for w in dcfg.word_list)
        if self._lm is None and (dcfg.lm_arpa or dcfg.lm_path):
            self._lm = NGramLM.from_arpa(dcfg.lm_arpa if dcfg.lm_arpa else Path(dcfg.lm_path))
        return self._word_list, self._lm

    def _search(self, log_probs: torch.Tensor, lengths: torch.Tensor, method: str, beam_size: int) -> list[list[int]]:
        if method == "greedy":
            return greedy_decode(log_probs, lengths)
        if method != "beam":
            raise InputError(f"decoder must be 'greedy' or 'beam', got {method!r}")
        word_list, lm = self._decoder_resources()
        dcfg = self.config.decoder
        best = beam_search_batch(
            log_probs, lengths, beam_size, labels=self.labels,
            word_separator=None if self.config.unit == "word" else " ", word_list=word_list, lm=lm,
            lm_weight=dcfg.lm_weight, word_bonus=dcfg.word_bonus, token_min_prob=dcfg.token_min_prob,
        )
        greedy = None
        out = []
        for b, hyp in enumerate(best):
            if hyp is None:  # the word list allowed no complete hypothesis: fall back to the best path
                greedy = greedy if greedy is not None else greedy_decode(log_probs, lengths)
                out.append(greedy[b])
            else:
                out.append(hyp.ids)
        return out

    @torch.no_grad()
    def transcribe(
        self, features: torch.Tensor, lengths: torch.Tensor | None = None, decoder: str | None = None,
        beam_size: int | None = None,
    ) -> list[str]:
        """Transcripts of precomputed features ``(B, frames, feature_dim)`` (what the feature stage outputs)."""
        was_training = self.training
        self.eval()
        try:
            log_probs, out_lengths = self._inference_log_probs(features, lengths)
            given = {k: v for k, v in (("decoder", decoder), ("beam_size", beam_size)) if v is not None}
            options = self.parse_options(given)
            method, beam = options.decoder, options.beam_size
            ids = self._search(log_probs, out_lengths, method, beam)
        finally:
            self.train(was_training)
        return [self.ids_to_text(i) for i in ids]

    @torch.no_grad()
    def decode(self, batch: dict[str, Any], options: Any = None) -> list[Any]:
        """One transcript (a string) per example; with ``timings=True`` a dict with per-word/label timings.

        ``options``: the call's ``decoder``, ``beam_size`` and ``timings`` (``pipe(audio, decoder="beam")``).
        """
        options = options if options is not None else self.parse_options({})
        raw = batch.get("_raw") or {}
        log_probs, out_lengths = self._inference_log_probs(batch["features"], batch["features_lengths"])
        ids = self._search(log_probs, out_lengths, options.decoder, options.beam_size)
        outputs: list[Any] = []
        for b in range(log_probs.shape[0]):
            text = self.ids_to_text(ids[b])
            if not options.timings:
                outputs.append(text)
                continue
            outputs.append(self._with_timings(text, ids[b], log_probs[b], int(out_lengths[b])))
        return self._blank_too_short(outputs, raw)

    @staticmethod
    def _blank_too_short(outputs: list[Any], raw: Mapping[str, list]) -> list[Any]:
        """An empty transcript for clips shorter than ``MIN_AUDIO_SECONDS`` (a few frames decode to noise, e.g. ``s``)."""
        clips, rates = raw.get("audio"), raw.get("sample_rate")
        if clips is None or rates is None:
            return outputs
        for b, (clip, rate) in enumerate(zip(clips, rates)):
            if len(clip) < MIN_AUDIO_SECONDS * rate:
                outputs[b] = {"text": "", "words": [], "labels": []} if isinstance(outputs[b], dict) else ""
        return outputs

    def _with_timings(self, text: str, ids: list[int], log_probs: torch.Tensor, length: int) -> dict[str, Any]:
        """Forced alignment of the output: seconds and mean posterior of each label and word."""
        seconds = self.config.frame_shift_s * self.time_stride
        spans = ctc_align(log_probs, ids, length) or []
        labels = [
            {"label": self.labels[s.label], "start": round(s.start * seconds, 3), "end": round(s.end * seconds, 3), "score": round(s.score, 4)}
            for s in spans
        ]
        words: list[dict[str, Any]] = []
        if self.config.unit == "word":
            words = [{"word": l["label"], "start": l["start"], "end": l["end"], "score": l["score"]} for l in labels]
        else:
            current: list[dict[str, Any]] = []
            for item in labels + [{"label": " "}]:
                if item["label"] == " ":
                    if current:
                        words.append({
                            "word": "".join(c["label"] for c in current), "start": current[0]["start"],
                            "end": current[-1]["end"], "score": round(math.fsum(c["score"] for c in current) / len(current), 4),
                        })
                    current = []
                else:
                    current.append(item)
        return {"text": text, "words": words, "labels": labels}

    @torch.no_grad()
    def check_references(self, references: Mapping[str, list], where: str = "dev example") -> None:
        """Every reference transcript must be made of this model's output labels (``encode_text``)."""
        for i, text in enumerate(references["text"]):
            self.encode_text(text, f"{where} {i}: transcript")

    def tiebreak_metrics(self, processed: Mapping[str, list], references: Mapping[str, list], device: Any) -> dict[str, float]:
        """The CTC loss on the dev data, averaged over utterances (``ctc_reduction`` within each)."""
        from ..train import TrainConfig

        # The loss needs label ids: name an unencodable row as evaluation data, not as training data.
        self.check_references(references, "evaluation example")

        was_training, skipped = self.training, self.skipped_examples
        self.eval()
        try:
            columns = {"features": processed["features"], "text": list(references["text"])}
            total, count = 0.0, 0
            for batch in self.train_batches(columns, TrainConfig(batch_size=64, seed=0), epoch=0):
                size = int(batch["features"].shape[0])
                batch = {k: v.to(device) for k, v in batch.items()}
                # The network through run_network, so an exported pipeline reports the same loss.
                with torch.no_grad():
                    log_probs, out_lengths = self._inference_log_probs(batch["features"], batch["features_lengths"])
                total += float(self._batch_ctc_loss(batch, log_probs, out_lengths)) * size
                count += size
        finally:
            self.train(was_training)
            self.skipped_examples = skipped  # the training set's count, as fit reported it
        return {"loss": total / count if count else math.inf}

    def metrics(self, outputs: list[Any], references: dict[str, list]) -> dict[str, float]:
        from ..metrics.error_rate import cer, wer

        hyps = [o["text"] if isinstance(o, dict) else o for o in outputs]
        refs = [normalize_transcript(r, self.config.lowercase) for r in references["text"]]
        return {"wer": wer(refs, hyps), "cer": cer(refs, hyps)}

    # -- presenting --------------------------------------------------------------------------------
    def format_output(self, output: Any) -> str:
        """The transcript; a chunked long clip (``transcribe_audio``) as ``[m:ss.s–m:ss.s] text`` per chunk.

        >>> SpeechModel.format_output(None, "one two")
        'one two'
        >>> SpeechModel.format_output(None, {"text": "one two", "chunks": [
        ...     {"start": 0.0, "end": 19.5, "text": "one"}, {"start": 19.5, "end": 65.25, "text": "two"}]})
        '[0:00.0–0:19.5] one [0:19.5–1:05.2] two'
        """
        def clock(seconds: float) -> str:
            minutes, rest = divmod(float(seconds), 60.0)
            return f"{int(minutes)}:{rest:04.1f}"

        if isinstance(output, dict) and isinstance(output.get("chunks"), list):
            return " ".join(
                f"[{clock(c['start'])}–{clock(c['end'])}] {c['text'] or '(no words)'}" for c in output["chunks"]
            )
        text = output.get("text") if isinstance(output, dict) else output
        if not isinstance(text, str):
            return TaskModel.format_output(self, output)
        return text if text.strip() else "(no words recognised)"

    # -- scoring given transcripts (the digit classifier) -----------------------------------------
    @torch.no_grad()
    def candidate_log_probs(self, features: torch.Tensor, lengths: torch.Tensor | None, candidates: Sequence[str]) -> torch.Tensor:
        """``log p(candidate | features)`` under CTC, ``(B, K)``; ``-inf`` where a candidate cannot fit."""
        was_training = self.training
        self.eval()
        try:
            log_probs, out_lengths = self._inference_log_probs(features, lengths)
        finally:
            self.train(was_training)
        batch = log_probs.shape[0]
        columns = []
        for k, text in enumerate(candidates):
            ids = self.encode_text(text, f"candidate {k}")
            if not ids:
                raise InputError(f"candidate {k} {text!r} is empty")
            target = torch.tensor([ids] * batch, dtype=torch.long, device=log_probs.device)
            columns.append(sequence_log_prob(log_probs, out_lengths, target, torch.full((batch,), len(ids), dtype=torch.long)))
        return torch.stack(columns, dim=1)


# -- recipe ------------------------------------------------------------------------------------
@dataclass
class SpeechData:
    """TSV files with a header: a column of audio file paths and one of transcripts."""

    train: str = "corpora/speech/train.tsv"
    dev: str | None = "corpora/speech/dev.tsv"
    audio_column: str = "file"
    text_column: str = "text"
    #: Relative audio paths are read from here (default: the folder of the TSV file).
    root: str | None = None
    #: Use only the first N training rows (None: all).
    limit_train: int | None = None


@dataclass
class SpeechRecipe(FileRecipe):
    """``pipelines/speech.yaml`` maps onto this."""

    task: str = "speech"
    data: SpeechData = field(default_factory=SpeechData)
    #: Reading and resampling; ``audio.sample_rate`` is the model's rate.
    audio: AudioLoaderConfig = field(default_factory=AudioLoaderConfig)
    #: Which feature stage: the ``mfcc`` or the ``log_mel`` section (its sample_rate must equal audio's).
    features: Literal["mfcc", "log_mel"] = "mfcc"
    mfcc: MFCCConfig = field(default_factory=lambda: MFCCConfig(n_mfcc=20, n_mels=40, cmvn="utterance"))
    log_mel: LogMelConfig = field(default_factory=lambda: LogMelConfig(n_mels=40, cmvn="utterance"))
    model: SpeechConfig = field(default_factory=SpeechConfig)
    #: Speed-perturbed copies of the training audio, one per factor (Ko et al. 2015 use 0.9 and 1.1;
    #: [] for none): the training set grows by that many times. The audio is read into memory.
    speed_perturb: list[float] = field(default_factory=list)
    #: Random edge trimming/padding of the training audio (after speed perturbation; ``copies: 0``: off).
    edge_augment: EdgeAugmentConfig = field(default_factory=EdgeAugmentConfig)
    #: Fill ``model.decoder.word_list`` with the training transcripts' words.
    word_list_from_train: bool = False
    #: Fit a word n-gram LM of this order on the training transcripts for beam search (0: none).
    lm_order_from_train: int = 0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=16, lr=2e-3))
    output: str = "runs/speech"
    device: str = "auto"
    #: Audio files to transcribe after training, to show the model at work.
    examples: list[str] = field(default_factory=list)

    def validate(self, where: str = "recipe") -> None:
        feature = self.feature_config
        if feature.sample_rate != self.audio.sample_rate:
            raise ConfigError(
                f"{where}: {self.features}.sample_rate ({feature.sample_rate}) differs from audio.sample_rate "
                f"({self.audio.sample_rate}); the loader resamples to audio.sample_rate, so set both to the model's rate"
            )
        if self.lm_order_from_train < 0:
            raise ConfigError(f"{where}.lm_order_from_train must be >= 0, got {self.lm_order_from_train}")
        from ..audio.augment import check_speed_factor

        for factor in self.speed_perturb:
            check_speed_factor(factor, f"{where}.speed_perturb")

    def datasets(self) -> tuple[Any, Any]:
        train, dev = super().datasets()
        if self.speed_perturb or self.edge_augment.copies:
            import datasets

            from ..audio.augment import edge_augment_data, speed_perturb_data
            from ..audio.io import AudioLoader

            loaded = AudioLoader(self.audio)({"audio": list(train["audio"])})
            data = speed_perturb_data({"audio": loaded["audio"], "text": list(train["text"])}, self.speed_perturb,
                                      self.audio.sample_rate, device=self.audio.device)
            data = edge_augment_data(data, self.edge_augment, self.audio.sample_rate)
            train = datasets.Dataset.from_dict(data)
        return train, dev

    @property
    def feature_config(self) -> MFCCConfig | LogMelConfig:
        return self.mfcc if self.features == "mfcc" else self.log_mel

    def read(self, path: str, limit: int | None = None):
        """A TSV of audio paths and transcripts → Dataset with ``audio`` (absolute paths) and ``text``."""
        import datasets

        from ..data.paths import resolve_path
        from ..data.readers import read_tsv

        resolved = resolve_path(path, what="speech data file")
        ds = read_tsv(resolved)
        for column in (self.data.audio_column, self.data.text_column):
            if column not in ds.column_names:
                raise ConfigError(
                    f"data: {path!r} has no column {column!r} (columns: {ds.column_names}); "
                    "set data.audio_column / data.text_column"
                )
        root = resolve_path(self.data.root, what="audio root") if self.data.root else resolved.parent
        rows = ds.to_dict()
        files = rows[self.data.audio_column]
        if limit is not None:
            files = files[:limit]
        audio = [str(p if Path(p).is_absolute() else root / p) for p in files]
        return datasets.Dataset.from_dict({"audio": audio, "text": rows[self.data.text_column][: len(audio)]})

    def model_config(self, transcripts: Sequence[str]) -> SpeechConfig:
        """The model settings completed from the training transcripts (labels, word list, LM)."""
        model = self.model
        if not model.tokens:
            model = dataclasses.replace(model, tokens=collect_tokens(transcripts, model.unit, model.lowercase))
        decoder = model.decoder
        if self.word_list_from_train and decoder.word_list is None:
            words = sorted({w for t in transcripts for w in normalize_transcript(t, model.lowercase).split()})
            decoder = dataclasses.replace(decoder, word_list=words)
        if self.lm_order_from_train and decoder.lm_arpa is None and decoder.lm_path is None:
            lm = NGramLM.fit([normalize_transcript(t, model.lowercase) for t in transcripts], order=self.lm_order_from_train)
            decoder = dataclasses.replace(decoder, lm_arpa=lm.to_arpa())
        return dataclasses.replace(model, decoder=decoder)

    def build(self, transcripts: Sequence[str] | None = None):
        """The untrained pipeline: audio_loader → mfcc/log_mel → SpeechModel (labels from ``transcripts``, default the training TSV)."""
        from ..audio.features import MFCC, LogMel
        from ..audio.io import AudioLoader
        from ..pipeline import Pipeline

        if transcripts is None:
            transcripts = list(self.read(self.data.train, self.data.limit_train)["text"])
        feature = self.feature_config
        if feature.device == "auto" and self.device != "auto":
            feature = dataclasses.replace(feature, device=self.device)  # features on the pipeline's device
        stage = MFCC(feature) if self.features == "mfcc" else LogMel(feature)
        return Pipeline([AudioLoader(self.audio), stage], SpeechModel, self.model_config(transcripts), device=self.device)
