"""Language modelling (one-to-many): tokens → embedding → unidirectional RNN → dropout → linear to the vocabulary.

A recurrent language model (Mikolov et al., 2010, "Recurrent neural network based
language model"; with LSTM and dropout on the non-recurrent connections as in Zaremba,
Sutskever & Vinyals, 2014, "Recurrent Neural Network Regularization") predicts each token
of a long stream from the ones before it:

    p(w_1 … w_N) = ∏_t p(w_t | w_<t),   p(w_t | w_<t) = softmax(W h_{t-1} + b)[w_t]

The output matrix ``W`` may be the embedding matrix itself ("weight tying": Press & Wolf,
2017, "Using the Output Embedding to Improve Language Models"; Inan, Khosravi & Socher,
2017), which needs ``embedding_dim == hidden_size``.

**Training** is truncated backpropagation through time (``seqlab.nn.tbptt``), as in
PyTorch's word-language-model example: the training lines are joined into one stream
``<eos> line_1 <eos> line_2 <eos> …``, laid out as ``batch_size`` parallel rows, and read in
windows of ``bptt`` steps; the hidden state is carried from one window to the next and
detached in between (Williams & Peng's TBPTT(k1, k2) when ``bptt_k2`` is set). The model is
*stateful* for the Trainer: ``train_batches`` yields the windows in order and ``loss``
reads and updates ``tbptt_state``.

**Evaluation** is perplexity, the exponential of the mean negative log-likelihood over
*all* predicted tokens of the dev stream (a micro-average, not a mean of per-batch
perplexities):

    PPL = exp( −(1/N) Σ_t log p(w_t | w_<t) )

**Generation** samples one token at a time from ``softmax(logits / T)`` (temperature ``T``;
Ackley, Hinton & Sejnowski, 1985), optionally restricted to the ``k`` most probable tokens
(top-k sampling; Fan, Lewis & Dauphin, 2018, "Hierarchical Neural Story Generation").

Word, character and subword (sentencepiece) tokens are all "tokens" here: the recipe
chooses the front-end stages, and ``from_stages`` records the id → token table so that a
saved model can turn ids back into text.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..core.errors import ConfigError, DataError, InputError
from ..core.options import MAX_DECODE_LENGTH, Option, check_cap
from ..core.task import TaskModel
from ..data.splits import FileRecipe, first_rows
from ..nn.recurrent import RecurrentEncoder
from ..nn.tbptt import BPTTWindow, TruncatedBPTT, reset_state, stream_batches
from ..text.sentencepiece import SentencePieceConfig
from ..text.tokenizers import CharTokenizerConfig, WordTokenizerConfig
from ..text.vocab import VocabularyStageConfig
from ..train.config import TrainConfig

#: The per-call options of generation (``pipe(prompt, temperature=0.8)``); defaults from ``config.generation``.
GENERATION_OPTIONS = {
    "max_tokens": Option(int, doc="tokens to generate at most", low=1, high=MAX_DECODE_LENGTH,
                         from_config="generation.max_tokens"),
    "temperature": Option(float, doc="divides the logits (> 0)", from_config="generation.temperature"),
    "top_k": Option(int, doc="sample among the k most probable tokens (1: greedy)", low=1, nullable=True,
                    from_config="generation.top_k"),
    "seed": Option(int, doc="seed of the sampler", nullable=True, from_config="generation.seed"),
    "stop_at_eos": Option(bool, doc="stop at the first sampled <eos>", from_config="generation.stop_at_eos"),
    "on_unknown": Option(str, doc="a prompt token outside the vocabulary: warn or error", choices=("warn", "error"),
                         from_config="generation.on_unknown"),
}
GENERATION_KEYS = tuple(GENERATION_OPTIONS)

#: Notes for the user (one clean line each on stderr, through Python's logging).
logger = logging.getLogger(__name__)


# -- settings ----------------------------------------------------------------------------------
def check_sampling(
    max_tokens: Any, temperature: Any, top_k: Any, error: type[Exception] = InputError, where: str = "generate"
) -> None:
    """Refuse sampling settings that make no sense, with ``error`` (ConfigError for configs, InputError for calls)."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise error(f"{where}: max_tokens must be an integer >= 1, got {max_tokens!r}")
    number = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if not number or not math.isfinite(temperature) or temperature <= 0:
        raise error(
            f"{where}: temperature must be a finite number > 0, got {temperature!r} "
            "(for greedy decoding use top_k=1)"
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise error(f"{where}: top_k must be an integer >= 1 or null (no restriction), got {top_k!r}")


@dataclass
class GenerationConfig:
    """Defaults of ``generate`` and of ``pipe(prompt)``; each can be overridden per call.

    >>> from seqlab.core.config import from_dict
    >>> from_dict(GenerationConfig, {"temperature": 0.8, "top_k": 20}).max_tokens
    30
    >>> from_dict(GenerationConfig, {"top_k": 0})
    Traceback (most recent call last):
    ...
    seqlab.core.errors.ConfigError: config: top_k must be an integer >= 1 or null (no restriction), got 0
    """

    #: Tokens to generate at most (fewer when ``<eos>`` is sampled and ``stop_at_eos``).
    max_tokens: int = 30
    #: Divides the logits: < 1 sharper, > 1 flatter. Must be > 0.
    temperature: float = 1.0
    #: Sample only among the ``top_k`` most probable tokens (``1`` is greedy); null: all.
    top_k: int | None = None
    #: Seed of the sampler (null: torch's global generator).
    seed: int | None = None
    #: Stop at the first sampled ``<eos>`` (the end of a line); otherwise it becomes a newline.
    stop_at_eos: bool = True
    #: A prompt token outside the vocabulary: ``warn`` (read it as ``<unk>``) or ``error``.
    on_unknown: Literal["warn", "error"] = "warn"

    def validate(self, where: str = "generation") -> None:
        check_sampling(self.max_tokens, self.temperature, self.top_k, ConfigError, where)
        check_cap(where, "max_tokens", self.max_tokens, MAX_DECODE_LENGTH)


@dataclass
class LMConfig:
    """Model settings; ``vocab_size``, the special ids and ``tokens`` come from the fitted stages.

    >>> from seqlab.core.config import from_dict
    >>> from_dict(LMConfig, {"cell": "gru", "bptt": 20}).tie_weights
    True
    >>> try:
    ...     from_dict(LMConfig, {"embedding_dim": 100, "hidden_size": 200})
    ... except ConfigError as err:
    ...     print(str(err).split(", so ")[1])
    embedding_dim (100) must equal hidden_size (200); make them equal or set tie_weights: false
    """

    cell: Literal["lstm", "gru", "rnn"] = "lstm"
    embedding_dim: int = 256
    hidden_size: int = 256
    num_layers: int = 2
    #: On the embeddings, between layers and before the output layer (Zaremba et al. 2014).
    dropout: float = 0.3
    #: Share the embedding matrix with the output layer (needs embedding_dim == hidden_size).
    tie_weights: bool = True
    #: Truncated-BPTT window: an update every ``bptt`` steps of each parallel stream.
    bptt: int = 35
    #: Backpropagate over ``bptt_k2 >= bptt`` steps (TBPTT(k1, k2)); null: ``bptt``.
    bptt_k2: int | None = None
    #: Zero a stream's state at the start of every data row (rows are independent documents);
    #: false: carry it across rows, as the word-language-model example does.
    reset_state_per_row: bool = False
    #: Shuffle the order of the training rows every epoch (before joining them into a stream).
    shuffle_rows: bool = False
    #: Parallel streams when computing dev perplexity.
    eval_batch_size: int = 10
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    # -- filled in by from_stages ------------------------------------------------------
    vocab_size: int = 0
    pad_id: int = 0
    unk_id: int = 1
    bos_id: int = 2
    eos_id: int = 3
    #: The id → token table (for turning generated ids back into text).
    tokens: list[str] = field(default_factory=list)
    #: How tokens become text: ``space`` (words), ``concat`` (characters), ``sentencepiece``.
    detokenize: Literal["space", "concat", "sentencepiece"] = "space"
    #: The column holding the tokens the vocabulary encoded (to name unknown prompt tokens).
    source_column: str | None = None

    def validate(self, where: str = "model") -> None:
        for name in ("embedding_dim", "hidden_size", "num_layers", "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}.{name} must be an integer >= 1, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}.dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.bptt, bool) or not isinstance(self.bptt, int) or self.bptt < 1:
            raise ConfigError(f"{where}.bptt (the TBPTT window length) must be an integer >= 1, got {self.bptt!r}")
        if self.bptt_k2 is not None and (not isinstance(self.bptt_k2, int) or self.bptt_k2 < self.bptt):
            raise ConfigError(f"{where}.bptt_k2 must be null or >= bptt={self.bptt}, got {self.bptt_k2!r}")
        if self.tie_weights and self.embedding_dim != self.hidden_size:
            raise ConfigError(
                f"{where}.tie_weights: the output layer reuses the embedding matrix, so embedding_dim "
                f"({self.embedding_dim}) must equal hidden_size ({self.hidden_size}); make them equal or set "
                "tie_weights: false"
            )
        if self.tokens and self.vocab_size and len(self.tokens) != self.vocab_size:
            raise ConfigError(f"{where}: tokens lists {len(self.tokens)} entries but vocab_size is {self.vocab_size}")
        if self.vocab_size:
            for name in ("pad_id", "unk_id", "bos_id", "eos_id"):
                if not 0 <= getattr(self, name) < self.vocab_size:
                    raise ConfigError(f"{where}.{name}={getattr(self, name)} is outside the vocabulary (size {self.vocab_size})")
        self.generation.validate(f"{where}.generation")


# -- the token stream ---------------------------------------------------------------------------
def build_stream(rows: Sequence[Sequence[int]], eos_id: int) -> tuple[Tensor, Tensor]:
    """Join rows of ids into ``<eos> row_1 <eos> row_2 … <eos>``; also mark where each row begins.

    The leading ``<eos>`` makes the first token of every row a prediction "at the start of a
    line", the same context generation starts from. ``starts[t]`` is True at each ``<eos>``
    that opens a row: the position where ``reset_state_per_row`` zeroes the state.

    >>> ids, starts = build_stream([[5, 6], [7]], eos_id=3)
    >>> ids.tolist(), starts.tolist()
    ([3, 5, 6, 3, 7, 3], [True, False, False, True, False, False])
    """
    flat: list[int] = [eos_id]
    opens: list[int] = [0]
    for index, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not hasattr(row, "__iter__"):
            raise DataError(f"language model: row {index} is {type(row).__name__} {row!r:.60}, expected a list of token ids")
        flat.extend(int(i) for i in row)
        flat.append(eos_id)
        opens.append(len(flat) - 1)
    ids = torch.tensor(flat, dtype=torch.long)
    starts = torch.zeros(len(flat), dtype=torch.bool)
    starts[torch.tensor(opens[:-1], dtype=torch.long)] = True  # the final <eos> opens nothing
    return ids, starts


def sampling_distribution(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, banned: Sequence[int] = ()
) -> Tensor:
    """``softmax(logits / temperature)`` over the ``top_k`` largest logits (others get 0); ``banned`` ids never.

    Exactly ``top_k`` tokens keep probability (ties at the k-th value are broken by index).

    >>> p = sampling_distribution(torch.tensor([1.0, 3.0, 2.0, 0.0]), temperature=1.0, top_k=2)
    >>> [round(v, 4) for v in p.tolist()]
    [0.0, 0.7311, 0.2689, 0.0]
    """
    scaled = logits.float() / temperature
    if banned:
        scaled = scaled.index_fill(-1, torch.tensor(list(banned), device=scaled.device), -math.inf)
    size = scaled.shape[-1]
    if top_k is not None and top_k < size:
        keep = scaled.topk(top_k, dim=-1).indices
        mask = torch.full_like(scaled, -math.inf).scatter(-1, keep, 0.0)
        scaled = scaled + mask
    return scaled.softmax(-1)


def _state_batch(state: Any) -> int | None:
    if state is None:
        return None
    h = state[0] if isinstance(state, (tuple, list)) else state
    return int(h.shape[1])


# -- the model ----------------------------------------------------------------------------------
class LanguageModel(TaskModel):
    """Embedding → unidirectional RNN/LSTM/GRU → dropout → linear (tied or not) to the vocabulary.

    >>> cfg = LMConfig(embedding_dim=8, hidden_size=8, num_layers=1, vocab_size=12, bptt=4)
    >>> model = LanguageModel(cfg)
    >>> model.decoder.weight is model.embedding.weight
    True
    >>> batches = model.train_batches({"input_ids": [[4, 5, 6, 7]] * 5}, TrainConfig(batch_size=2), epoch=1)
    >>> len(batches), batches[0]["input_ids"].shape, int(batches[0]["input_ids_lengths"].sum())
    (3, torch.Size([2, 4]), 8)
    >>> float(model(batches[0]).detach()) > 0
    True
    >>> len(model.generate([4, 5], max_tokens=3, seed=0, stop_at_eos=False))
    3
    """

    task = "lm"
    Config = LMConfig
    input_column = "text"
    target_columns = ()
    selection_metric = "perplexity"
    selection_mode = "min"
    #: The hidden state is carried from one training window to the next (``tbptt_state``).
    stateful = True
    options = GENERATION_OPTIONS

    def __init__(self, config: LMConfig) -> None:
        super().__init__(config)
        config.validate("lm model")
        if config.vocab_size < 1:
            raise ConfigError(
                f"language model needs vocab_size >= 1 (got {config.vocab_size}); build it with Pipeline.fit "
                "or LanguageModel.from_stages"
            )
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.drop = nn.Dropout(config.dropout)
        self.encoder = RecurrentEncoder(
            config.embedding_dim, config.hidden_size, config.num_layers, cell=config.cell,
            bidirectional=False, dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        # Small uniform initialisation, as in the word-language-model example: with tied
        # weights, N(0, 1) embeddings would make the first logits huge.
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        self.tbptt = TruncatedBPTT(config.bptt, config.bptt_k2)
        # The state carried from one training window to the next (None: zeros).
        self.tbptt_state = None

    # -- building ---------------------------------------------------------------------
    @classmethod
    def configure(cls, config: LMConfig, stages: list) -> LMConfig:
        """Read the vocabulary (or sentencepiece model) and the tokenizer kind off the fitted stages."""
        ids_stage = next((s for s in reversed(stages) if "input_ids" in getattr(s, "provides", ())), None)
        if ids_stage is None:
            raise ConfigError("the language-model pipeline needs a stage that provides 'input_ids' (vocabulary or sentencepiece)")
        if getattr(ids_stage.config, "add_bos", False) or getattr(ids_stage.config, "add_eos", False):
            raise ConfigError(
                f"{type(ids_stage).__name__}: set add_bos/add_eos to false for the language model; it puts "
                "<eos> between lines itself"
            )
        if hasattr(ids_stage, "vocab"):
            vocab = ids_stage.vocab
            tokens = vocab.tokens
            ids = dict(pad_id=vocab.pad_id, unk_id=vocab.unk_id, bos_id=vocab.bos_id, eos_id=vocab.eos_id)
            if None in ids.values():
                raise ConfigError("the language model needs a vocabulary with the specials <pad> <unk> <bos> <eos>")
            source = ids_stage.config.input
            tokenizer = next((s for s in stages if source in getattr(s, "provides", ())), None)
            if tokenizer is not None and getattr(tokenizer, "kind", "") == "char_tokenizer":
                if tokenizer.config.per_token:
                    raise ConfigError("char_tokenizer.per_token must be false for a character-level language model")
                detokenize = "concat"
            else:
                detokenize = "space"
        elif hasattr(ids_stage, "pieces"):
            if getattr(ids_stage.config, "output_type", "ids") != "ids":
                raise ConfigError("sentencepiece.output_type must be 'ids' for the language model")
            tokens = ids_stage.pieces
            ids = dict(pad_id=ids_stage.pad_id, unk_id=ids_stage.unk_id, bos_id=ids_stage.bos_id, eos_id=ids_stage.eos_id)
            source, detokenize = None, "sentencepiece"
        else:
            raise ConfigError(f"{type(ids_stage).__name__} gives ids but no token table; use a vocabulary or sentencepiece stage")
        return dataclasses.replace(
            config, vocab_size=len(tokens), tokens=list(tokens), detokenize=detokenize, source_column=source, **ids
        )

    def pad_values(self, training: bool) -> dict[str, Any]:
        return {"input_ids": self.config.pad_id}

    # -- the network ------------------------------------------------------------------
    def forward_stream(self, ids: Tensor, state: Any = None, starts: Tensor | None = None) -> tuple[Tensor, Any]:
        """Logits ``(B, L, V)`` for ``ids`` ``(B, L)`` from ``state`` (None: zeros); the state after the last step.

        The one forward pass behind training windows, perplexity and generation (dropout
        follows ``self.training``).

        Where ``starts[b, t]`` is True, row ``b``'s state is zeroed before step ``t`` (a new
        document begins there). The fused kernel cannot reset mid-sequence, so the window is
        cut at every step where some row resets: exact, and cheap when documents are long.
        """
        x = self.drop(self.embedding(ids))
        if starts is None or not bool(starts.any()):
            outputs, _, state = self.encoder(x, None, state)
        else:
            cuts = torch.nonzero(starts.any(0)).flatten().tolist()
            if cuts[0] == 0:
                state = reset_state(state, starts[:, 0])
                cuts = cuts[1:]
            pieces, begin = [], 0
            for end in [*cuts, ids.shape[1]]:
                out, _, state = self.encoder(x[:, begin:end], None, state)
                pieces.append(out)
                if end < ids.shape[1]:
                    state = reset_state(state, starts[:, end])
                begin = end
            outputs = torch.cat(pieces, dim=1)
        return self.decoder(self.drop(outputs)), state

    # -- truncated BPTT (``TaskModel.stateful``; reset_tbptt_state is the base's) ------------
    def _check_stream_size(self, n_tokens: int, streams: int, where: str) -> None:
        if n_tokens < 2 * streams:
            raise DataError(
                f"language model: the {where} stream has {n_tokens} tokens (lines and <eos> separators), fewer than "
                f"2 per stream for {streams} parallel streams (train.batch_size); use a smaller batch_size or more data"
            )
        usable = n_tokens // streams - 1
        if self.config.bptt > usable:
            raise ConfigError(
                f"language model: model.bptt={self.config.bptt} is longer than the {where} stream: {n_tokens} tokens in "
                f"{streams} parallel streams leave {usable} step(s) per stream; lower model.bptt or train.batch_size"
            )

    def train_batches(self, columns: Mapping[str, list], config: TrainConfig, epoch: int) -> list[dict[str, Any]]:
        """The epoch's TBPTT windows, in order: ``batch_size`` parallel streams, ``bptt`` steps each.

        Each batch: ``input_ids``/``targets`` ``(B, L)``, ``input_ids_lengths`` ``(B,)`` (the
        tokens its loss covers per stream, for throughput), and the window's place
        (``window_index``, ``window_start``, ``loss_from``, ``carry_at``; plain ints), plus
        ``row_starts`` ``(B, L)`` when ``reset_state_per_row``.
        """
        if "input_ids" not in columns:
            raise DataError(f"language model: the training data has no 'input_ids' column (has {sorted(columns)})")
        rows = list(columns["input_ids"])
        if self.config.shuffle_rows:
            random.Random(config.seed + epoch).shuffle(rows)
        ids, starts = build_stream(rows, self.config.eos_id)
        streams = config.batch_size
        self._check_stream_size(ids.shape[0], streams, "training")
        matrix = stream_batches(ids, streams)
        starts = starts[: matrix.numel()].view(streams, -1)
        batches = []
        for window in self.tbptt.windows(matrix):
            new = window.length - window.loss_from
            batch: dict[str, Any] = {
                "input_ids": window.inputs,
                "targets": window.targets,
                "input_ids_lengths": torch.full((streams,), new, dtype=torch.long),
                "window_index": window.index,
                "window_start": window.start,
                "loss_from": window.loss_from,
                "carry_at": window.carry_at,
            }
            if self.config.reset_state_per_row:
                batch["row_starts"] = starts[:, window.start : window.start + window.length]
            batches.append(batch)
        return batches

    def window_logits(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """Run one training window from the carried state: ``(logits, targets)`` of its new tokens.

        Updates ``tbptt_state`` (detached) to the state the next window starts from; a batch
        with ``window_index == 0`` starts from zeros.
        """
        if "targets" not in batch:
            raise InputError(
                "LanguageModel.loss needs a window batch from train_batches (input_ids, targets, …); "
                f"got keys {sorted(batch)}"
            )
        ids = batch["input_ids"]
        if batch.get("window_index", 0) == 0:
            self.reset_tbptt_state()
        state = self.tbptt_state
        if state is not None and _state_batch(state) != ids.shape[0]:
            state = None  # the number of streams changed: start afresh
        window = BPTTWindow(
            inputs=ids, targets=batch["targets"], start=int(batch.get("window_start", 0)),
            loss_from=int(batch.get("loss_from", 0)), carry_at=int(batch.get("carry_at", ids.shape[1])),
            index=int(batch.get("window_index", 0)),
        )
        starts = batch.get("row_starts")
        offset = 0

        def step(inputs: Tensor, state: Any) -> tuple[Tensor, Any]:
            # TruncatedBPTT.forward runs the window in order, in one or two pieces.
            nonlocal offset
            piece = None if starts is None else starts[:, offset : offset + inputs.shape[1]]
            offset += inputs.shape[1]
            return self.forward_stream(inputs, state, piece)

        logits, self.tbptt_state = self.tbptt.forward(step, window, state)
        return logits[:, window.loss_from :], window.new_targets

    def loss(self, batch: Mapping[str, Any]) -> Tensor:
        """Mean cross-entropy over the window's new tokens (carries the state on)."""
        logits, targets = self.window_logits(batch)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))

    # -- perplexity -------------------------------------------------------------------
    @torch.no_grad()
    def perplexity(self, rows: Sequence[Sequence[int]], batch_size: int | None = None, device: Any = None) -> dict[str, float]:
        """Perplexity of the stream ``<eos> row_1 <eos> … <eos>``: ``exp(total NLL / tokens)``.

        Every token after the first ``<eos>`` is predicted exactly once (the rows' words and
        their ``<eos>``), whatever ``batch_size``: the stream is cut into ``batch_size``
        consecutive pieces read in parallel (each from a zero state, with the state carried
        across ``bptt`` windows; the last piece padded and masked). Dropout is off.
        Returns ``perplexity``, ``loss`` (the mean NLL in nats) and ``tokens``.
        """
        rows = list(rows)
        if not rows:
            raise DataError("language model: the evaluation data has no rows")
        ids, starts = build_stream(rows, self.config.eos_id)
        targets_total = ids.shape[0] - 1
        streams = max(1, min(batch_size or self.config.eval_batch_size, targets_total))
        steps = -(-targets_total // streams)
        size = streams * steps + 1
        padded = torch.full((size,), self.config.pad_id, dtype=torch.long)
        padded[: ids.shape[0]] = ids
        padded_starts = torch.zeros(size, dtype=torch.bool)
        padded_starts[: ids.shape[0]] = starts
        offsets = torch.arange(streams).unsqueeze(1) * steps + torch.arange(steps)  # (B, n)
        inputs, targets = padded[offsets], padded[offsets + 1]
        valid = (offsets + 1) < ids.shape[0]
        row_starts = padded_starts[offsets] if self.config.reset_state_per_row else None
        device = torch.device(device) if device is not None else self.embedding.weight.device
        inputs, targets, valid = inputs.to(device), targets.to(device), valid.to(device)
        if row_starts is not None:
            row_starts = row_starts.to(device)
        was_training = self.training
        self.eval()
        try:
            total = torch.zeros((), dtype=torch.float64, device=device)
            state = None
            for begin in range(0, steps, self.config.bptt):
                end = min(begin + self.config.bptt, steps)
                piece = None if row_starts is None else row_starts[:, begin:end]
                logits, state = self.forward_stream(inputs[:, begin:end], state, piece)
                nll = nn.functional.cross_entropy(
                    logits.float().reshape(-1, logits.shape[-1]), targets[:, begin:end].reshape(-1), reduction="none"
                )
                total += (nll * valid[:, begin:end].reshape(-1)).double().sum()
        finally:
            self.train(was_training)
        mean = float(total) / targets_total
        # exp overflows a float past ~709 nats per token (a diverged model): report inf.
        return {"perplexity": math.exp(mean) if mean < 700 else math.inf, "loss": mean, "tokens": targets_total}

    def metrics_on_processed(self, processed: Mapping[str, list], references: Mapping[str, list], decode: Any,
                             device: Any) -> dict[str, float]:
        """Dev metrics for the Trainer and ``Pipeline.evaluate``: perplexity of the dev stream."""
        if "input_ids" not in processed:
            raise DataError(f"language model: the evaluation data has no 'input_ids' column (has {sorted(processed)})")
        return self.perplexity(processed["input_ids"], device=device)

    def metrics(self, outputs: list[Any], references: dict[str, list]) -> dict[str, float]:
        raise NotImplementedError("the language model is measured by perplexity (metrics_on_processed), not on decoded outputs")

    # -- generation -------------------------------------------------------------------
    def _sampling_settings(self, **given: Any) -> dict[str, Any]:
        """The generation options ``given`` (None: the config's default), checked."""
        settings = dict(self.parse_options({k: v for k, v in given.items() if v is not None}))
        check_sampling(settings["max_tokens"], settings["temperature"], settings["top_k"], InputError, "generate")
        return settings

    @torch.no_grad()
    def _generate(self, prompt_ids: Sequence[int], settings: Mapping[str, Any]) -> tuple[list[int], str]:
        size = self.config.vocab_size
        prompt = []
        for position, value in enumerate(prompt_ids):
            if isinstance(value, Tensor):
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
                raise InputError(f"generate: prompt id {value!r} at position {position} is not a token id in [0, {size})")
            prompt.append(value)
        eos = self.config.eos_id
        banned = sorted({self.config.pad_id, self.config.bos_id} - {eos})
        generator = torch.Generator().manual_seed(settings["seed"]) if settings["seed"] is not None else None
        device = self.embedding.weight.device
        was_training = self.training
        self.eval()
        try:
            # A line starts after <eos> in training: start generation from the same context.
            logits, state = self.forward_stream(torch.tensor([[eos, *prompt]], device=device))
            generated: list[int] = []
            stopped = "max_tokens"
            for _ in range(settings["max_tokens"]):
                probs = sampling_distribution(logits[0, -1], settings["temperature"], settings["top_k"], banned)
                # Sampled on the CPU so that a seed gives the same tokens on every device.
                token = int(torch.multinomial(probs.cpu(), 1, generator=generator))
                if token == eos and settings["stop_at_eos"]:
                    stopped = "eos"
                    break
                generated.append(token)
                logits, state = self.forward_stream(torch.tensor([[token]], device=device), state)
        finally:
            self.train(was_training)
        return generated, stopped

    def generate(
        self,
        prompt_ids: Sequence[int],
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        seed: int | None = None,
        stop_at_eos: bool | None = None,
    ) -> list[int]:
        """Sample a continuation of ``prompt_ids`` (ids only, the prompt not repeated).

        Starts from the state after ``<eos> prompt`` (the context of a line start). Unset
        arguments come from ``config.generation``. ``top_k=1`` is greedy decoding. Bad
        values (temperature <= 0, top_k < 1, an id outside the vocabulary) are ``InputError``.
        """
        settings = self._sampling_settings(
            max_tokens=max_tokens, temperature=temperature, top_k=top_k, seed=seed, stop_at_eos=stop_at_eos
        )
        return self._generate(prompt_ids, settings)[0]

    # -- ids → text -------------------------------------------------------------------
    def token_text(self, index: int) -> str:
        """The text of one id: ``<eos>`` is a line break, ``<pad>``/``<bos>`` nothing."""
        if index == self.config.eos_id:
            return "\n"
        if index in (self.config.pad_id, self.config.bos_id):
            return ""
        tokens = self.config.tokens
        return tokens[index] if tokens else f"<{index}>"

    def detokenize(self, ids: Sequence[int]) -> str:
        """Ids → text: words joined by spaces, characters concatenated, or sentencepiece pieces."""
        parts = [self.token_text(int(i)) for i in ids]
        mode = self.config.detokenize
        if mode == "concat":
            return "".join(parts)
        if mode == "sentencepiece":
            return "".join(parts).replace("\u2581", " ").replace(" \n", "\n").replace("\n ", "\n").strip(" ")
        return " ".join(p for p in parts if p).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")

    def _unknown_prompt_tokens(self, prompt: list[int], raw: Mapping[str, list], row: int) -> list[str]:
        positions = [p for p, i in enumerate(prompt) if i == self.config.unk_id]
        if not positions:
            return []
        source = raw.get(self.config.source_column) if self.config.source_column else None
        if source is not None and len(source[row]) == len(prompt):
            return [str(source[row][p]) for p in positions]
        return ["<unk>"] * len(positions)

    def _join_prompt(self, text: str | None, prompt: list[int], generated: list[int], continuation: str) -> str:
        """The prompt as the user typed it, followed by the continuation."""
        if text is None:
            return self.detokenize(prompt + generated)
        mode = self.config.detokenize
        if mode == "concat":
            return text + continuation
        if mode == "sentencepiece":
            # A piece without "▁" continues the prompt's last word ("the ca" + "t").
            return text.rstrip() + "".join(self.token_text(i) for i in generated).replace("\u2581", " ")
        if not continuation or continuation.startswith("\n"):
            return text.rstrip() + continuation
        return text.rstrip() + " " + continuation

    def decode(self, batch: dict[str, Any], options: Any = None) -> list[dict[str, Any]]:
        """Generate a continuation of each prompt, with the generation ``options`` of the call.

        One dict per prompt: ``text`` (prompt + continuation), ``continuation``, ``tokens``
        (the generated tokens), ``stopped_by`` (``eos`` or ``max_tokens``) and ``unknown``
        (prompt tokens outside the vocabulary, read as ``<unk>``).
        """
        raw = batch.get("_raw") or {}
        settings = dict(options if options is not None else self.parse_options({}))
        check_sampling(settings["max_tokens"], settings["temperature"], settings["top_k"], InputError, "generate")
        ids, lengths = batch["input_ids"], batch["input_ids_lengths"]
        outputs = []
        for row in range(ids.shape[0]):
            prompt = ids[row, : int(lengths[row])].tolist()
            text = raw.get(self.input_column, [None] * ids.shape[0])[row]
            unknown = self._unknown_prompt_tokens(prompt, raw, row)
            if unknown:
                message = (
                    f"prompt {row} {text!r:.60}: {len(unknown)} token(s) not in the vocabulary "
                    f"({', '.join(map(repr, unknown[:5]))}{'…' if len(unknown) > 5 else ''})"
                )
                if settings["on_unknown"] == "error":
                    raise InputError(message + "; rephrase the prompt, or pass on_unknown='warn' to read them as <unk>")
                logger.warning("seqlab: %s; they are read as <unk>", message)
            generated, stopped = self._generate(prompt, settings)
            continuation = self.detokenize(generated)
            full = self._join_prompt(text, prompt, generated, continuation)
            outputs.append({
                "text": full,
                "continuation": continuation,
                "tokens": [self.token_text(i) for i in generated],
                "stopped_by": stopped,
                "unknown": unknown,
            })
        return outputs

    # -- presenting -----------------------------------------------------------------------------
    def format_output(self, output: Any) -> str:
        """The prompt with its continuation (``text``), noting an empty continuation.

        >>> LanguageModel.format_output(None, {"text": "the film is good", "continuation": "good"})
        'the film is good'
        """
        if not isinstance(output, Mapping) or not isinstance(output.get("text"), str):
            return TaskModel.format_output(self, output)
        if not output.get("continuation"):
            return f"{output['text']}  (no continuation: the model ended the text at once)"
        return output["text"]


def generate_text(pipe: Any, prompt: str | Sequence[str], **settings: Any) -> Any:
    """``pipe.predict`` for a language-model pipeline, with the sampling settings checked by name.

    ``settings``: ``max_tokens``, ``temperature``, ``top_k``, ``seed``, ``stop_at_eos``,
    ``on_unknown`` (None: the model's default). One prompt → one dict; a list → a list.
    """
    if getattr(pipe, "task", None) != "lm":
        raise InputError(f"generate_text needs a language-model pipeline (task 'lm'), got task {getattr(pipe, 'task', None)!r}")
    given = {k: v for k, v in settings.items() if v is not None}
    if isinstance(prompt, str):
        return pipe.predict([prompt], **given)[0]
    return pipe.predict(list(prompt), **given)


# -- recipe -------------------------------------------------------------------------------------
@dataclass
class LMData:
    """Where the text is: TSV files (one column of text) or plain text (one sentence per line)."""

    train: str = "corpora/sentiment/train.tsv"
    dev: str | None = "corpora/sentiment/dev.tsv"
    #: ``auto``: ``.tsv`` → TSV, ``.csv`` → CSV, anything else plain text.
    format: Literal["auto", "tsv", "csv", "text"] = "auto"
    #: TSV/CSV: the column holding the text.
    text_column: str = "sentence"
    #: Plain text: one row per blank-line-separated block instead of per line.
    documents: bool = False
    #: Use only the first N training rows (None: all).
    limit_train: int | None = None


@dataclass
class LMRecipe(FileRecipe):
    """``pipelines/lm.yaml`` maps onto this.

    >>> from seqlab.core.config import from_dict
    >>> recipe = from_dict(LMRecipe, {"level": "char", "model": {"bptt": 50}})
    >>> [stage.kind for stage in recipe.stages()], recipe.stages()[1].config.input
    (['char_tokenizer', 'vocabulary'], 'chars')
    """

    task: str = "lm"
    data: LMData = field(default_factory=LMData)
    #: ``word`` (tokenizer + vocabulary), ``char`` (char_tokenizer + vocabulary) or ``subword`` (sentencepiece).
    level: Literal["word", "char", "subword"] = "word"
    tokenizer: WordTokenizerConfig = field(default_factory=lambda: WordTokenizerConfig(lowercase=True, split="punct"))
    char_tokenizer: CharTokenizerConfig = field(default_factory=CharTokenizerConfig)
    sentencepiece: SentencePieceConfig = field(default_factory=lambda: SentencePieceConfig(vocab_size=1000, hard_vocab_limit=False))
    vocabulary: VocabularyStageConfig = field(default_factory=VocabularyStageConfig)
    model: LMConfig = field(default_factory=LMConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, batch_size=20, lr=2e-3, clip_norm=0.5))
    output: str = "runs/lm"
    device: str = "auto"
    #: Prompts to continue after training, to show the model at work.
    examples: list[str] = field(default_factory=lambda: ["a man is", "the food"])

    def read(self, path: str, limit: int | None = None):
        """A text file (plain, TSV or CSV) as a Dataset with one column ``text``."""
        from ..data.paths import resolve_path
        from ..data.readers import read_text, read_tsv

        resolved = resolve_path(path, what="language-model data file")
        kind = self.data.format
        if kind == "auto":
            kind = {".tsv": "tsv", ".csv": "csv"}.get(Path(resolved).suffix.lower(), "text")
        if kind == "text":
            ds = read_text(resolved, documents=self.data.documents)
        else:
            ds = read_tsv(resolved, delimiter="," if kind == "csv" else "\t")
            if self.data.text_column not in ds.column_names:
                raise ConfigError(
                    f"data: {path!r} has no column {self.data.text_column!r} (columns: {ds.column_names}); "
                    "set data.text_column, or data.format: text for a plain text file"
                )
            import datasets

            texts = [t for t in ds[self.data.text_column] if t and t.strip()]
            ds = datasets.Dataset.from_dict({"text": texts})
        ds = first_rows(ds, limit)
        if len(ds) == 0:
            raise DataError(f"data: {path!r} holds no text")
        return ds

    def stages(self) -> list:
        """The front end for ``level``."""
        from ..text.tokenizers import CharTokenizer, WordTokenizer
        from ..text.vocab import VocabularyStage

        if self.level == "subword":
            from ..text.sentencepiece import SentencePieceTokenizer

            return [SentencePieceTokenizer(dataclasses.replace(self.sentencepiece, input="text", output="input_ids"))]
        tokenizer = WordTokenizer(self.tokenizer) if self.level == "word" else CharTokenizer(self.char_tokenizer)
        vocabulary = dataclasses.replace(self.vocabulary, input=tokenizer.provides[0], output="input_ids")
        return [tokenizer, VocabularyStage(vocabulary)]

    def build(self):
        from ..pipeline import Pipeline

        return Pipeline(self.stages(), LanguageModel, self.model, device=self.device)
