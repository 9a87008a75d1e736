"""word2vec word vectors (gensim 4) → an initial embedding matrix for a model's vocabulary.

Mikolov et al. (2013), "Efficient Estimation of Word Representations in Vector Space"
and "Distributed Representations of Words and Phrases and their Compositionality":
*skip-gram* predicts the words of a ±``window`` context from the centre word, *CBOW*
predicts the centre word from the mean of its context; both are trained with *negative
sampling* (``negative`` noise words drawn from the unigram distribution raised to 3/4)
and sub-sampling of frequent words (``sample``). gensim does the training; with
``workers=1`` and a fixed ``seed`` it is deterministic.

Vectors come from training on a token column, or from a file the user gives:
word2vec text or binary format (read without pickle), or a gensim ``KeyedVectors``
``.kv`` file — which gensim reads with **pickle**, able to run code. seqlab reads a
``.kv`` file only when the caller names that format explicitly, as their own input;
seqlab's own model files never go through it: :class:`Word2VecStage` saves vectors as
``word2vec.safetensors`` + ``word2vec.vocab.txt``.

:func:`embedding_matrix` lines the vectors up with a :class:`~seqlab.text.vocab.Vocabulary`
(exact match, then lower-cased), initialises the missing rows randomly at the vectors'
scale, zeroes the padding row and reports the coverage; :func:`pretrained_embedding`
wraps the matrix in a frozen or trainable ``nn.Embedding``.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from seqlab.core.errors import ConfigError, DataError, InputError, ModelFileError
from seqlab.core.stage import Stage
from seqlab.text.vocab import PAD, SPECIALS, column_rows, read_token_file, write_token_file

logger = logging.getLogger(__name__)

VectorFormat = Literal["auto", "word2vec_text", "word2vec_binary", "keyedvectors"]


# -- training ---------------------------------------------------------------------------
@dataclasses.dataclass
class Word2VecConfig:
    #: Column of token lists to train on.
    input: str = "tokens"
    #: ``skipgram`` or ``cbow``.
    algorithm: Literal["skipgram", "cbow"] = "skipgram"
    #: Vector dimension.
    dim: int = 100
    #: Context words on each side.
    window: int = 5
    #: Ignore words seen fewer times.
    min_count: int = 1
    #: Negative samples per positive pair (0 would need hierarchical softmax; not offered).
    negative: int = 5
    #: Passes over the corpus.
    epochs: int = 5
    #: Down-sampling threshold for frequent words (0: off).
    sample: float = 1e-3
    #: Initial learning rate.
    alpha: float = 0.025
    #: Training threads; only ``1`` is deterministic.
    workers: int = 1
    seed: int = 0
    #: Lower-case tokens before training.
    lowercase: bool = False
    #: Load these vectors instead of training (word2vec text/binary, or ``.kv`` with ``pretrained_format: keyedvectors``).
    pretrained: str | None = None
    pretrained_format: VectorFormat = "auto"

    def validate(self, where: str) -> None:
        for name in ("dim", "window", "min_count", "epochs", "workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: must be at least 1, got {getattr(self, name)}")
        if self.negative < 1:
            raise ConfigError(f"{where}.negative: must be at least 1 (negative sampling), got {self.negative}")
        if self.alpha <= 0 or self.sample < 0:
            raise ConfigError(f"{where}: alpha must be > 0 and sample ≥ 0")


def _sentences(rows: Iterable[Any], lowercase: bool, column: str) -> list[list[str]]:
    out = []
    for i, tokens in enumerate(rows):
        if isinstance(tokens, str) or not isinstance(tokens, Sequence):
            raise DataError(
                f"word2vec: row {i} of column {column!r} is {type(tokens).__name__} {tokens!r:.60}, expected a "
                "list of tokens (tokenize the text first)"
            )
        tokens = list(tokens)
        for token in tokens:
            if not isinstance(token, str):
                raise DataError(f"word2vec: row {i} of column {column!r} holds {type(token).__name__} {token!r:.40}")
        if tokens:
            out.append([t.lower() for t in tokens] if lowercase else tokens)
    return out


def train_word2vec(sentences: Iterable[Sequence[str]], config: Word2VecConfig | None = None, **overrides: Any):
    """Train word2vec on token lists; returns gensim ``KeyedVectors``.

    >>> kv = train_word2vec([["a", "b", "c"]] * 50, dim=8, epochs=2)
    >>> kv.vector_size, sorted(kv.index_to_key)
    (8, ['a', 'b', 'c'])
    """
    from gensim.models import Word2Vec

    from seqlab.core.config import from_dict, to_dict

    if config is None:
        config = from_dict(Word2VecConfig, overrides, where="word2vec")
    elif overrides:
        config = from_dict(Word2VecConfig, {**to_dict(config), **overrides}, where="word2vec")
    corpus = _sentences(sentences, config.lowercase, config.input)
    if not corpus:
        raise DataError("word2vec: the corpus holds no tokens (every sentence is empty); train on non-empty text")
    counts: dict[str, int] = {}
    for tokens in corpus:
        for t in tokens:
            counts[t] = counts.get(t, 0) + 1
    if max(counts.values()) < config.min_count:
        raise DataError(
            f"word2vec: no word occurs min_count={config.min_count} times (the most frequent occurs "
            f"{max(counts.values())} times); lower min_count or give more text"
        )
    model = Word2Vec(
        sentences=corpus,
        vector_size=config.dim,
        window=config.window,
        min_count=config.min_count,
        sg=1 if config.algorithm == "skipgram" else 0,
        hs=0,
        negative=config.negative,
        sample=config.sample,
        alpha=config.alpha,
        epochs=config.epochs,
        workers=config.workers,
        seed=config.seed,
    )
    return model.wv


# -- files ------------------------------------------------------------------------------
def _guess_format(path: Path) -> str:
    if path.suffix == ".kv":
        raise ConfigError(
            f"{str(path)!r} looks like a gensim KeyedVectors file, which gensim reads with pickle (it can run "
            "code). If it is your own file and you trust it, pass format='keyedvectors' explicitly; otherwise "
            "convert it with kv.save_word2vec_format(...) and give that"
        )
    with open(path, "rb") as handle:
        head = handle.readline()
        body = handle.read(4096)
    try:
        fields = head.decode("utf-8").split()
        header_ok = len(fields) == 2 and all(f.isdigit() for f in fields)
    except UnicodeDecodeError:
        header_ok = False
    if not header_ok:
        raise DataError(
            f"{str(path)!r} does not start with a word2vec header line '<count> <dim>'; "
            "give a word2vec text/binary file"
        )
    try:
        body.decode("utf-8")
        return "word2vec_text"
    except UnicodeDecodeError as err:
        # A text file cut mid-character at 4096 bytes still decodes up to its last 3 bytes.
        return "word2vec_text" if err.start >= len(body) - 3 else "word2vec_binary"


def load_vectors(path: str | Path, format: VectorFormat = "auto"):
    """Read word vectors: word2vec text or binary format (``auto`` tells them apart), or a
    gensim ``.kv`` file when ``format="keyedvectors"`` is given explicitly.

    ``keyedvectors`` uses gensim's ``KeyedVectors.load``, i.e. **pickle**: only for files you
    made or trust. Returns gensim ``KeyedVectors``.
    """
    from gensim.models import KeyedVectors

    path = Path(path)
    if not path.is_file():
        raise DataError(f"vector file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"vector file {str(path)!r} is empty")
    fmt = _guess_format(path) if format == "auto" else format
    try:
        if fmt == "keyedvectors":
            kv = KeyedVectors.load(str(path))  # pickle: the caller vouched for this file
        elif fmt in ("word2vec_text", "word2vec_binary"):
            kv = KeyedVectors.load_word2vec_format(str(path), binary=fmt == "word2vec_binary")
        else:
            raise ConfigError(f"unknown vector format {format!r}; use auto, word2vec_text, word2vec_binary or keyedvectors")
    except (ValueError, EOFError, UnicodeDecodeError, OSError) as err:
        if isinstance(err, ConfigError):
            raise
        raise DataError(f"cannot read {str(path)!r} as {fmt}: {err}") from None
    if len(kv) == 0:
        raise DataError(f"vector file {str(path)!r} holds no vectors")
    return kv


def save_vectors(vectors, path: str | Path, binary: bool = False) -> None:
    """Write gensim ``KeyedVectors`` in word2vec text (or binary) format."""
    vectors.save_word2vec_format(str(path), binary=binary)


# -- embedding matrix --------------------------------------------------------------------------
def _vocab_tokens(vocabulary: Any) -> list[str]:
    if hasattr(vocabulary, "tokens") and not callable(vocabulary.tokens):
        return list(vocabulary.tokens)
    if hasattr(vocabulary, "pieces") and not callable(vocabulary.pieces):
        return list(vocabulary.pieces)
    if hasattr(vocabulary, "vocab") and vocabulary.vocab is not None:  # a fitted VocabularyStage
        return list(vocabulary.vocab.tokens)
    if isinstance(vocabulary, (list, tuple)):
        return list(vocabulary)
    raise InputError(f"embedding_matrix: expected a Vocabulary or a list of tokens, got {type(vocabulary).__name__}")


def embedding_matrix(
    vectors: Any,
    vocabulary: Any,
    seed: int = 0,
    lowercase_fallback: bool = True,
    pad_token: str | None = PAD,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """A ``(len(vocabulary), dim)`` float32 matrix whose row *i* is the vector of token *i*.

    A token is looked up as is, then lower-cased (``lowercase_fallback``); a token found
    neither way — the specials included — gets a random row drawn from
    ``N(0, σ²)`` with σ the standard deviation of all the given vectors, so new rows have
    the scale of the pretrained ones. The ``pad_token`` row is zero. The returned coverage
    (also logged) counts the corpus tokens only (specials excluded)::

        {"total", "exact", "lowercase", "missing", "coverage"}   # coverage = found / total

    ``vectors`` is gensim ``KeyedVectors`` (or a fitted :class:`Word2VecStage`);
    ``vocabulary`` a :class:`~seqlab.text.vocab.Vocabulary`, a fitted ``VocabularyStage``
    or a token list.

    >>> kv = train_word2vec([["Paris", "is", "big"]] * 20, dim=4, epochs=1)
    >>> from seqlab.text.vocab import Vocabulary
    >>> matrix, cov = embedding_matrix(kv, Vocabulary(["paris", "is", "new"]))
    >>> matrix.shape, cov["exact"], cov["lowercase"], cov["missing"], matrix[0].abs().sum().item()
    (torch.Size([7, 4]), 1, 1, 1, 0.0)
    """
    if isinstance(vectors, Word2VecStage):
        vectors = vectors.vectors
    if vectors is None or not hasattr(vectors, "key_to_index"):
        raise InputError("embedding_matrix: expected gensim KeyedVectors (train or load them first)")
    tokens = _vocab_tokens(vocabulary)
    weights = np.asarray(vectors.vectors, dtype=np.float32)
    dim = weights.shape[1]
    std = float(weights.std()) if weights.size else 0.0
    if not np.isfinite(std) or std == 0.0:
        std = 1.0 / np.sqrt(dim)
    generator = np.random.default_rng(seed)
    matrix = generator.normal(0.0, std, size=(len(tokens), dim)).astype(np.float32)
    index = vectors.key_to_index
    lower_index: dict[str, int] = {}
    if lowercase_fallback:
        # The first (most frequent) key of each lower-cased form wins, as with a plain lookup.
        for key, i in index.items():
            if isinstance(key, str):
                lower_index.setdefault(key.lower(), i)
    exact = lowered = missing = 0
    for row, token in enumerate(tokens):
        if token in SPECIALS:
            continue
        found = index.get(token)
        if found is not None:
            exact += 1
        elif lowercase_fallback:
            found = index.get(token.lower(), lower_index.get(token.lower()))
            if found is not None:
                lowered += 1
        if found is None:
            missing += 1
            continue
        matrix[row] = weights[found]
    if pad_token is not None and pad_token in tokens:
        matrix[tokens.index(pad_token)] = 0.0
    total = exact + lowered + missing
    coverage = {
        "total": total,
        "exact": exact,
        "lowercase": lowered,
        "missing": missing,
        "coverage": (exact + lowered) / total if total else 0.0,
    }
    logger.info(
        "embedding matrix %d×%d: %d/%d vocabulary tokens have vectors (%.1f%%: %d exact, %d lower-cased), %d random",
        len(tokens), dim, exact + lowered, total, 100 * coverage["coverage"], exact, lowered, missing,
    )
    return torch.from_numpy(matrix), coverage


def copy_into_embedding(embedding: nn.Embedding, matrix: torch.Tensor, freeze: bool = False) -> None:
    """Initialise ``embedding`` with ``matrix`` (rows = the vocabulary), frozen or fine-tuned.

    A dimension mismatch is a ConfigError naming both sizes.
    """
    if matrix.shape[1] != embedding.embedding_dim:
        raise ConfigError(
            f"word2vec vectors have {matrix.shape[1]} dimensions but model.embedding_dim is "
            f"{embedding.embedding_dim}; make them equal"
        )
    embedding.weight.data.copy_(matrix)
    embedding.weight.requires_grad_(not freeze)


def copy_pretrained_vectors(embedding: nn.Embedding, stages: list, freeze: bool = False) -> bool:
    """When ``stages`` hold a fitted word2vec stage, copy its vectors into ``embedding``; whether they did.

    Row ``i`` gets the vector of the vocabulary stage's word ``i`` (``copy_into_embedding``); a
    pipeline without a word2vec stage leaves the embedding as initialised.
    """
    pretrained = next((s for s in stages if hasattr(s, "embedding_matrix")), None)
    if pretrained is None:
        return False
    vocab = next(s for s in stages if hasattr(s, "vocab"))
    copy_into_embedding(embedding, pretrained.embedding_matrix(vocab.vocab), freeze)
    return True


def optional_word2vec_stage(config: "Word2VecConfig | None") -> list:
    """``[Word2VecStage(config)]``, or ``[]`` when ``config`` is None (embeddings learned from scratch)."""
    return [] if config is None else [Word2VecStage(config)]


def pretrained_embedding(matrix: torch.Tensor, freeze: bool = False, padding_idx: int | None = 0) -> nn.Embedding:
    """``nn.Embedding`` initialised from ``matrix``; ``freeze`` keeps it fixed, else it is fine-tuned.

    >>> emb = pretrained_embedding(torch.ones(5, 3), freeze=True)
    >>> emb.weight.requires_grad, emb.padding_idx
    (False, 0)
    """
    if matrix.dim() != 2:
        raise InputError(f"pretrained_embedding: expected a 2-D matrix, got shape {tuple(matrix.shape)}")
    return nn.Embedding.from_pretrained(matrix.float().clone(), freeze=freeze, padding_idx=padding_idx)


# -- the stage ----------------------------------------------------------------------------------
class Word2VecStage(Stage):
    """Trains (or loads) word vectors when fitted; passes batches through unchanged.

    The task model asks it for :meth:`embedding_matrix` when it is built. Saved as
    ``word2vec.safetensors`` (the matrix) + ``word2vec.vocab.txt`` (one word per line), no pickle.

    >>> stage = Word2VecStage(dim=8, epochs=1).fit({"tokens": [["a", "b"], ["b", "c"]] * 20})
    >>> stage.vectors.vector_size, stage({"tokens": [["a"]]})
    (8, {})
    """

    kind = "word2vec"
    Config = Word2VecConfig
    needs_fit = True
    VECTORS_FILE = "word2vec.safetensors"
    VOCAB_FILE = "word2vec.vocab.txt"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.takes = (self.config.input,)
        self.provides = ()
        self.vectors = None
        #: Coverage of the last :meth:`embedding_matrix` call (``None`` before one).
        self.coverage: dict[str, Any] | None = None

    def fit(self, data: Any) -> "Word2VecStage":
        cfg = self.config
        if cfg.pretrained:
            self.vectors = load_vectors(cfg.pretrained, cfg.pretrained_format)
        else:
            self.vectors = train_word2vec(column_rows(data, cfg.input, type(self).__name__), cfg)
        self.fitted = True
        return self

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        return {}

    def __call__(self, batch: Mapping[str, list]) -> dict[str, list]:
        # Nothing to compute at map time, so the input column need not be there either.
        if not self.fitted:
            from seqlab.core.errors import NotFittedError

            raise NotFittedError(f"stage {self.describe()} is used before fit(); fit it on training data first")
        return {}

    def embedding_matrix(self, vocabulary: Any, seed: int = 0) -> torch.Tensor:
        """The ``(V, dim)`` matrix of :func:`embedding_matrix` for ``vocabulary`` (what a task
        model copies into its ``nn.Embedding``); the coverage is kept in ``self.coverage``."""
        if self.vectors is None:
            from seqlab.core.errors import NotFittedError

            raise NotFittedError("Word2VecStage has no vectors yet; fit it first")
        matrix, self.coverage = embedding_matrix(self.vectors, vocabulary, seed=seed)
        return matrix

    def most_similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        if word not in self.vectors.key_to_index:
            raise InputError(f"word {word!r} has no vector")
        return self.vectors.most_similar(word, topn=topn)

    def save_state(self, directory: Path) -> None:
        from safetensors.numpy import save_file

        directory = Path(directory)
        weights = np.ascontiguousarray(self.vectors.vectors, dtype=np.float32)
        save_file({"vectors": weights}, str(directory / self.VECTORS_FILE))
        write_token_file(directory / self.VOCAB_FILE, [str(k) for k in self.vectors.index_to_key])

    def load_state(self, directory: Path) -> None:
        from gensim.models import KeyedVectors
        from safetensors import SafetensorError
        from safetensors.numpy import load as load_bytes

        from ..core.files import excerpt, read_regular_bytes

        directory = Path(directory)
        path = directory / self.VECTORS_FILE
        if not path.is_file():
            raise ModelFileError(f"{str(path)!r} is missing: the word vectors of this pipeline")
        try:
            weights = load_bytes(read_regular_bytes(path))["vectors"]  # a regular file inside the model folder
        except (SafetensorError, OSError, KeyError) as err:
            raise ModelFileError(f"{str(path)!r} is corrupt: {excerpt(str(err), 160)}") from None
        words = read_token_file(directory / self.VOCAB_FILE)
        if len(words) != weights.shape[0]:
            raise ModelFileError(
                f"{str(directory)!r}: {len(words)} words in {self.VOCAB_FILE} but {weights.shape[0]} vectors"
            )
        kv = KeyedVectors(vector_size=weights.shape[1])
        kv.add_vectors(words, weights)
        self.vectors = kv
        self.fitted = True

    # Pickled and hashed as config + words + raw vector bytes: gensim's object also holds
    # caches (norms) that change when it is queried, and ``coverage`` is a by-product of a
    # query; either would change the ``datasets`` fingerprint of an unchanged stage.
    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("vectors", "coverage")}
        if self.vectors is not None:
            state["_words"] = list(self.vectors.index_to_key)
            state["_weights"] = np.ascontiguousarray(self.vectors.vectors, dtype=np.float32)
        return state

    def __setstate__(self, state: dict) -> None:
        words, weights = state.pop("_words", None), state.pop("_weights", None)
        self.__dict__.update(state)
        self.vectors, self.coverage = None, None
        if words is not None:
            from gensim.models import KeyedVectors

            kv = KeyedVectors(vector_size=weights.shape[1])
            kv.add_vectors(words, weights)
            self.vectors = kv
