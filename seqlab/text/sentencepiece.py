"""Subword tokenization with sentencepiece: BPE or the unigram language model.

Two segmentation models, both learned from raw (untokenized) text by
`sentencepiece <https://github.com/google/sentencepiece>`_ (Kudo & Richardson, 2018):

- **BPE** (Sennrich et al., 2016, "Neural Machine Translation of Rare Words with Subword
  Units"): start from characters, repeatedly merge the most frequent adjacent pair;
- **unigram** (Kudo, 2018, "Subword Regularization"): start from a large seed vocabulary
  and prune the pieces whose removal costs the unigram LM likelihood least; a text is
  segmented by Viterbi search for the most probable pieces.

White space is kept as the piece ``▁``, so ``decode(encode(text))`` gives the text back
(after the normalisation the model was trained with: NFKC and collapsing runs of white
space by default). Ids follow the seqlab convention — ``<pad>`` 0, ``<unk>`` 1, ``<bos>``
2, ``<eos>`` 3, then the user symbols, then the learned pieces.

Training reads the sentences from an in-memory iterator and writes the model into a
``bytes`` buffer, so no temporary file is left behind. The stage keeps only that
serialized model (plus its config), which makes it picklable for ``num_proc`` and
gives the ``datasets`` cache the same fingerprint in every process; the native processor
is rebuilt from the bytes on first use.
"""
from __future__ import annotations

import dataclasses
import io
import re
import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from seqlab.core.errors import ConfigError, DataError, InputError, ModelFileError
from seqlab.core.files import read_regular_bytes
from seqlab.core.serialization import atomic_write_bytes
from seqlab.core.stage import InputOutputStage

from .vocab import BOS, EOS, PAD, SPECIALS, UNK, column_rows

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

#: The last models fitted, by a hash of their training text and settings: the two stages of a
#: joint translation vocabulary (source and target side) fit the same model, and only once.
_FITTED: OrderedDict[str, bytes] = OrderedDict()
_FITTED_KEEP = 2

_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


@dataclasses.dataclass
class SentencePieceConfig:
    #: Column of raw text to train on and to encode.
    input: str = "text"
    #: Column written with the ids (or pieces).
    output: str = "input_ids"
    #: ``unigram`` (Kudo 2018) or ``bpe`` (Sennrich et al. 2016).
    model_type: Literal["unigram", "bpe"] = "unigram"
    #: Size of the vocabulary, the four specials and the user symbols included.
    vocab_size: int = 8000
    #: Fraction of the corpus characters the model must cover; rarer characters become ``<unk>``.
    character_coverage: float = 1.0
    #: Pieces kept whole whatever the data says (e.g. ``["<sep>", "<num>"]``); ids 4, 5, ….
    user_symbols: list[str] = dataclasses.field(default_factory=list)
    #: ``ids`` → lists of int; ``pieces`` → lists of str.
    output_type: Literal["ids", "pieces"] = "ids"
    #: Start every encoded text with ``<bos>`` / end it with ``<eos>``.
    add_bos: bool = False
    add_eos: bool = False
    #: Unicode normalisation applied before training and encoding (``*_cf``: also case-folds).
    normalization: Literal["nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf", "identity"] = "nmt_nfkc"
    #: Collapse runs of white space and strip both ends (as sentencepiece does by default).
    remove_extra_whitespaces: bool = True
    #: Spell uncovered characters as UTF-8 byte pieces instead of ``<unk>`` (lossless).
    byte_fallback: bool = False
    #: ``false``: ``vocab_size`` is an upper bound, not an exact target (unigram only).
    hard_vocab_limit: bool = True
    #: Sentences longer than this many bytes are skipped in training.
    max_sentence_length: int = 16384
    #: Train on a random sample of this many sentences (0: all of them).
    input_sentence_size: int = 0
    #: Seed of that sample and of sentencepiece's other random choices.
    seed: int = 0
    #: Training threads. 1 is deterministic by construction; the result also records this number.
    num_threads: int = 1
    #: Columns whose text the model is fitted on (empty: ``input`` alone). A joint translation
    #: vocabulary fits on ``[text, target]``.
    fit_columns: list[str] = dataclasses.field(default_factory=list)
    #: Encode a target column: the pipeline runs the stage in training only (no targets at prediction).
    training_only: bool = False

    def validate(self, where: str) -> None:
        reserved = len(SPECIALS) + len(self.user_symbols)
        if self.vocab_size <= reserved:
            raise ConfigError(
                f"{where}.vocab_size: {self.vocab_size} leaves no room for learned pieces after the "
                f"{len(SPECIALS)} specials and {len(self.user_symbols)} user symbols; use more than {reserved}"
            )
        if not 0.0 < self.character_coverage <= 1.0:
            raise ConfigError(f"{where}.character_coverage: must be in (0, 1], got {self.character_coverage}")
        for symbol in self.user_symbols:
            if not symbol or symbol in SPECIALS:
                raise ConfigError(f"{where}.user_symbols: {symbol!r} is empty or one of the specials {SPECIALS}")
        if len(set(self.user_symbols)) != len(self.user_symbols):
            raise ConfigError(f"{where}.user_symbols: a symbol is listed twice: {self.user_symbols}")
        if self.num_threads < 1 or self.max_sentence_length < 1 or self.input_sentence_size < 0:
            raise ConfigError(f"{where}: num_threads and max_sentence_length must be ≥ 1, input_sentence_size ≥ 0")
        if self.input == self.output:
            raise ConfigError(f"{where}: input and output are both {self.input!r}; give the output another name")
        if self.fit_columns and self.input not in self.fit_columns:
            raise ConfigError(f"{where}.fit_columns: {self.fit_columns} must include the input column {self.input!r}")


def _sentences(rows: Iterable[Any], column: str) -> Iterator[str]:
    for i, value in enumerate(rows):
        if not isinstance(value, str):
            raise DataError(
                f"SentencePieceTokenizer: row {i} of column {column!r} is {type(value).__name__} "
                f"{value!r:.60}, expected raw text"
            )
        # sentencepiece reads one sentence per line: an embedded newline would split it.
        text = value.replace("\n", " ").strip()
        if text:
            yield text


class SentencePieceTokenizer(InputOutputStage):
    """Learns a BPE or unigram subword model on a text column; text → ids or pieces.

    >>> corpus = {"text": ["the cat sat on the mat", "the dog sat on the log"] * 20}
    >>> sp = SentencePieceTokenizer(vocab_size=30, model_type="bpe").fit(corpus)
    >>> ids = sp({"text": ["the cat sat"]})["input_ids"][0]
    >>> sp.decode(ids)
    'the cat sat'
    >>> sp.pad_id, sp.unk_id, sp.bos_id, sp.eos_id, sp.id_to_piece(2)
    (0, 1, 2, 3, '<bos>')
    """

    kind = "sentencepiece"
    Config = SentencePieceConfig
    needs_fit = True
    FILE = "sentencepiece.model"

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.training_only = self.config.training_only
        self._model_proto: bytes | None = None
        self._processor = None

    # -- training ---------------------------------------------------------------------
    def _trainer_args(self) -> dict[str, Any]:
        cfg = self.config
        return dict(
            model_type=cfg.model_type,
            vocab_size=cfg.vocab_size,
            character_coverage=cfg.character_coverage,
            user_defined_symbols=list(cfg.user_symbols),
            normalization_rule_name=cfg.normalization,
            remove_extra_whitespaces=cfg.remove_extra_whitespaces,
            byte_fallback=cfg.byte_fallback,
            hard_vocab_limit=cfg.hard_vocab_limit,
            max_sentence_length=cfg.max_sentence_length,
            input_sentence_size=cfg.input_sentence_size,
            shuffle_input_sentence=True,
            num_threads=cfg.num_threads,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            pad_piece=PAD, unk_piece=UNK, bos_piece=BOS, eos_piece=EOS,
            minloglevel=2,  # sentencepiece's progress log goes to stderr; keep it quiet
        )

    def fit(self, data: Any) -> "SentencePieceTokenizer":
        import sentencepiece as spm

        columns = list(self.config.fit_columns) or [self.config.input]
        sentences = [s for c in columns for s in _sentences(column_rows(data, c, type(self).__name__), c)]
        if not sentences:
            named = f"column {columns[0]!r} holds" if len(columns) == 1 else f"columns {', '.join(map(repr, columns))} hold"
            raise DataError(f"SentencePieceTokenizer: {named} no text (every row is empty); train on a non-empty corpus")
        key = self._fit_key(sentences)
        if key in _FITTED:
            _FITTED.move_to_end(key)
            self._set_model(_FITTED[key])
            return self
        buffer = io.BytesIO()
        spm.set_random_generator_seed(self.config.seed)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences), model_writer=buffer, **self._trainer_args()
            )
        except RuntimeError as err:
            raise self._rephrase(err, len(sentences)) from None
        self._set_model(buffer.getvalue())
        _FITTED[key] = self._model_proto
        while len(_FITTED) > _FITTED_KEEP:
            _FITTED.popitem(last=False)
        return self

    def _fit_key(self, sentences: list[str]) -> str:
        digest = hashlib.sha256(repr((self.config.seed, sorted(self._trainer_args().items()))).encode())
        for sentence in sentences:
            digest.update(sentence.encode("utf-8", "surrogatepass") + b"\n")
        return digest.hexdigest()

    def _rephrase(self, err: RuntimeError, n_sentences: int) -> Exception:
        message = str(err)
        too_high = _TOO_HIGH.search(message)
        if too_high:
            asked, most = too_high.groups()
            hint = " or set hard_vocab_limit: false" if self.config.model_type == "unigram" else ""
            return ConfigError(
                f"SentencePieceTokenizer: vocab_size {asked} is larger than this corpus supports "
                f"({n_sentences} sentences allow at most {most} pieces with model_type "
                f"{self.config.model_type!r}); lower vocab_size to ≤ {most}{hint}, or train on more text"
            )
        too_small = _TOO_SMALL.search(message)
        if too_small:
            asked, needed = too_small.groups()
            return ConfigError(
                f"SentencePieceTokenizer: vocab_size {asked} is too small for the {needed} characters and "
                f"special pieces this corpus needs{' (byte_fallback adds 256 byte pieces)' if self.config.byte_fallback else ''}; "
                f"raise vocab_size above {needed} or lower character_coverage (now {self.config.character_coverage})"
            )
        return DataError(f"SentencePieceTokenizer: sentencepiece could not train on column "
                         f"{self.config.input!r} ({n_sentences} sentences): {message}")

    def _set_model(self, proto: bytes) -> None:
        self._model_proto = bytes(proto)
        self._processor = None
        self.fitted = True
        self.processor  # load now, so a corrupt model fails here and not in a worker

    @property
    def processor(self):
        """The native ``sentencepiece.SentencePieceProcessor`` (built lazily from the model bytes)."""
        if self._processor is None:
            if self._model_proto is None:
                from seqlab.core.errors import NotFittedError

                raise NotFittedError("SentencePieceTokenizer is used before fit(); fit it on training text first")
            import sentencepiece as spm

            processor = spm.SentencePieceProcessor()
            try:
                processor.LoadFromSerializedProto(self._model_proto)
            except RuntimeError as err:
                raise ModelFileError(f"the sentencepiece model is corrupt: {err}") from None
            self._processor = processor
        return self._processor

    @property
    def model_proto(self) -> bytes:
        """The serialized model (what ``save_state`` writes)."""
        return self._model_proto

    # -- vocabulary --------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def id_to_piece(self, index: int) -> str:
        if not 0 <= index < self.vocab_size:
            raise InputError(f"id {index} is outside the sentencepiece vocabulary (0 … {self.vocab_size - 1})")
        return self.processor.id_to_piece(int(index))

    def piece_to_id(self, piece: str) -> int:
        """The id of ``piece`` (``unk_id`` when it is not a piece)."""
        return self.processor.piece_to_id(piece)

    @property
    def pieces(self) -> list[str]:
        """Every piece, in id order."""
        sp = self.processor
        return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]

    # -- encoding ----------------------------------------------------------------------
    def encode(self, text: str | Sequence[str], output_type: str | None = None) -> list:
        """One text → ids (or pieces); a list of texts → a list of those."""
        kind = output_type or self.config.output_type
        if kind not in ("ids", "pieces"):
            raise ConfigError(f"output_type must be 'ids' or 'pieces', got {kind!r}")
        return self.processor.encode(
            text if isinstance(text, str) else list(text),
            out_type=int if kind == "ids" else str,
            add_bos=self.config.add_bos,
            add_eos=self.config.add_eos,
        )

    def encode_sampled(self, texts: Sequence[str], alpha: float, seed: int) -> list[list[int]]:
        """Ids of ``texts``, each cut by a segmentation *drawn at random* (subword regularisation).

        Unigram models (Kudo 2018) draw from every segmentation with probability ∝ P(x)^alpha
        (``nbest_size=-1``, forward-filtering backward-sampling): a smaller ``alpha`` spreads
        the draws further from the best cut. BPE models drop each merge with probability
        ``alpha`` (BPE-dropout, Provilkov et al. 2020). The same ``seed`` gives the same draws.
        ``<bos>``/``<eos>`` as :meth:`encode` adds them. sentencepiece's random seed is
        process-wide: this call sets it.
        """
        if not 0.0 < alpha <= 1.0:
            raise ConfigError(f"subword sampling alpha must be in (0, 1], got {alpha}")
        import sentencepiece as spm

        spm.set_random_generator_seed(int(seed))
        return self.processor.encode(
            list(texts), out_type=int, add_bos=self.config.add_bos, add_eos=self.config.add_eos,
            enable_sampling=True, alpha=float(alpha), nbest_size=-1,
            num_threads=1,  # one thread, one generator: the draws follow the seed (several threads share them out by timing)
        )

    def decode(self, ids: Sequence[int] | Sequence[str]) -> str:
        """Ids (or pieces) → text; ``<pad>``/``<bos>``/``<eos>`` are dropped."""
        ids = list(ids)
        if ids and isinstance(ids[0], str):
            return self.processor.decode_pieces(ids)
        ids = [int(i) for i in ids]
        size = self.vocab_size
        for i in ids:
            if not 0 <= i < size:
                raise InputError(f"id {i} is outside the sentencepiece vocabulary (0 … {size - 1})")
        return self.processor.decode(ids)

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        column = self.config.input
        texts = batch[column]
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(
                    f"SentencePieceTokenizer: row {i} of column {column!r} is {type(text).__name__} "
                    f"{text!r:.60}, expected a string"
                )
        return {self.config.output: self.encode(list(texts))}

    # -- persistence ---------------------------------------------------------------------
    def save_state(self, directory: Path) -> None:
        atomic_write_bytes(Path(directory) / self.FILE, self._model_proto)

    def load_state(self, directory: Path) -> None:
        path = Path(directory) / self.FILE
        if not path.is_file():
            raise ModelFileError(f"{str(path)!r} is missing: the sentencepiece model of this pipeline")
        self._set_model(read_regular_bytes(path))  # a regular file inside the model folder
        if self.processor.piece_to_id(PAD) != PAD_ID or self.processor.id_to_piece(EOS_ID) != EOS:
            raise ModelFileError(
                f"{str(path)!r} is not laid out as seqlab expects (<pad> 0, <unk> 1, <bos> 2, <eos> 3); "
                "was it trained elsewhere?"
            )

    # The native processor neither pickles nor hashes reproducibly; the model bytes do.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_processor"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
