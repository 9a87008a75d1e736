"""Machine translation (many-to-many): subwords → attentional encoder–decoder → beam search.

The network is ``seqlab.nn.seq2seq.Seq2Seq`` (bidirectional GRU/LSTM encoder, Bahdanau or
Luong attention, optional input feeding, label smoothing, tied/shared embeddings), decoded
by ``seqlab.nn.decoding`` (greedy or beam search with length normalisation). Text is cut
into subwords by sentencepiece (Kudo & Richardson 2018) — by default one *joint* model
fitted on the source and target training text together, so that one vocabulary (and, with
``share_embeddings``, one embedding matrix) serves both sides (Sennrich et al. 2016).

Who does what:

- the pipeline's stages are two ``SentencePieceTokenizer``s, both fitted in ``Pipeline.fit``:
  one on ``text`` (the source ``input_ids``, at training and prediction time) and one on
  ``target`` (``target_ids``, training only). A joint vocabulary is the same model fitted on
  both columns (fitted once: the second stage finds it in the tokenizer's cache);
- the model keeps the target vocabulary (its pieces) in its config, so that a saved model
  turns ids back into text on its own, as a classifier keeps its label names; a loaded
  pipeline has both stages, so it can be trained further (``fit`` on new pairs, ``--resume``);
- ``metrics`` is detokenised sacreBLEU (and chrF) against the raw target text.

Limits a user can meet: an empty source is an ``InputError``; a source longer than
``max_source_tokens`` subwords is cut to that length with a ``UserWarning``; characters the
subword model never saw become ``<unk>`` (``subwords.byte_fallback`` spells them as bytes
instead); a beam size outside [1, ``MAX_BEAM_SIZE``] is a ``ConfigError`` (config) or an ``InputError``
(call), and so is a longest output above ``MAX_DECODE_LENGTH`` tokens.
"""
from __future__ import annotations

import dataclasses
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ..core.errors import ConfigError, DataError, InputError
from ..core.options import MAX_BEAM_SIZE, MAX_DECODE_LENGTH, Option, Options, check_cap
from ..core.task import TaskModel
from ..nn.decoding import LENGTH_PENALTIES
from ..nn.seq2seq import Seq2Seq, Seq2SeqConfig
from ..train.config import TrainConfig

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
#: What sentencepiece prints for ``<unk>`` when it decodes.
UNK_SURFACE = " \u2047 "


def pieces_to_text(pieces: list[str]) -> str:
    """Sentencepiece pieces → text, as ``SentencePieceProcessor.decode`` does.

    ``▁`` is a space (the first one, sentencepiece's dummy prefix, is dropped), byte pieces
    ``<0xNN>`` are joined and read as UTF-8, ``<unk>`` prints as `` ⁇ `` and the other
    specials are dropped.

    >>> pieces_to_text(["▁Ein", "▁Mann", "▁fährt", "▁Fahr", "rad", "."])
    'Ein Mann fährt Fahrrad.'
    >>> pieces_to_text(["▁caf", "<0xC3>", "<0xA9>", "<eos>"])
    'café'
    """
    out: list[str] = []
    pending = bytearray()
    first = True
    for piece in pieces:
        byte = _BYTE_PIECE.fullmatch(piece)
        if byte:
            pending.append(int(byte.group(1), 16))
            first = False
            continue
        if pending:
            out.append(pending.decode("utf-8", errors="replace"))
            pending.clear()
        if piece in (PAD, BOS, EOS):
            continue
        if piece == UNK:
            out.append(UNK_SURFACE)
            first = False
            continue
        text = piece.replace("\u2581", " ")
        if first and text.startswith(" "):
            text = text[1:]
        first = False
        out.append(text)
    if pending:
        out.append(pending.decode("utf-8", errors="replace"))
    return "".join(out)


# -- model ------------------------------------------------------------------------------------
@dataclass
class TranslationConfig(Seq2SeqConfig):
    """Network (``Seq2SeqConfig``) + decoding settings; the vocabularies come from the subword models."""

    tie_embeddings: bool = True
    share_embeddings: bool = True
    #: Beam width for ``decode``/``evaluate`` (1: greedy). ``pipe(x, beam_size=k)`` overrides it per call.
    beam_size: int = 5
    length_penalty: Literal["gnmt", "mean", "none"] = "gnmt"
    length_alpha: float = 0.6
    #: Longest output: ``floor(max_len_a * source_tokens + max_len_b)`` subword tokens.
    max_len_a: float = 1.5
    max_len_b: int = 10
    #: Longer sources are cut to this many subword tokens (with a warning at prediction time).
    max_source_tokens: int = 256
    #: Longer training targets are cut to this many subword tokens.
    max_target_tokens: int = 256
    #: Subword regularisation (Kudo 2018): each epoch cuts every training sentence, source and
    #: target, anew with a segmentation drawn from the subword model (unigram: smoothing alpha,
    #: typical 0.1–0.5, smaller is noisier; BPE: merge-dropout probability). 0: the best cut, fixed.
    #: Prediction always uses the best cut.
    subword_sampling: float = 0.0
    #: The target subword vocabulary, in id order (filled in when the model is built).
    target_pieces: list[str] = field(default_factory=list)
    #: The source vocabulary when it differs from the target one (empty: one joint vocabulary).
    source_pieces: list[str] = field(default_factory=list)

    def validate(self, where: str = "model") -> None:
        super().validate(where)
        if isinstance(self.beam_size, bool) or self.beam_size < 1:
            raise ConfigError(f"{where}.beam_size must be >= 1 (1 is greedy search), got {self.beam_size}")
        if self.length_penalty not in LENGTH_PENALTIES:
            raise ConfigError(f"{where}.length_penalty must be one of {', '.join(LENGTH_PENALTIES)}")
        if self.length_alpha < 0 or self.max_len_a < 0 or self.max_len_b < 0:
            raise ConfigError(f"{where}: length_alpha, max_len_a and max_len_b must be >= 0")
        if self.max_source_tokens < 1 or self.max_target_tokens < 1:
            raise ConfigError(f"{where}: max_source_tokens and max_target_tokens must be >= 1")
        if not 0.0 <= self.subword_sampling <= 1.0:
            raise ConfigError(f"{where}.subword_sampling must be in [0, 1] (0: off), got {self.subword_sampling}")
        check_cap(where, "beam_size", self.beam_size, MAX_BEAM_SIZE)
        for name in ("max_source_tokens", "max_target_tokens", "max_len_b"):
            check_cap(where, name, getattr(self, name), MAX_DECODE_LENGTH)
        longest = self.max_len_a * self.max_source_tokens + self.max_len_b
        if longest > MAX_DECODE_LENGTH:
            raise ConfigError(
                f"{where}: max_len_a * max_source_tokens + max_len_b = {longest:g} output tokens is above the limit "
                f"of {MAX_DECODE_LENGTH:,} (see docs/errors.md, 'Limits'); lower max_len_a or max_source_tokens"
            )


def _pad_ids(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    out = torch.full((len(rows), max(int(lengths.max()), 1) if rows else 1), pad, dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out, lengths


class TranslationModel(TaskModel):
    """Subword ids in, text out: ``decode`` gives a string per sentence (or a dict with attention).

    >>> pieces = ["<pad>", "<unk>", "<bos>", "<eos>", "▁ein", "▁Hund", "▁a", "▁dog"]
    >>> cfg = TranslationConfig(embedding_dim=8, encoder_hidden=4, decoder_hidden=8, attention_dim=8,
    ...                         source_vocab_size=8, target_vocab_size=8, target_pieces=pieces, beam_size=2)
    >>> model = TranslationModel(cfg).eval()
    >>> out = model.decode({"input_ids": torch.tensor([[6, 7]]), "input_ids_lengths": torch.tensor([2])},
    ...                    model.parse_options({"return_attention": True}))
    >>> sorted(out[0]), out[0]["source_pieces"]
    (['attention', 'score', 'source_pieces', 'target_pieces', 'text'], ['▁a', '▁dog'])
    """

    task = "translation"
    Config = TranslationConfig
    input_column = "text"
    target_columns = ("target",)
    selection_metric = "bleu"
    selection_mode = "max"
    options = {
        "beam_size": Option(int, doc="beam width (1: greedy search)", low=1, high=MAX_BEAM_SIZE, from_config="beam_size"),
        "return_attention": Option(bool, False, "return a dict with the attention matrix and the pieces, not just the text"),
    }

    def __init__(self, config: TranslationConfig) -> None:
        super().__init__(config)
        if len(config.target_pieces) != config.target_vocab_size or (
            config.source_pieces and len(config.source_pieces) != config.source_vocab_size
        ):
            raise ConfigError(
                f"translation model: the vocabularies do not match their sizes (target {len(config.target_pieces)} "
                f"pieces for target_vocab_size {config.target_vocab_size}); build the model with Pipeline.fit "
                "or translation_pipeline"
            )
        self.net = Seq2Seq(config)
        #: The fitted (source, target) subword stages, for ``subword_sampling`` (``attach_stages``).
        self._subwords: tuple[Any, Any] | None = None

    # -- building -----------------------------------------------------------------------
    @staticmethod
    def subword_stages(stages: list) -> tuple[Any, Any]:
        """The pipeline's sentencepiece stages on ``text`` and on ``target`` (the source one for both
        in a pipeline saved before the target side was a stage)."""
        from ..text.sentencepiece import SentencePieceTokenizer

        pieces = [s for s in stages if isinstance(s, SentencePieceTokenizer)]
        source = next((s for s in pieces if s.config.input == "text"), None)
        target = next((s for s in pieces if s.config.input == "target"), source)
        if source is None:
            raise ConfigError("the translation pipeline needs a sentencepiece stage with input 'text'")
        return source, target

    @classmethod
    def configure(cls, config: TranslationConfig, stages: list) -> TranslationConfig:
        """The vocabularies from the fitted subword stages (one joint model, or one per side)."""
        source, target = cls.subword_stages(stages)
        joint = target is source or target.model_proto == source.model_proto
        if config.share_embeddings and not joint:
            raise ConfigError(
                "model.share_embeddings needs one joint subword vocabulary for source and target; "
                "set subwords.joint: true or model.share_embeddings: false"
            )
        return dataclasses.replace(
            config, source_vocab_size=source.vocab_size, target_vocab_size=target.vocab_size,
            target_pieces=target.pieces, source_pieces=[] if joint else source.pieces,
        )

    def attach_stages(self, stages: list) -> None:
        self._subwords = self.subword_stages(stages)

    # -- data ---------------------------------------------------------------------------
    def sampled_ids(self, columns: dict[str, list], seed: int) -> tuple[list, list]:
        """``input_ids`` and ``target_ids`` of the raw ``text``/``target`` columns, cut by drawn
        segmentations (``subword_sampling``); ``seed`` fixes the draws (the Trainer gives seed + epoch)."""
        if self._subwords is None:
            raise DataError("model.subword_sampling needs the pipeline's subword stages; train through Pipeline.fit")
        missing = [c for c in ("text", "target") if c not in columns]
        if missing:
            raise DataError(f"model.subword_sampling re-cuts the raw text each epoch, but the training data has no "
                            f"{missing} column (has {sorted(columns)})")
        alpha = self.config.subword_sampling
        source, target = self._subwords
        # Distinct draws for the two sides even when one joint model cuts both.
        return source.encode_sampled(columns["text"], alpha, 2 * seed), target.encode_sampled(columns["target"], alpha, 2 * seed + 1)

    def pad_values(self, training: bool) -> dict[str, Any]:
        pads: dict[str, Any] = {"input_ids": self.config.pad_id}
        if training:
            pads["target_ids"] = self.config.pad_id
        return pads

    def train_batches(self, columns: dict[str, list], config: TrainConfig, epoch: int) -> list[dict[str, torch.Tensor]]:
        """Length-bucketed batches of ``input_ids`` and ``target_ids``, each cut to its ``max_*_tokens``.

        Pairs with an empty source are left out; ``max_tokens`` caps padded tokens. With
        ``subword_sampling`` the ids are those of :meth:`sampled_ids`, drawn anew each epoch.
        """
        from ..data.collate import bucket_batches

        for name in ("input_ids", "target_ids"):
            if name not in columns:
                raise DataError(f"the training data has no {name!r} column (has {sorted(columns)}); "
                                "the pipeline's subword stages write it")
        c = self.config
        sources, targets = columns["input_ids"], columns["target_ids"]
        if c.subword_sampling > 0:
            sources, targets = self.sampled_ids(columns, config.seed + epoch)
        pairs = [(list(s[: c.max_source_tokens]), list(t[: c.max_target_tokens])) for s, t in zip(sources, targets)]
        keep = [i for i, (s, _) in enumerate(pairs) if s]
        if not keep:
            raise DataError("every training source is empty after subword tokenization")
        lengths = [max(len(pairs[i][0]), len(pairs[i][1]) + 1) for i in keep]
        order = bucket_batches(lengths, config.batch_size, shuffle=True, seed=config.seed + epoch,
                               bucket_factor=config.bucket_factor, max_tokens=config.max_tokens)
        batches = []
        for positions in order:
            rows = [pairs[keep[p]] for p in positions]
            src, src_len = _pad_ids([r[0] for r in rows], c.pad_id)
            tgt, tgt_len = _pad_ids([r[1] for r in rows], c.pad_id)
            batches.append({"input_ids": src, "input_ids_lengths": src_len, "target_ids": tgt, "target_ids_lengths": tgt_len})
        return batches

    # -- training and decoding ----------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net.loss(batch["input_ids"], batch["input_ids_lengths"], batch["target_ids"], batch["target_ids_lengths"])

    def target_text(self, ids: list[int]) -> str:
        pieces = self.config.target_pieces
        return pieces_to_text([pieces[i] for i in ids])

    def source_pieces(self, ids: list[int]) -> list[str]:
        pieces = self.config.source_pieces or self.config.target_pieces
        return [pieces[i] for i in ids]

    @torch.no_grad()
    def decode(self, batch: dict[str, Any], options: Options) -> list[Any]:
        c = self.config
        raw = batch.get("_raw") or {}
        beam_size, with_attention = options.beam_size, options.return_attention
        ids, lengths = batch["input_ids"], batch["input_ids_lengths"]
        texts = raw.get("text") or [None] * len(lengths)
        lengths_list = lengths.tolist()
        for i, n in enumerate(lengths_list):
            if n == 0:
                raise InputError(f"input {texts[i]!r:.60}: no subword tokens remain after normalisation; give some text")
        too_long = [i for i, n in enumerate(lengths_list) if n > c.max_source_tokens]
        if too_long:
            warnings.warn(
                f"{len(too_long)} source sentence(s) longer than max_source_tokens={c.max_source_tokens} subword "
                f"tokens were cut to that length (first: {texts[too_long[0]]!r:.60}, {lengths_list[too_long[0]]} tokens)",
                UserWarning, stacklevel=2,
            )
            ids, lengths = ids[:, : c.max_source_tokens], lengths.clamp(max=c.max_source_tokens)
        hyps = self.net.translate(ids, lengths, beam_size=beam_size, max_len_a=c.max_len_a, max_len_b=c.max_len_b,
                                  length_penalty=c.length_penalty, length_alpha=c.length_alpha)
        outputs: list[Any] = []
        ids_cpu = ids.cpu()
        for row, hyp in enumerate(hyps):
            text = self.target_text(hyp.tokens)
            if not with_attention:
                outputs.append(text)
                continue
            n = int(lengths[row])
            outputs.append({
                "text": text,
                "source_pieces": self.source_pieces(ids_cpu[row, :n].tolist()),
                "target_pieces": [c.target_pieces[i] for i in hyp.tokens],
                "attention": [[round(float(w), 6) for w in r] for r in hyp.attention.tolist()],
                "score": hyp.score,
            })
        return outputs

    def metrics(self, outputs: list[Any], references: dict[str, list]) -> dict[str, float]:
        """Detokenised corpus sacreBLEU and chrF (0–100) of the outputs against the raw ``target`` text."""
        from ..metrics.translation import bleu, chrf

        hypotheses = [o["text"] if isinstance(o, dict) else o for o in outputs]
        refs = [str(r) for r in references["target"]]
        return {"bleu": bleu(refs, hypotheses).score, "chrf": chrf(refs, hypotheses).score}

    # -- presenting -----------------------------------------------------------------------------
    def format_output(self, output: Any) -> str:
        """The translation; ``(empty translation)`` when the model ended at once.

        >>> TranslationModel.format_output(None, {"text": "Ein Hund.", "attention": []})
        'Ein Hund.'
        """
        text = output.get("text") if isinstance(output, dict) else output
        if not isinstance(text, str):
            return TaskModel.format_output(self, output)
        return text if text.strip() else "(empty translation)"


#: The GNMT length-penalty weights ``choose_length_penalty`` tries by default: 0 to 2 in steps of 0.2.
LENGTH_ALPHAS = tuple(round(0.2 * i, 1) for i in range(11))


def choose_length_penalty(pipe: Any, sources: list[str], references: list[str], alphas: Any = LENGTH_ALPHAS,
                          beam_size: int | None = None, batch_size: int = 64) -> list[dict[str, float]]:
    """Pick the beam's GNMT length-penalty weight on a dev set, and set it in ``pipe``'s model.

    Each ``alpha`` in ``alphas`` decodes ``sources`` with the beam (``beam_size``, default the
    model's) and scores detokenised corpus BLEU against ``references``; the weight of the
    highest BLEU (the first one on a tie) becomes ``length_penalty: gnmt`` and ``length_alpha``
    of the model's config, so a later ``pipe.save`` keeps it. Returns one row per weight:
    ``{"length_alpha", "bleu", "length_ratio"}`` (hypothesis / reference length, sacrebleu's
    tokens). The dev BLEU at the chosen weight is optimistic by the choice itself: report it
    beside the BLEU of the weight fixed beforehand.
    """
    from ..metrics.translation import bleu
    from ..nn.decoding import check_length_penalty

    alphas = [float(a) for a in alphas]
    if not alphas:
        raise ConfigError("choose_length_penalty needs at least one length_alpha to try")
    for alpha in alphas:
        check_length_penalty("gnmt", alpha)
    if len(sources) != len(references) or not sources:
        raise DataError(f"choose_length_penalty needs as many references as sources, and some: "
                        f"got {len(sources)} sources and {len(references)} references")
    config = pipe.model.config
    beam_size = beam_size or max(config.beam_size, 1)
    rows = []
    for alpha in alphas:
        config.length_penalty, config.length_alpha = "gnmt", alpha
        score = bleu(references, pipe.predict(sources, beam_size=beam_size, batch_size=batch_size))
        rows.append({"length_alpha": alpha, "bleu": score.score, "length_ratio": score.length_ratio})
    config.length_alpha = max(rows, key=lambda r: r["bleu"])["length_alpha"]  # max keeps the first of equals
    return rows


def save_attention_png(prediction: dict[str, Any], path: str | Path) -> Path:
    """Draw one prediction's attention matrix (target pieces × source pieces) as a PNG.

    ``prediction`` is what ``pipe(text, return_attention=True)`` returns.
    """
    if not isinstance(prediction, dict) or "attention" not in prediction:
        raise InputError("save_attention_png needs a prediction made with return_attention=True (a dict with 'attention')")
    from matplotlib.figure import Figure

    source, target = prediction["source_pieces"], prediction["target_pieces"]
    matrix = prediction["attention"]
    if not target:  # an empty translation: nothing to draw but the axes
        matrix = [[0.0] * len(source)]
        target = ["(empty)"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width = min(2.0 + 0.45 * len(source), 30.0)
    height = min(1.5 + 0.4 * len(target), 30.0)
    # A Figure without pyplot uses the Agg canvas: no display, no global backend switch.
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), labels=source, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(target)), labels=target, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    ax.set_title(prediction.get("text", "")[:80], fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


# -- subwords and pipeline -------------------------------------------------------------------
@dataclass
class SubwordConfig:
    """The sentencepiece model(s) fitted on the training text."""

    #: One model on source + target text (a shared vocabulary), or one per language.
    joint: bool = True
    model_type: Literal["unigram", "bpe"] = "unigram"
    vocab_size: int = 8000
    character_coverage: float = 1.0
    #: Spell characters unseen in training as UTF-8 byte pieces instead of ``<unk>``.
    byte_fallback: bool = False
    #: ``false`` lets a unigram model stay below ``vocab_size`` on a small corpus.
    hard_vocab_limit: bool = True
    #: Fit on a random sample of this many sentences (0: all).
    input_sentence_size: int = 0
    seed: int = 0

    def stage_config(self, column: str, output: str):
        from ..text.sentencepiece import SentencePieceConfig

        return SentencePieceConfig(
            input=column, output=output, model_type=self.model_type, vocab_size=self.vocab_size,
            character_coverage=self.character_coverage, byte_fallback=self.byte_fallback,
            hard_vocab_limit=self.hard_vocab_limit, input_sentence_size=self.input_sentence_size, seed=self.seed,
        )


def subword_stages(subwords: SubwordConfig | None = None) -> list:
    """The (unfitted) subword stages of a translation pipeline: source ``text`` → ``input_ids`` and,
    in training only, ``target`` → ``target_ids``. Joint: both fit one model on both columns."""
    from ..text.sentencepiece import SentencePieceTokenizer

    subwords = subwords or SubwordConfig()
    both = ["text", "target"] if subwords.joint else []
    source = SentencePieceTokenizer(dataclasses.replace(subwords.stage_config("text", "input_ids"), fit_columns=both))
    target = SentencePieceTokenizer(dataclasses.replace(
        subwords.stage_config("target", "target_ids"), fit_columns=both or ["target"], training_only=True))
    return [source, target]


def fit_subwords(train: Any, subwords: SubwordConfig | None = None):
    """The subword stages fitted on ``train`` (columns ``text`` and ``target``): (source, target).

    Joint: one model fitted on both columns, the same in both stages.
    """
    source, target = subword_stages(subwords)
    for name in ("text", "target"):
        try:
            train[name]
        except (KeyError, ValueError, TypeError):
            raise DataError(f"the data has no column {name!r}") from None
    return source.fit(train), target.fit(train)


def translation_pipeline(train: Any = None, subwords: SubwordConfig | dict | None = None,
                         model: TranslationConfig | dict | None = None, device: str = "auto"):
    """A translation ``Pipeline``: its subword stages, and the network; call ``fit`` to train it.

    With ``train``, the stages are fitted on it now and the (untrained) network is built, so
    that its size is known before training; without, ``fit`` does both.

    >>> train = {"text": ["a dog", "a cat", "two dogs"] * 5, "target": ["ein Hund", "eine Katze", "zwei Hunde"] * 5}
    >>> pipe = translation_pipeline(train, {"vocab_size": 30, "hard_vocab_limit": False},
    ...                             {"embedding_dim": 8, "encoder_hidden": 8, "decoder_hidden": 8, "attention_dim": 8})
    >>> _ = pipe.fit(train, train_config={"epochs": 1, "progress": "off"})
    >>> isinstance(pipe("a dog"), str), [s.config.input for s in pipe.stages]
    (True, ['text', 'target'])
    """
    from ..core.config import from_dict
    from ..pipeline import Pipeline

    if not isinstance(subwords, SubwordConfig):
        subwords = from_dict(SubwordConfig, dict(subwords or {}), where="subwords")
    if not isinstance(model, TranslationConfig):
        model = from_dict(TranslationConfig, dict(model or {}), where="model")
    if train is None:
        return Pipeline(subword_stages(subwords), TranslationModel, model, device=device)
    stages = list(fit_subwords(train, subwords))
    net = TranslationModel.from_stages(model, stages)
    return Pipeline(stages, TranslationModel, net.config, device=device, model=net)


# -- recipe -------------------------------------------------------------------------------
@dataclass
class TranslationData:
    """Line-aligned source and target files (``${SEQLAB_CORPORA}`` is expanded)."""

    train_source: str = "corpora/translation/train.en"
    train_target: str = "corpora/translation/train.de"
    dev_source: str | None = "corpora/translation/dev.en"
    dev_target: str | None = "corpora/translation/dev.de"
    #: Use only the first N training pairs (None: all).
    limit_train: int | None = None
    #: Drop pairs with an empty side instead of failing on them.
    skip_empty: bool = False


@dataclass
class TranslationRecipe:
    """``pipelines/translation.yaml`` maps onto this."""

    task: str = "translation"
    data: TranslationData = field(default_factory=TranslationData)
    subwords: SubwordConfig = field(default_factory=SubwordConfig)
    model: TranslationConfig = field(default_factory=TranslationConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=15, batch_size=64, lr=1e-3, clip_norm=1.0))
    output: str = "runs/translation"
    device: str = "auto"
    #: Sentences to translate after training, to show the model at work.
    examples: list[str] = field(default_factory=lambda: ["A man is riding a bicycle.", "Two dogs are playing in the snow."])

    def validate(self, where: str = "recipe") -> None:
        if not self.subwords.joint and self.model.share_embeddings:
            raise ConfigError(
                f"{where}: model.share_embeddings needs a joint vocabulary; set subwords.joint: true "
                "or model.share_embeddings: false"
            )
        if (self.data.dev_source is None) != (self.data.dev_target is None):
            raise ConfigError(f"{where}: give both data.dev_source and data.dev_target, or neither")

    def read(self, source: str, target: str, limit: int | None = None):
        """A pair of line-aligned files as a Dataset with columns ``text`` and ``target``."""
        from ..data.paths import resolve_path
        from ..data.readers import read_parallel

        ds = read_parallel(resolve_path(source), resolve_path(target), src_column="text", tgt_column="target",
                           skip_empty=self.data.skip_empty)
        if limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        return ds

    def datasets(self):
        train = self.read(self.data.train_source, self.data.train_target, self.data.limit_train)
        dev = self.read(self.data.dev_source, self.data.dev_target) if self.data.dev_source else None
        return train, dev

    def read_eval(self, *paths: str):
        """Data for ``seqlab eval MODEL_DIR SOURCE_FILE TARGET_FILE``."""
        if len(paths) != 2:
            raise ConfigError(
                f"translation evaluation needs two line-aligned files, SOURCE and TARGET (got {len(paths)}): "
                "seqlab eval MODEL_DIR val.en val.de"
            )
        return self.read(*paths)

    def build(self):
        """The pipeline: unfitted subword stages and the network's settings; ``Pipeline.fit`` fits both."""
        return translation_pipeline(None, self.subwords, self.model, device=self.device)
