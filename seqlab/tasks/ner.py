"""Named-entity recognition (many-to-many tagging): BiLSTM-CRF with character features.

The tagger of Lample et al. (2016), "Neural Architectures for Named Entity Recognition",
and Ma & Hovy (2016), "End-to-end Sequence Labeling via Bi-directional LSTM-CNNs-CRF":

    word i ──► [ word embedding (word2vec-initialised or random) ; char encoder(characters of word i) ]
           ──► dropout ──► BiLSTM ──► dropout ──► linear ──► emission scores P[i, tag]
           ──► linear-chain CRF (Lample eq. 1–2): s(y) = Σ A[y_{i-1}, y_i] + Σ P[i, y_i]

Training minimises ``-log p(gold tags | sentence)`` (``seqlab.nn.crf``); prediction is
Viterbi, constrained so that only sequences valid in the tagging scheme come out
(``seqlab.text.tagging.allowed_transitions``). ``decoder: softmax`` replaces the CRF by an
independent softmax per token (cross-entropy), the baseline both papers compare with.

- **Schemes.** Data may be IOB1, IOB2, IOBES or BILOU (``TagEncoder.scheme``); the model
  trains in IOBES by default (Lample et al.'s choice; Ratinov & Roth 2009 found it a little
  better than IOB), and outputs tags in ``output_scheme`` (IOB2) plus the spans themselves.
  Conversion goes through spans, so nothing is lost.
- **Characters.** The word's characters, *with* their case, go through a char-CNN (Ma &
  Hovy) or char-BiLSTM (Lample) (``seqlab.nn.charenc``) for all words of a batch at once.
  The *word* lookup may be lower-cased and have digits mapped to 0 (Lample's options), done
  by a fixed id → row map built from the case-sensitive vocabulary, so the vocabulary stage
  stays a plain ``VocabularyStage``.
- **Word dropout.** In training, each token's word id becomes ``<unk>`` with probability
  ``word_dropout`` (its characters are kept), so the ``<unk>`` row learns what unseen
  words look like. ``singleton_dropout`` is Lample et al.'s form: a token whose word
  (after lower-casing and digit mapping) occurs once in the training data becomes ``<unk>``
  with that probability (they use 0.5), so the tagger learns to find the rare names, which
  are most of the names a test set brings, from their characters and context.
- **Confidence.** A span's ``score`` is the mean over its tokens of the CRF marginal
  ``p(y_t = ŷ_t | sentence)`` (forward–backward), or of the softmax probability.
- **Inputs.** ``pipe("Angela Merkel visited Paris.")``: the pipeline's first stage,
  ``SentenceTokenizer`` (``seqlab.text.tagged``), tokenizes the string (``WordTokenizer``,
  ``split="punct"``) and keeps each token's offsets; a list of strings is *one pre-tokenized sentence* only inside
  ``pipe.predict([...])`` or as ``pipe({"tokens": [...]})`` — ``pipe([...])`` is a batch of
  raw texts. An empty sentence is an ``InputError``.
- **Document context** (``document_case_dim`` > 0, off by default). How each word is
  written elsewhere in its document (``seqlab.text.documents``: capitalised in running text,
  lower-case, both, neither; Chieu & Ng 2003's global case evidence) is embedded and joins
  the BiLSTM's input, so a headline's "JAPAN" or a sentence-initial word can borrow the case
  it has in the rest of the document. CoNLL files give documents (``-DOCSTART-``), so
  ``seqlab eval`` uses them; ``pipe.predict(sentences, document=0)`` tags a list of
  sentences as one document (``document=[...]``: an id per sentence). A sentence tagged
  alone reads "no document", which training shows the model ``document_dropout`` of the time.
- **Language-modelling loss** (``lm_loss`` > 0, off by default; Rei 2017,
  ``seqlab.nn.lm_objective``). In training only, the forward LSTM also predicts each next
  word and the backward LSTM each previous word (the ``lm_vocab`` most frequent training
  words), weighted by ``lm_loss``, so the encoder learns about its language from every
  token, not only from the entity ones. Prediction and the exported network never use it.
- **Long sentences** (more than ``chunk_length`` tokens) are tagged in chunks, split after
  sentence punctuation where possible, so memory stays bounded; training sentences that
  long are cut the same way (spans crossing a cut are closed at it).

Metrics: entity precision/recall/F1 (micro and per type) of seqeval's default mode via
``seqlab.metrics.entities``, on predictions and references both converted to IOB2 (so only
B-/I-/O tags, where seqeval's reading equals conlleval's), on a 0–100 scale.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..core.errors import ConfigError, DataError, InputError
from ..core.options import Option
from ..core.stage import Stage
from ..core.task import TaskModel
from ..data.collate import bucket_batches
from ..data.splits import FileRecipe, first_rows
from ..nn.charenc import CharTable, char_encoder, char_ids, check_char_sizes
from ..nn.dropout import Dropout, rows_seen_once, unk_dropout
from ..nn.lm_objective import BidirectionalLMObjective, frequent_rows
from ..nn.masking import lengths_to_mask
from ..nn.recurrent import PaddedBiRecurrentEncoder, RecurrentEncoder
from ..text import documents
from ..text.tagged import Sentence, SentenceTokenizer, TagEncoder, TagEncoderConfig, sentence_of, _sentence_error
from ..text.tagging import allowed_transitions, convert_tags, normalize_scheme, spans, tag_set, tags_from_spans
from ..text.vocab import SPECIALS, VocabularyStageConfig
from ..train.config import TrainConfig

# Sentence, SentenceTokenizer, TagEncoder(Config) live in seqlab.text.tagged; imported here for older code.
__all__ = ["NERConfig", "NERData", "NERModel", "NERRecipe", "Sentence", "SentenceTokenizer", "TagEncoder", "TagEncoderConfig"]

#: Tokens after which a long sentence is preferably cut into chunks.
_CUT_AFTER = frozenset({".", "!", "?", ";", "。"})


# -- the word encoder ------------------------------------------------------------------------
# -- the model ---------------------------------------------------------------------------------
@dataclass
class NERConfig:
    """Model settings (defaults: Ma & Hovy's BiLSTM-CNN-CRF). The last block comes from the fitted stages."""

    #: Word embedding size (equal to the word2vec dimension when vectors are used).
    embedding_dim: int = 100
    #: Lower-case words for the word lookup (the characters keep their case).
    lowercase: bool = False
    #: Map every digit to 0 for the word lookup ("1996" → "0000"; Lample et al.).
    normalize_numbers: bool = False
    #: Freeze pretrained word vectors instead of fine-tuning them.
    freeze_embeddings: bool = False
    #: Character features: ``cnn`` (Ma & Hovy), ``lstm`` (Lample et al.) or ``none``.
    char_encoder: Literal["cnn", "lstm", "none"] = "cnn"
    #: Character embedding size (null: 30 for cnn, 25 for lstm).
    char_embedding_dim: int | None = None
    #: Filters (cnn) or units per direction (lstm) (null: 30 / 25).
    char_hidden_size: int | None = None
    char_kernel: int = 3
    #: Longer words keep their first and last max_word_length/2 characters.
    max_word_length: int = 64
    #: BiLSTM units per direction, and layers.
    hidden_size: int = 200
    num_layers: int = 1
    #: Dropout on the characters' embeddings (cnn), the word representation and the BiLSTM output.
    dropout: float = 0.5
    #: Probability that a training token's word id becomes <unk>.
    word_dropout: float = 0.05
    #: Probability that a training token whose word occurs once in the training data becomes <unk>
    #: (Lample et al. 2016: 0.5); on top of ``word_dropout``.
    singleton_dropout: float = 0.0
    #: Size of the document-case feature (``seqlab.text.documents``): how each word is written
    #: elsewhere in its document, as one more input of the BiLSTM; 0: off.
    document_case_dim: int = 0
    #: Probability that a training sentence's document-case feature reads "no document", as a
    #: sentence tagged alone does (the model must also work without a document).
    document_dropout: float = 0.1
    #: Weight of Rei (2017)'s language-modelling auxiliary loss (``seqlab.nn.lm_objective``): in
    #: training, the forward LSTM also predicts each next word and the backward LSTM each
    #: previous word; prediction never uses it. 0: off (Rei: 0.1). Needs ``num_layers: 1``.
    lm_loss: float = 0.0
    #: The objective's vocabulary: the most frequent training words (the rest share one class).
    lm_vocab: int = 7500
    #: Units of the tanh layer between each LSTM direction and its word softmax.
    lm_hidden: int = 50
    decoder: Literal["crf", "softmax"] = "crf"
    #: CRF: forbid the transitions the scheme does not allow (I-PER after O in IOB2/IOBES …).
    constrained: bool = True
    #: Scheme of the tags in the output.
    output_scheme: str = "IOB2"
    #: Sentences longer than this many tokens are tagged (and trained) in chunks.
    chunk_length: int = 1000
    #: Filled in from the fitted stages by ``from_stages``.
    vocab_size: int = 0
    word_vocab_size: int = 0
    pad_id: int = 0
    unk_id: int = 1
    chars: str = ""
    tags: list[str] = field(default_factory=list)
    scheme: str = "IOBES"
    input_scheme: str = "IOB2"

    def validate(self, where: str = "model") -> None:
        for name in ("dropout", "word_dropout", "singleton_dropout", "document_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{where}.{name} must be in [0, 1), got {value}")
        for name in ("embedding_dim", "hidden_size", "num_layers", "char_kernel", "lm_vocab", "lm_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lm_loss >= 0.0:
            raise ConfigError(f"{where}.lm_loss must be >= 0 (0: off), got {self.lm_loss}")
        if self.lm_loss > 0 and self.num_layers != 1:
            raise ConfigError(
                f"{where}.lm_loss needs {where}.num_layers: 1 (got {self.num_layers}): in a stacked BiLSTM the upper "
                "forward layer reads the lower backward one, which has already seen the next word"
            )
        if self.document_case_dim < 0:
            raise ConfigError(f"{where}.document_case_dim must be >= 0 (0: off), got {self.document_case_dim}")
        check_char_sizes(where, self.char_embedding_dim, self.char_hidden_size)
        if self.max_word_length < 2:
            raise ConfigError(f"{where}.max_word_length must be >= 2, got {self.max_word_length}")
        if self.chunk_length < 2:
            raise ConfigError(f"{where}.chunk_length must be >= 2, got {self.chunk_length}")
        for name in ("output_scheme", "scheme", "input_scheme"):
            try:
                setattr(self, name, normalize_scheme(getattr(self, name)))
            except ConfigError as err:
                raise ConfigError(f"{where}.{name}: {err}") from None


def normalize_word(token: str, lowercase: bool, numbers: bool) -> str:
    """The form of ``token`` used for the word lookup (specials unchanged).

    >>> normalize_word("Paris-1996", True, True)
    'paris-0000'
    """
    if token in SPECIALS:
        return token
    if lowercase:
        token = token.lower()
    if numbers:
        token = "".join("0" if c.isdigit() else c for c in token)
    return token


class NERModel(TaskModel):
    """BiLSTM-CRF tagger; ``decode`` gives ``{"text", "tokens", "tags", "spans"}`` per sentence.

    >>> cfg = NERConfig(embedding_dim=4, hidden_size=3, char_hidden_size=2, char_embedding_dim=2,
    ...                 vocab_size=6, word_vocab_size=6, chars="AabB", tags=tag_set(["PER"], "IOBES"))
    >>> model = NERModel(cfg).eval()
    >>> batch = {"input_ids": torch.tensor([[4, 5]]), "input_ids_lengths": torch.tensor([2]),
    ...          "_raw": {"tokens": [["Ab", "ba"]]}}
    >>> out = model.decode(batch, model.parse_options({}))[0]
    >>> sorted(out), len(out["tags"])
    (['spans', 'tags', 'text', 'tokens'], 2)
    """

    task = "ner"
    Config = NERConfig
    input_column = "tokens"
    target_columns = ("tags",)
    selection_metric = "f1"
    selection_mode = "max"
    exportable = True
    #: Viterbi and the marginals run in Python on the exported emissions: they need the CRF.
    decoder_state = ("crf.",)
    #: Measured on a 2-core x86 CPU, one thread (BiLSTM 100 and 200 per direction, char-CNN, CRF):
    #: a call costs about as much as 30–50 padded tokens, a step as 1.3–1.7 rows.
    padded_batch_costs = (40.0, 1.5)
    options = {
        "document": Option(object, doc="document id(s) of the inputs: one for all (they form one document) or one per "
                           "input; read by models trained with document context (model.document_case_dim > 0)", column=True),
    }

    def __init__(self, config: NERConfig) -> None:
        super().__init__(config)
        if config.vocab_size < 5 or config.word_vocab_size < 5 or len(config.tags) < 2:
            raise ConfigError(
                f"NER model needs vocab_size >= 5 and >= 2 tags (got {config.vocab_size}, {config.tags}); "
                "build it with Pipeline.fit or NERModel.from_stages"
            )
        self.word_embedding = nn.Embedding(config.word_vocab_size, config.embedding_dim, padding_idx=config.pad_id)
        bound = math.sqrt(3.0 / config.embedding_dim)  # Ma & Hovy §3.1
        with torch.no_grad():
            self.word_embedding.weight.uniform_(-bound, bound)
            self.word_embedding.weight[config.pad_id].zero_()
        # Case-sensitive vocabulary id → row of the (optionally lower-cased / digit-normalised) table.
        self.register_buffer("word_map", torch.arange(config.vocab_size))
        self.char_table = CharTable(config.chars)
        features = config.embedding_dim
        if config.char_encoder != "none":
            self.char_encoder = char_encoder(
                config.char_encoder, len(self.char_table), config.char_embedding_dim, config.char_hidden_size,
                config.char_kernel, dropout=config.dropout if config.char_encoder == "cnn" else 0.0,
            )
            features += self.char_encoder.output_size
        else:
            self.char_encoder = None
        if config.document_case_dim > 0:
            self.document_case = nn.Embedding(documents.NUM_IDS, config.document_case_dim, padding_idx=documents.PAD)
            features += config.document_case_dim
        else:
            self.document_case = None
        self.dropout = Dropout(config.dropout)
        self.encoder = PaddedBiRecurrentEncoder(features, config.hidden_size, config.num_layers, cell="lstm", dropout=config.dropout)
        self.head = nn.Linear(self.encoder.output_size, len(config.tags))
        if config.lm_loss > 0:
            self.lm_objective = BidirectionalLMObjective(config.hidden_size, config.lm_vocab, config.lm_hidden)
        else:
            self.lm_objective = None
        if config.decoder == "crf":
            from ..nn.crf import CRF

            constraints = allowed_transitions(config.tags, config.scheme) if config.constrained else None
            self.crf = CRF(len(config.tags), constraints)
        else:
            self.crf = None
        self._tag_index = {t: i for i, t in enumerate(config.tags)}
        self._warned_empty = False
        #: Word rows seen once in the training data (``singleton_dropout``); set by ``train_batches``.
        self._singleton_rows: Tensor | None = None
        #: The language-modelling objective's class of each word row (``lm_loss``); set by ``train_batches``.
        self._lm_classes: Tensor | None = None

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def configure(cls, config: NERConfig, stages: list) -> NERConfig:
        vocab = next((s for s in stages if getattr(s, "vocab", None) is not None and "input_ids" in s.provides), None)
        tagger = next((s for s in stages if isinstance(s, TagEncoder)), None)
        if vocab is None or tagger is None:
            raise ConfigError("the NER pipeline needs a vocabulary stage (tokens → input_ids) and a tag_encoder stage")
        if vocab.config.add_bos or vocab.config.add_eos:
            raise ConfigError("the NER vocabulary stage must not add <bos>/<eos>: the tagger needs one id per token")
        tokens = vocab.vocab.tokens
        forms: dict[str, int] = {}
        rows = [forms.setdefault(normalize_word(t, config.lowercase, config.normalize_numbers), len(forms)) for t in tokens]
        # The character alphabet is that of the training words (with case), in code-point order.
        chars = "".join(sorted({c for t in tokens if t not in SPECIALS for c in t}))
        config = dataclasses.replace(
            config, vocab_size=len(tokens), word_vocab_size=len(forms), pad_id=vocab.vocab.pad_id,
            unk_id=vocab.vocab.unk_id, chars=chars, tags=list(tagger.tags), scheme=tagger.config.target,
            input_scheme=tagger.config.scheme,
        )
        config.validate()
        return config

    def initialize(self, stages: list) -> None:
        vocab = next(s for s in stages if getattr(s, "vocab", None) is not None and "input_ids" in s.provides)
        cfg = self.config
        forms: dict[str, int] = {}
        rows = [forms.setdefault(normalize_word(t, cfg.lowercase, cfg.normalize_numbers), len(forms)) for t in vocab.vocab.tokens]
        self.word_map.copy_(torch.tensor(rows, dtype=torch.long))
        pretrained = next((s for s in stages if hasattr(s, "embedding_matrix")), None)
        if pretrained is not None:
            from ..embeddings.word2vec import copy_into_embedding

            copy_into_embedding(self.word_embedding, pretrained.embedding_matrix(list(forms)), cfg.freeze_embeddings)

    # -- data -------------------------------------------------------------------------------
    def pad_values(self, training: bool) -> dict[str, Any]:
        pads: dict[str, Any] = {"input_ids": self.config.pad_id}
        if self.document_case is not None:
            pads["doc_case"] = documents.PAD
        if training:
            pads["tag_ids"] = 0
        return pads

    def check_input(self, value: Any, index: int) -> Any:
        """A raw text, a list of tokens, or ``{"tokens": [...]}`` / ``{"text": "..."}``; the
        ``sentence_tokenizer`` stage turns it into a ``Sentence``."""
        if isinstance(value, Mapping):
            keys = set(value) & {"tokens", "text"}
            if len(keys) != 1:
                raise InputError(f"input {index}: a dict input needs exactly one of 'tokens' or 'text', got keys {sorted(value)}")
            value = value[keys.pop()]
        if isinstance(value, str):
            if not value.strip():
                raise InputError(f"input {index}: the text is empty or only white space; give at least one word")
            return value
        if isinstance(value, (list, tuple)):
            if not value:
                raise InputError(f"input {index}: the sentence has no tokens; give at least one")
            return value  # its tokens are checked by the sentence_tokenizer stage
        raise InputError(
            f"input {index}: expected a text, a list of tokens or {{'tokens': [...]}}, got {type(value).__name__} {value!r:.60}"
        )

    def _chars(self, sentences: Sequence[Sequence[str]], device: torch.device) -> tuple[Tensor, Tensor]:
        words = [w for s in sentences for w in s]
        return char_ids(words, self.char_table, self.config.max_word_length, device)

    def _batch(self, ids: Sequence[Sequence[int]], tokens: Sequence[Sequence[str]], tags: Sequence[Sequence[int]] | None,
               device: torch.device, cases: Sequence[Sequence[int]] | None = None) -> dict[str, Tensor]:
        """Pad one batch of sentences (given as id lists, token lists, tag-id lists and document-case lists)."""
        lengths = [len(r) for r in ids]
        longest = max(lengths)
        padded = [list(r) + [self.config.pad_id] * (longest - len(r)) for r in ids]
        batch = {"input_ids": torch.tensor(padded, dtype=torch.long, device=device),
                 "input_ids_lengths": torch.tensor(lengths, dtype=torch.long, device=device)}
        if self.char_encoder is not None:
            batch["char_ids"], batch["char_lengths"] = self._chars(tokens, device)
        if tags is not None:
            batch["tag_ids"] = torch.tensor([list(r) + [0] * (longest - len(r)) for r in tags], dtype=torch.long, device=device)
        if self.document_case is not None:
            if cases is None:  # no document: as a sentence tagged alone
                cases = [[documents.NO_DOCUMENT] * n for n in lengths]
            batch["doc_case"] = torch.tensor([list(r) + [documents.PAD] * (longest - len(r)) for r in cases],
                                             dtype=torch.long, device=device)
        return batch

    def _segments(self, tokens: Sequence[str]) -> list[tuple[int, int]]:
        """Cut a sentence into chunks of at most ``chunk_length`` tokens, after punctuation where possible."""
        n, size = len(tokens), self.config.chunk_length
        if n <= size:
            return [(0, n)] if n else []
        out, start = [], 0
        while n - start > size:
            end = start + size
            for cut in range(end, start + size // 2, -1):
                if tokens[cut - 1] in _CUT_AFTER:
                    end = cut
                    break
            out.append((start, end))
            start = end
        out.append((start, n))
        return out

    # -- training ---------------------------------------------------------------------------
    def train_batches(self, columns: Mapping[str, list], config: TrainConfig, epoch: int) -> "_TrainBatches":
        """Length-bucketed batches; empty sentences skipped (with a warning), long ones chunked."""
        ids_col, tokens_col, tags_col = columns["input_ids"], columns["tokens"], columns["tag_ids"]
        cases_col = self._cases_column(columns) or [None] * len(ids_col)
        examples: list[tuple[list[int], list[str], list[int], list[int] | None]] = []
        empty = 0
        for i, (ids, tokens, tags, cases) in enumerate(zip(ids_col, tokens_col, tags_col, cases_col)):
            if len(ids) != len(tags) or len(ids) != len(tokens):
                raise DataError(f"training data sentence {i}: {len(tokens)} tokens but {len(tags)} tags")
            if not ids:
                empty += 1
                continue
            pieces = self._segments(tokens)
            if len(pieces) == 1:
                examples.append((ids, tokens, tags, cases))
                continue
            for start, end in pieces:
                # A span cut by the chunk boundary is closed there: re-encode the chunk's tags.
                names = [self.config.tags[t] for t in tags[start:end]]
                fixed = convert_tags(names, self.config.scheme, self.config.scheme)
                examples.append((ids[start:end], tokens[start:end], [self._tag_index[t] for t in fixed],
                                 None if cases is None else cases[start:end]))
        if empty and not self._warned_empty:
            warnings.warn(f"NER training data: skipped {empty} empty sentence(s) (no tokens)", stacklevel=2)
            self._warned_empty = True
        if not examples:
            raise DataError("the NER training data has no non-empty sentence")
        if self.config.singleton_dropout > 0:
            self._singleton_rows = self.singleton_rows(ids_col)
        if self.lm_objective is not None:
            self._lm_classes = self.lm_classes(ids_col)
        order = bucket_batches(
            [len(e[0]) for e in examples], config.batch_size, shuffle=True, seed=config.seed + epoch,
            bucket_factor=config.bucket_factor, max_tokens=config.max_tokens,
        )
        return _TrainBatches(self, examples, order)

    def _cases_column(self, columns: Mapping[str, list]) -> Sequence[Sequence[int]] | None:
        """The ``doc_case`` column when the model reads it, else None."""
        if self.document_case is None:
            return None
        if "doc_case" not in columns:
            raise DataError("this NER model reads document context (model.document_case_dim > 0), but the data has no "
                            "'doc_case' column: put a document_case stage (seqlab.text.documents) after the tokenizer")
        return columns["doc_case"]

    def singleton_rows(self, ids_col: Sequence[Sequence[int]]) -> Tensor:
        """A boolean per word row: does exactly one token of ``ids_col`` (training sentences as
        vocabulary ids) look that row up? ``<unk>`` and padding never count."""
        return rows_seen_once(self._word_rows(ids_col), self.config.word_vocab_size, self._never_rows).to(self.word_map.device)

    @property
    def _never_rows(self) -> tuple[int, int]:
        """The word rows that counts of training words skip: ``<pad>`` and ``<unk>``."""
        return (self.config.pad_id, self.config.unk_id)

    def _word_rows(self, ids_col: Sequence[Sequence[int]]) -> Tensor:
        """Every token's word row (on the CPU), for sentences given as vocabulary-id lists."""
        return self.word_map.cpu()[torch.tensor([i for row in ids_col for i in row], dtype=torch.long)]

    def lm_classes(self, ids_col: Sequence[Sequence[int]]) -> Tensor:
        """The language-modelling objective's class of each word row: the ``lm_vocab`` rows that
        ``ids_col`` (training sentences as vocabulary ids) looks up most, then *other*."""
        classes = frequent_rows(self._word_rows(ids_col), self.config.word_vocab_size, self.config.lm_vocab, self._never_rows)
        return classes.to(self.word_map.device)

    def emissions(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Tag scores ``(B, T, K)`` and the token mask ``(B, T)``."""
        outputs, mask = self._encode(batch)
        return self.head(outputs), mask

    def _encode(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The BiLSTM's outputs ``(B, T, 2H)`` after dropout, and the token mask ``(B, T)``."""
        ids, lengths = batch["input_ids"], batch["input_ids_lengths"]
        mask = lengths_to_mask(lengths.to(ids.device), ids.shape[1])
        if self.training and self.config.word_dropout > 0:
            ids = unk_dropout(ids, self.config.unk_id, self.config.word_dropout, mask)
        if self.training and self.config.singleton_dropout > 0 and self._singleton_rows is not None:
            rare = self._singleton_rows.to(ids.device)[self.word_map[ids]]
            ids = unk_dropout(ids, self.config.unk_id, self.config.singleton_dropout, rare & mask)
        x = self.word_embedding(self.word_map[ids])
        if self.char_encoder is not None:
            chars = self.char_encoder(batch["char_ids"], batch["char_lengths"])  # (words in the batch, D)
            if chars.shape[0] == ids.numel():  # no padding (one sentence, equal lengths): a reshape
                per_token = chars.view(ids.shape[0], ids.shape[1], chars.shape[-1])
            else:
                per_token = chars.new_zeros(ids.shape[0], ids.shape[1], chars.shape[-1])
                per_token[mask] = chars.to(per_token.dtype)  # row-major: the words in sentence order
            x = torch.cat([x, per_token.to(x.dtype)], dim=-1)
        if self.document_case is not None:
            cases = batch["doc_case"]
            if self.training and self.config.document_dropout > 0:
                alone = torch.rand(cases.shape[0], 1, device=cases.device) < self.config.document_dropout
                cases = torch.where(alone & mask, torch.full_like(cases, documents.NO_DOCUMENT), cases)
            x = torch.cat([x, self.document_case(cases).to(x.dtype)], dim=-1)
        outputs, _, _ = self.encoder(self.dropout(x), lengths)
        return self.dropout(outputs), mask

    # -- export: the emissions are the network; Viterbi stays in Python -----------------------
    def _network_names(self) -> tuple[str, ...]:
        chars = ("char_ids", "char_lengths") if self.char_encoder is not None else ()
        cases = ("doc_case",) if self.document_case is not None else ()
        return ("input_ids", "input_ids_lengths", *chars, *cases)

    def network_outputs(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """``{"emissions": (B, T, tags)}`` of ``input_ids``, ``input_ids_lengths`` (and ``char_ids``, ``char_lengths``, ``doc_case``)."""
        return {"emissions": self.emissions(inputs)[0]}

    def example_network_inputs(self, variant: int = 0) -> dict[str, Tensor]:
        tokens = [["Ab", "cd", "Efg", "h"], ["Ij", "k"]] if variant == 0 else \
            [["Lm", "n"], ["Op", "qr", "St", "u", "Vw", "xyz"], ["Z"]]
        generator = torch.Generator().manual_seed(variant)
        lengths = torch.tensor([len(t) for t in tokens])
        ids = torch.randint(4, max(self.config.vocab_size, 5), (len(tokens), int(lengths.max())), generator=generator)
        ids = ids.clamp(max=self.config.vocab_size - 1).masked_fill(~lengths_to_mask(lengths, ids.shape[1]), self.config.pad_id)
        inputs = {"input_ids": ids, "input_ids_lengths": lengths}
        if self.char_encoder is not None:
            inputs["char_ids"], inputs["char_lengths"] = self._chars(tokens, torch.device("cpu"))
        if self.document_case is not None:
            cases = torch.randint(documents.NO_DOCUMENT, documents.NUM_IDS, ids.shape, generator=generator)
            inputs["doc_case"] = cases.masked_fill(~lengths_to_mask(lengths, ids.shape[1]), documents.PAD)
        return inputs

    def network_axes(self) -> dict[str, dict[int, str]]:
        axes = {"input_ids": {0: "batch", 1: "time"}, "input_ids_lengths": {0: "batch"}, "emissions": {0: "batch", 1: "time"}}
        if self.char_encoder is not None:
            axes.update({"char_ids": {0: "words", 1: "chars"}, "char_lengths": {0: "words"}})
        if self.document_case is not None:
            axes["doc_case"] = {0: "batch", 1: "time"}
        return axes

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        outputs, mask = self._encode(batch)
        scores = self.head(outputs)
        tags = batch["tag_ids"]
        if self.crf is not None:
            loss = self.crf.nll(scores, tags, mask, reduction="mean")
        else:
            loss = nn.functional.cross_entropy(scores[mask].float(), tags[mask])
        if self.training and self.lm_objective is not None and self._lm_classes is not None:
            # The words as written (before word dropout), as classes of the objective's vocabulary.
            classes = self._lm_classes.to(outputs.device)[self.word_map[batch["input_ids"]]]
            loss = loss + self.config.lm_loss * self.lm_objective(outputs, classes, mask)
        return loss

    # -- decoding ---------------------------------------------------------------------------
    @torch.no_grad()
    def _tag_padded(self, batch: Mapping[str, Tensor], with_scores: bool) -> list[tuple[list[int], list[float] | None]]:
        """Tag indices (training scheme) and, optionally, per-token confidences of one padded batch."""
        scores = self.run_network({name: batch[name] for name in self._network_names()})["emissions"]
        mask = lengths_to_mask(batch["input_ids_lengths"].to(scores.device), scores.shape[1])
        if self.crf is not None:
            if with_scores:
                return list(zip(*self.crf.decode_with_confidence(scores, mask)))
            return [(p, None) for p in self.crf.decode(scores, mask)]
        lengths = batch["input_ids_lengths"].tolist()
        probs = scores.float().softmax(-1)
        paths = [row[:n] for row, n in zip(probs.argmax(-1).tolist(), lengths)]
        if not with_scores:
            return [(p, None) for p in paths]
        best = torch.tensor([p + [0] * (scores.shape[1] - len(p)) for p in paths], device=scores.device)
        confidences = probs.gather(2, best.unsqueeze(2)).squeeze(2).tolist()
        return [(p, c[:n]) for p, c, n in zip(paths, confidences, lengths)]

    @torch.no_grad()
    def _tag(self, ids: Sequence[Sequence[int]], tokens: Sequence[Sequence[str]], with_scores: bool,
             batch_size: int = 64, max_tokens: int = 32768,
             cases: Sequence[Sequence[int]] | None = None) -> list[tuple[list[int], list[float] | None]]:
        """``_tag_padded`` for sentences given as id lists (and document-case lists), of any length.

        Sentences are cut into chunks (``_segments``) and run in length-sorted sub-batches
        of at most ``max_tokens`` padded tokens, so memory is bounded for any input.
        """
        device = self.word_embedding.weight.device
        pieces = [(row, start, end) for row, toks in enumerate(tokens) for start, end in self._segments(toks)]
        pieces.sort(key=lambda p: p[2] - p[1])
        results: dict[tuple[int, int], tuple[list[int], list[float] | None]] = {}
        i = 0
        while i < len(pieces):
            longest = pieces[min(i + batch_size, len(pieces)) - 1][2] - pieces[min(i + batch_size, len(pieces)) - 1][1]
            count = max(1, min(batch_size, max_tokens // max(longest, 1)))
            group = pieces[i : i + count]
            i += count
            batch = self._batch([ids[r][s:e] for r, s, e in group], [tokens[r][s:e] for r, s, e in group], None, device,
                                None if cases is None else [cases[r][s:e] for r, s, e in group])
            for (r, s, _), result in zip(group, self._tag_padded(batch, with_scores)):
                results[(r, s)] = result
        out = []
        for row, toks in enumerate(tokens):
            tags: list[int] = []
            conf: list[float] | None = [] if with_scores else None
            for start, _ in self._segments(toks):
                path, c = results[(row, start)]
                tags += path
                if conf is not None:
                    conf += c
            out.append((tags, conf))
        return out

    def _output(self, tokens: Sequence[str], tag_ids: list[int], confidences: list[float]) -> dict[str, Any]:
        sentence = sentence_of(tokens)
        names = [self.config.tags[t] for t in tag_ids]
        found = spans(names, self.config.scheme)
        items = []
        for kind, start, end in found:
            char_start, char_end = sentence.offsets[start][0], sentence.offsets[end - 1][1]
            items.append({
                "text": sentence.text[char_start:char_end], "type": kind, "start": start, "end": end,
                "char_start": char_start, "char_end": char_end,
                "score": sum(confidences[start:end]) / (end - start),
            })
        return {"text": sentence.text, "tokens": list(sentence),
                "tags": tags_from_spans(found, len(names), self.config.output_scheme), "spans": items}

    @torch.no_grad()
    def decode(self, batch: dict[str, Any], options: Any = None) -> list[dict[str, Any]]:
        """``{"text", "tokens", "tags", "spans": [{"text", "type", "start", "end", "char_start", "char_end", "score"}]}``.

        ``start``/``end`` are token indices (end exclusive); ``char_start``/``char_end`` index ``text``.
        """
        tokens = batch["_raw"]["tokens"]
        lengths = batch["input_ids_lengths"]
        if int(lengths.max()) <= self.config.chunk_length:
            # The Pipeline's padded batch as it is; only the characters are added.
            padded = {"input_ids": batch["input_ids"], "input_ids_lengths": lengths}
            if self.char_encoder is not None:
                padded["char_ids"], padded["char_lengths"] = self._chars(tokens, batch["input_ids"].device)
            if self.document_case is not None:
                padded["doc_case"] = batch["doc_case"]
            tagged = self._tag_padded(padded, with_scores=True)
        else:  # a sentence longer than chunk_length: tag in chunks
            ids = [row[:n] for row, n in zip(batch["input_ids"].tolist(), lengths.tolist())]
            cases = None if self.document_case is None else [row[:n] for row, n in zip(batch["doc_case"].tolist(), lengths.tolist())]
            tagged = self._tag(ids, tokens, with_scores=True, batch_size=max(len(ids), 1), cases=cases)
        return [self._output(t, tags, conf) for t, (tags, conf) in zip(tokens, tagged)]

    # -- metrics ----------------------------------------------------------------------------
    def metrics_on_processed(self, processed: Mapping[str, list], references: Mapping[str, list], decode: Any = None,
                             device: Any = None, batch_size: int = 128) -> dict[str, float]:
        """Entity P/R/F1 on preprocessed data (Viterbi only: no confidences needed)."""
        was_training = self.training
        self.eval()
        try:
            tagged = self._tag(processed["input_ids"], processed["tokens"], with_scores=False, batch_size=batch_size,
                               cases=self._cases_column(processed))
        finally:
            self.train(was_training)
        predicted = [convert_tags([self.config.tags[t] for t in tags], self.config.scheme, "IOB2") for tags, _ in tagged]
        return self.entity_metrics(predicted, references["tags"], self.config.input_scheme)

    def check_references(self, references: Mapping[str, list], where: str = "dev example") -> None:
        """Every reference tag sequence must read in the input scheme, as ``metrics`` will read it."""
        for i, tags in enumerate(references["tags"]):
            try:
                convert_tags(list(tags), self.config.input_scheme, "IOB2")
            except DataError as err:
                raise DataError(f"{where} {i}: {err}") from None

    def metrics(self, outputs: list[dict[str, Any]], references: dict[str, list]) -> dict[str, float]:
        predicted = [convert_tags(o["tags"], self.config.output_scheme, "IOB2") for o in outputs]
        return self.entity_metrics(predicted, references["tags"], self.config.input_scheme)

    @staticmethod
    def entity_metrics(predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]], gold_scheme: str = "IOB2") -> dict[str, float]:
        """Entity P/R/F1 (0–100) of IOB2 ``predicted`` against ``gold`` tags in ``gold_scheme``, micro and per type."""
        from ..metrics.entities import entity_f1

        if len(predicted) != len(gold):
            raise DataError(f"{len(predicted)} predicted sentences but {len(gold)} reference sentences")
        references = []
        for i, (p, g) in enumerate(zip(predicted, gold)):
            if len(p) != len(g):
                raise DataError(f"evaluation data sentence {i}: {len(p)} tokens but {len(g)} reference tags")
            try:
                references.append(convert_tags(list(g), gold_scheme, "IOB2"))
            except DataError as err:
                raise _sentence_error(err, i, "evaluation data") from None
        result = entity_f1(references, [list(p) for p in predicted])
        metrics = {"f1": 100 * result.f1, "precision": 100 * result.precision, "recall": 100 * result.recall}
        for kind, s in result.per_type.items():
            metrics.update({f"f1_{kind}": 100 * s.f1, f"precision_{kind}": 100 * s.precision, f"recall_{kind}": 100 * s.recall})
        return metrics

    # -- presenting -----------------------------------------------------------------------------
    def format_output(self, output: Any) -> str:
        """The sentence with each entity marked inline as ``[text](TYPE score)``; ``(no entities)`` when none.

        >>> out = {"text": "Angela Merkel visited Paris.", "spans": [
        ...     {"text": "Angela Merkel", "type": "PER", "char_start": 0, "char_end": 13, "score": 0.981},
        ...     {"text": "Paris", "type": "LOC", "char_start": 22, "char_end": 27, "score": 0.999}]}
        >>> NERModel.format_output(None, out)
        '[Angela Merkel](PER 0.98) visited [Paris](LOC 1.00).'
        """
        if not isinstance(output, Mapping) or not isinstance(output.get("text"), str):
            return TaskModel.format_output(self, output)
        text, spans = output["text"], sorted(output.get("spans") or [], key=lambda s: s["char_start"])
        if not spans:
            return f"{text}  (no entities)"
        parts, position = [], 0
        for span in spans:
            start, end = span["char_start"], span["char_end"]
            parts.append(text[position:start])
            parts.append(f"[{text[start:end]}]({span['type']} {span['score']:.2f})")
            position = end
        parts.append(text[position:])
        return "".join(parts)


class _TrainBatches:
    """One epoch's batches, padded lazily (only one batch of tensors in memory at a time)."""

    def __init__(self, model: NERModel, examples: list, order: list[list[int]]) -> None:
        self.model, self.examples, self.order = model, examples, order

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        for indices in self.order:
            rows = [self.examples[i] for i in indices]
            # CPU tensors; the Trainer moves them to its device.
            cases = None if self.model.document_case is None else [r[3] for r in rows]
            yield self.model._batch([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], torch.device("cpu"), cases)


# -- recipe ------------------------------------------------------------------------------------
@dataclass
class NERData:
    """Where the tagged sentences are (CoNLL columns). ``-DOCSTART-`` lines give each sentence a
    ``document`` id (a file with fewer than two documents is read without), which models with
    document context read."""

    train: str = "corpora/ner/train.conll"
    dev: str | None = "corpora/ner/dev.conll"
    #: Scheme of the files' tags: IOB1, IOB2, IOBES or BILOU.
    scheme: str = "IOB2"
    token_column: int = 0
    #: The NER tag field (-1: the last, as in CoNLL-2003's ``token POS chunk NER``).
    tag_column: int = -1
    #: Use only the first N training sentences (None: all).
    limit_train: int | None = None

    def validate(self, where: str = "data") -> None:
        self.scheme = normalize_scheme(self.scheme)


@dataclass
class NERRecipe(FileRecipe):
    """``pipelines/ner.yaml`` maps onto this."""

    task: str = "ner"
    data: NERData = field(default_factory=NERData)
    #: The scheme the model is trained in.
    scheme: str = "IOBES"
    vocabulary: VocabularyStageConfig = field(default_factory=VocabularyStageConfig)
    #: Optional word2vec stage settings (``{dim: 100, ...}`` to train on the training text, or
    #: ``{pretrained: vectors.txt}``); None: word embeddings learned from scratch.
    word2vec: dict | None = None
    model: NERConfig = field(default_factory=NERConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=16, lr=1e-3, clip_norm=5.0, patience=8))
    output: str = "runs/ner"
    device: str = "auto"
    #: Sentences to tag after training, to show the model at work.
    examples: list[str] = field(default_factory=lambda: ["Angela Merkel visited Paris.", "The United Nations met in Geneva on Monday."])

    def validate(self, where: str = "recipe") -> None:
        self.scheme = normalize_scheme(self.scheme)
        if (self.vocabulary.input, self.vocabulary.output) != ("tokens", "input_ids"):
            raise ConfigError(f"{where}.vocabulary: the NER model reads tokens → input_ids; leave input/output at their defaults")

    def read(self, path: str, limit: int | None = None):
        """A CoNLL file as a Dataset with columns ``tokens`` and ``tags``."""
        from ..data.paths import resolve_path
        from ..data.readers import read_conll

        ds = read_conll(resolve_path(path), tag_column=self.data.tag_column, token_column=self.data.token_column,
                        keep_documents=True)
        if len(set(ds["document"])) < 2:  # no -DOCSTART- lines (or one document): no document context
            ds = ds.remove_columns("document")
        ds = first_rows(ds, limit)
        return ds

    def build(self):
        from ..embeddings.word2vec import optional_word2vec_stage
        from ..pipeline import Pipeline
        from ..text.vocab import VocabularyStage

        stages: list[Stage] = [SentenceTokenizer()]
        if self.model.document_case_dim > 0:
            from ..text.documents import DocumentCaseStage

            stages.append(DocumentCaseStage())
        stages.append(VocabularyStage(self.vocabulary))
        stages.extend(optional_word2vec_stage(self.word2vec))
        stages.append(TagEncoder(scheme=self.data.scheme, target=self.scheme))
        return Pipeline(stages, NERModel, self.model, device=self.device)

