"""Character-level word encoders: the characters of each word → one vector per word.

A NER tagger that sees only word embeddings knows nothing of a word it never saw in
training; its spelling (capitals, suffixes, digits, hyphens) still says a lot. Two
encoders from the papers that made BiLSTM-CRF the standard NER model:

- ``CharCNNEncoder`` — Ma & Hovy (2016), "End-to-end Sequence Labeling via
  Bi-directional LSTM-CNNs-CRF", §2.1 and Table 1: character embeddings (dim 30),
  one convolution of 30 filters of width 3 over the characters of the word, then max
  pooling over the character positions. The convolution is ``seqlab.nn.blocks.ConvStack``
  (the one conv builder): it zeroes padded character positions before the convolution,
  so a window at a word's end sees the same zeros as a word alone, and its global max
  pooling skips the padding.
- ``CharBiLSTMEncoder`` — Lample et al. (2016), "Neural Architectures for Named Entity
  Recognition", §4.1: character embeddings (dim 25), a bidirectional LSTM (25 units per
  direction); the word vector is the forward LSTM's state after the last character
  concatenated with the backward LSTM's state after the first (``RecurrentEncoder``'s
  ``final``, read from packed sequences so padding never enters).

Both run on *all the words of a batch at once*: the input is one padded ``(W, C)`` matrix
of character ids (``W`` = the number of real words in the batch, ``C`` = the longest word)
and ``(W,)`` lengths, which ``char_ids`` builds from the token strings with numpy (no Python
loop over characters). Id 0 is padding and id 1 an unknown character; the caller scatters
the ``(W, D)`` output back to its ``(B, T, D)`` word positions.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from ..core.errors import ConfigError, InputError
from .blocks import ConvLayerSpec, ConvStack
from .dropout import Dropout
from .recurrent import RecurrentEncoder

__all__ = ["CHAR_PAD", "CHAR_UNK", "CharBiLSTMEncoder", "CharCNNEncoder", "CharTable", "Dropout", "char_encoder", "char_ids"]

#: Reserved character ids.
CHAR_PAD, CHAR_UNK = 0, 1


def _uniform_init(embedding: nn.Embedding, padding_idx: int | None) -> None:
    # Ma & Hovy (2016) §3.1: embeddings drawn from U[-sqrt(3/dim), +sqrt(3/dim)], i.e.
    # variance 1/dim, instead of torch's N(0, 1), which is far larger than the other inputs.
    bound = math.sqrt(3.0 / embedding.embedding_dim)
    with torch.no_grad():
        embedding.weight.uniform_(-bound, bound)
        if padding_idx is not None:
            embedding.weight[padding_idx].zero_()


class CharTable:
    """Characters ↔ ids: 0 = padding, 1 = unknown, then the alphabet in the order given.

    Lookup is a dense numpy table indexed by code point, so a whole batch of words maps
    to ids in one vectorised step (see ``char_ids``).

    >>> table = CharTable("abc")
    >>> len(table), table.id("b"), table.id("z")
    (5, 3, 1)
    """

    def __init__(self, alphabet: str | Sequence[str]) -> None:
        chars = list(alphabet)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise InputError(f"CharTable: each alphabet entry must be one character, got {c!r}")
        if len(set(chars)) != len(chars):
            raise InputError("CharTable: the alphabet repeats characters")
        self.alphabet = "".join(chars)
        self._index = {c: i + 2 for i, c in enumerate(chars)}
        top = max((ord(c) for c in chars), default=0)
        self._table = np.full(top + 1, CHAR_UNK, dtype=np.int64)
        for c, i in self._index.items():
            self._table[ord(c)] = i

    def __len__(self) -> int:
        return len(self.alphabet) + 2

    def id(self, char: str) -> int:
        return self._index.get(char, CHAR_UNK)

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """Code points (any shape, uint32) → ids; code point 0 (numpy's string padding) → ``CHAR_PAD``."""
        inside = codes < self._table.shape[0]
        ids = np.where(inside, self._table[np.where(inside, codes, 0)], CHAR_UNK)
        ids[codes == 0] = CHAR_PAD
        return ids


def char_ids(
    words: Sequence[str], table: CharTable, max_length: int | None = None, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """The padded ``(W, C)`` character-id matrix and the ``(W,)`` lengths of ``words``.

    Words longer than ``max_length`` keep their first and last ``max_length // 2``
    characters (prefixes and suffixes carry the signal; a 5,000-character token must not
    make a 5,000-wide batch). An empty word gets one unknown character, so every word has
    a vector. ``W`` may be 0.

    >>> ids, lengths = char_ids(["Hi", "you"], CharTable("Hiyou"))
    >>> ids.tolist(), lengths.tolist()
    ([[2, 3, 0], [4, 5, 6]], [2, 3])
    """
    if max_length is not None and max_length < 2:
        raise InputError(f"char_ids: max_length must be >= 2 or None, got {max_length}")
    words = list(words)
    if not words:
        return (torch.zeros(0, 1, dtype=torch.long, device=device), torch.zeros(0, dtype=torch.long, device=device))
    if max_length is not None and max(map(len, words)) > max_length:  # rare: only then a loop over words
        half = max_length // 2
        words = [w if len(w) <= max_length else w[:half] + w[-half:] for w in words]
    # numpy's fixed-width unicode array holds each word as UTF-32 code points, NUL-padded:
    # the whole batch becomes an integer matrix without a Python loop over characters.
    array = np.array(words, dtype=np.str_)  # at least <U1, even when every word is empty
    codes = array.view(np.uint32).reshape(len(words), array.dtype.itemsize // 4)
    ids = table.lookup(codes)
    lengths = np.char.str_len(array).astype(np.int64)
    empty = lengths == 0
    if empty.any():
        ids[empty, 0] = CHAR_UNK
        lengths[empty] = 1
    return (torch.from_numpy(ids).to(device), torch.from_numpy(lengths).to(device))


class CharCNNEncoder(nn.Module):
    """Ma & Hovy's character CNN: embed → dropout → conv (width 3, ``same``) → tanh → max over characters.

    ``forward(ids (W, C), lengths (W,))`` → ``(W, filters)``. Padded characters never
    change a word's vector (``ConvStack`` masks them).

    >>> enc = CharCNNEncoder(num_chars=10)
    >>> out = enc(torch.tensor([[2, 3, 4], [5, 0, 0]]), torch.tensor([3, 1]))
    >>> out.shape, enc.output_size
    (torch.Size([2, 30]), 30)
    """

    def __init__(
        self,
        num_chars: int,
        embedding_dim: int = 30,
        filters: int = 30,
        kernel: int = 3,
        activation: str = "tanh",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("num_chars", num_chars), ("embedding_dim", embedding_dim), ("filters", filters), ("kernel", kernel)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"CharCNNEncoder: {name} must be a positive integer, got {value!r}")
        self.embedding = nn.Embedding(num_chars, embedding_dim, padding_idx=CHAR_PAD)
        _uniform_init(self.embedding, CHAR_PAD)
        self.dropout = Dropout(dropout)
        # "same" padding: a one-letter word still fills a width-3 window (Ma & Hovy pad
        # each word on both sides for the same reason).
        self.conv = ConvStack(
            embedding_dim,
            [ConvLayerSpec(channels=filters, kernel=kernel, padding="same", activation=activation, pool="global_max")],
        )
        self.output_size = filters

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        if ids.dim() != 2:
            raise InputError(f"CharCNNEncoder: expected (words, chars) ids, got shape {tuple(ids.shape)}")
        if ids.shape[0] == 0:
            return self.embedding.weight.new_zeros(0, self.output_size)
        # (The ONNX exporter has no Unfold of a dynamic size: an exported network keeps the conv.)
        if not self.training and isinstance(self.conv.layers[0].norm, nn.Identity) and not torch.onnx.is_in_onnx_export():
            return self._windows_times_filters(ids, lengths)
        x = self.dropout(self.embedding(ids)).transpose(1, 2)  # (W, E, C): channels first for the conv
        out, _ = self.conv(x, lengths)
        return out.squeeze(-1)

    def _windows_times_filters(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """Inference: the same function as the ``ConvStack`` path, as one matrix product.

        Each character's window of ``kernel`` embeddings (zeros past the word's ends, as the
        stack's masking and padding give) times the filters laid out as a ``(kernel · E,
        filters)`` matrix, then the activation and the maximum over the word's characters.
        On a CPU, oneDNN's conv1d prepares a new kernel for every new (words, characters)
        shape — each sentence has its own — which costs far more than the arithmetic.
        """
        layer = self.conv.layers[0]
        kernel, total = layer.kernel[0], layer.totals[0]
        words, chars = ids.shape
        real = torch.arange(chars, device=ids.device) < lengths.to(ids.device).unsqueeze(1)  # (W, C)
        x = self.embedding(ids).masked_fill(~real.unsqueeze(2), 0.0)
        x = nn.functional.pad(x, (0, 0, total // 2, total - total // 2))  # (W, C + total, E)
        windows = x.unfold(1, kernel, 1).reshape(words * chars, -1)  # (W·C, E·kernel), E-major like the weight
        weight = layer.conv.weight.reshape(layer.conv.weight.shape[0], -1)
        out = windows @ weight.t() if layer.conv.bias is None else torch.addmm(layer.conv.bias, windows, weight.t())
        out = layer.act(out).view(words, chars, -1)
        return out.masked_fill(~real.unsqueeze(2), float("-inf")).amax(dim=1)


class CharBiLSTMEncoder(nn.Module):
    """Lample et al.'s character BiLSTM: the final forward and backward states, concatenated.

    ``forward(ids (W, C), lengths (W,))`` → ``(W, 2 · hidden_size)``.

    >>> enc = CharBiLSTMEncoder(num_chars=10)
    >>> enc(torch.tensor([[2, 3, 4], [5, 0, 0]]), torch.tensor([3, 1])).shape
    torch.Size([2, 50])
    """

    def __init__(self, num_chars: int, embedding_dim: int = 25, hidden_size: int = 25, dropout: float = 0.0) -> None:
        super().__init__()
        for name, value in (("num_chars", num_chars), ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"CharBiLSTMEncoder: {name} must be a positive integer, got {value!r}")
        self.embedding = nn.Embedding(num_chars, embedding_dim, padding_idx=CHAR_PAD)
        _uniform_init(self.embedding, CHAR_PAD)
        self.dropout = Dropout(dropout)
        self.rnn = RecurrentEncoder(embedding_dim, hidden_size, 1, cell="lstm", bidirectional=True)
        self.output_size = self.rnn.output_size

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        if ids.dim() != 2:
            raise InputError(f"CharBiLSTMEncoder: expected (words, chars) ids, got shape {tuple(ids.shape)}")
        if ids.shape[0] == 0:
            return self.embedding.weight.new_zeros(0, self.output_size)
        _, final, _ = self.rnn(self.dropout(self.embedding(ids)), lengths)
        return final


def check_char_sizes(where: str, embedding_dim: int | None, hidden_size: int | None) -> None:
    """A ``ConfigError`` unless the character embedding and hidden sizes are >= 1 or None (the paper's).

    >>> check_char_sizes("model", None, 0)
    Traceback (most recent call last):
    seqlab.core.errors.ConfigError: model.char_hidden_size must be >= 1 or null, got 0
    """
    for name, value in (("char_embedding_dim", embedding_dim), ("char_hidden_size", hidden_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{where}.{name} must be >= 1 or null, got {value}")


def char_encoder(
    kind: Literal["cnn", "lstm"],
    num_chars: int,
    embedding_dim: int | None = None,
    hidden_size: int | None = None,
    kernel: int = 3,
    dropout: float = 0.0,
) -> CharCNNEncoder | CharBiLSTMEncoder:
    """Build a character encoder with its paper's defaults for the sizes left ``None``.

    ``cnn``: embedding 30, 30 filters (Ma & Hovy); ``lstm``: embedding 25, 25 units per
    direction (Lample et al.). ``hidden_size`` is the number of filters for ``cnn``.

    >>> char_encoder("lstm", 20).output_size, char_encoder("cnn", 20).output_size
    (50, 30)
    """
    if kind == "cnn":
        return CharCNNEncoder(num_chars, embedding_dim or 30, hidden_size or 30, kernel, dropout=dropout)
    if kind == "lstm":
        return CharBiLSTMEncoder(num_chars, embedding_dim or 25, hidden_size or 25, dropout=dropout)
    raise ConfigError(f"unknown character encoder {kind!r}; valid: cnn, lstm")
