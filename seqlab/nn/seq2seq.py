"""An attentional encoder–decoder (sequence-to-sequence) network of recurrent layers.

- **Encoder**: source embeddings → bidirectional GRU or LSTM (``RecurrentEncoder``, over
  packed sequences), Bahdanau et al. (2015) §3.2; its outputs are the attention memory.
- **Bridge**: the decoder's initial state is ``tanh(W [→h_S; ←h_1])`` of the encoder's
  final states (Bahdanau et al. appendix A.2.2 use the backward state alone).
- **Decoder**: a GRU/LSTM over the previous target token; its state ``s_t`` queries the
  memory (``seqlab.nn.attention``: additive, dot or general), and the *attentional vector*
  ``h̃_t = tanh(W_c [c_t; s_t])`` gives the output distribution ``softmax(W_o h̃_t)``
  (Luong et al. 2015, eqs. 5–6; OpenNMT's "global attention" offers the same three
  scores in this layout). With **input feeding** (Luong §3.3) ``h̃_{t-1}`` is also fed to
  the next step, so the model knows what it attended to before.
- **Training** is teacher-forced: the decoder reads the reference prefix. Without input
  feeding nothing depends on the previous output, so the whole target is one fused RNN
  call and one batched attention; with it the decoder steps through time.
- **Loss**: cross-entropy with label smoothing (Szegedy et al. 2016, "Rethinking the
  Inception Architecture", §7), averaged over the non-pad target tokens.
- **Tied / shared embeddings**: ``tie_embeddings`` uses the target embedding matrix as
  ``W_o`` (Press & Wolf 2017, "Using the Output Embedding to Improve Language Models";
  Inan et al. 2017), which makes ``h̃`` as wide as the embeddings; ``share_embeddings``
  uses one matrix for source and target, which needs one joint vocabulary.

For CPU speed the attention keys of the memory are computed once per sentence
(``encode``), scores are batched matrix products, and search (``seqlab.nn.decoding``)
drops sentences from the batch as they finish.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..core.errors import ConfigError, InputError
from .attention import ATTENTION_KINDS, build_attention
from .decoding import Hypothesis, beam_search, check_beam_size, greedy_search
from .masking import lengths_to_mask
from .recurrent import RecurrentEncoder, check_lengths

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@dataclass
class Seq2SeqConfig:
    """Sizes and options of ``Seq2Seq`` (vocabulary sizes are filled in from the subword model)."""

    embedding_dim: int = 256
    #: Recurrent cell of encoder and decoder.
    cell: Literal["gru", "lstm"] = "gru"
    #: Encoder hidden size per direction (the memory is twice as wide).
    encoder_hidden: int = 256
    encoder_layers: int = 1
    decoder_hidden: int = 512
    decoder_layers: int = 1
    #: ``bahdanau`` (additive), ``dot`` or ``general`` (Luong, multiplicative).
    attention: Literal["bahdanau", "dot", "general"] = "bahdanau"
    #: Hidden size of the additive score (bahdanau only).
    attention_dim: int = 256
    #: Feed the previous attentional vector to the decoder (Luong §3.3); slower to train.
    input_feeding: bool = False
    dropout: float = 0.3
    label_smoothing: float = 0.1
    #: Tie the decoder's input embeddings and output projection.
    tie_embeddings: bool = False
    #: One embedding matrix for source and target (needs a joint vocabulary).
    share_embeddings: bool = False
    source_vocab_size: int = 0
    target_vocab_size: int = 0
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID

    def validate(self, where: str = "model") -> None:
        for name in ("embedding_dim", "encoder_hidden", "encoder_layers", "decoder_hidden", "decoder_layers", "attention_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{where}.{name} must be an integer >= 1, got {value!r}")
        if self.cell not in ("gru", "lstm"):
            raise ConfigError(f"{where}.cell must be 'gru' or 'lstm', got {self.cell!r}")
        if self.attention not in ATTENTION_KINDS:
            raise ConfigError(f"{where}.attention must be one of {', '.join(ATTENTION_KINDS)}, got {self.attention!r}")
        if self.attention == "dot" and self.decoder_hidden != 2 * self.encoder_hidden:
            raise ConfigError(
                f"{where}: dot attention compares the decoder state ({self.decoder_hidden}) with the bidirectional "
                f"encoder outputs (2 × {self.encoder_hidden}); set decoder_hidden = 2 × encoder_hidden or use general/bahdanau"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{where}.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"{where}.label_smoothing must be in [0, 1), got {self.label_smoothing}")

    @property
    def attentional_dim(self) -> int:
        """Width of ``h̃``: the embedding size when tied to the output projection."""
        return self.embedding_dim if self.tie_embeddings else self.decoder_hidden


class Seq2Seq(nn.Module):
    """Bidirectional recurrent encoder + attentional recurrent decoder.

    Ids: ``pad_id`` pads, ``bos_id`` starts every decoder input, ``eos_id`` ends every
    target. Targets given to ``forward``/``loss`` hold neither ``<bos>`` nor ``<eos>``.

    >>> cfg = Seq2SeqConfig(embedding_dim=8, encoder_hidden=8, decoder_hidden=8, attention_dim=8,
    ...                     source_vocab_size=12, target_vocab_size=12)
    >>> net = Seq2Seq(cfg)
    >>> src, src_len = torch.tensor([[5, 6, 7], [8, 9, 0]]), torch.tensor([3, 2])
    >>> tgt, tgt_len = torch.tensor([[4, 5], [6, 0]]), torch.tensor([2, 1])
    >>> float(net.loss(src, src_len, tgt, tgt_len).detach()) > 0
    True
    >>> hyps = net.eval().translate(src, src_len, beam_size=2, max_len_b=3)
    >>> len(hyps), hyps[0].attention.shape[1]
    (2, 3)
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        config.validate()
        if config.source_vocab_size < 4 or config.target_vocab_size < 4:
            raise ConfigError(
                f"Seq2Seq needs source_vocab_size and target_vocab_size >= 4 (the specials), got "
                f"{config.source_vocab_size} and {config.target_vocab_size}; they come from the fitted subword model"
            )
        if config.share_embeddings and config.source_vocab_size != config.target_vocab_size:
            raise ConfigError(
                f"share_embeddings needs one joint vocabulary, but the source has {config.source_vocab_size} "
                f"and the target {config.target_vocab_size} entries; use a joint subword model or share_embeddings: false"
            )
        self.config = config
        c = config
        self.target_embedding = nn.Embedding(c.target_vocab_size, c.embedding_dim, padding_idx=c.pad_id)
        if not c.share_embeddings:
            # Shared, the source table is not registered a second time: one tensor under
            # three names (source, target, tied output) is more than the model files need.
            self.source_table = nn.Embedding(c.source_vocab_size, c.embedding_dim, padding_idx=c.pad_id)
        self.dropout = nn.Dropout(c.dropout)
        self.encoder = RecurrentEncoder(
            c.embedding_dim, c.encoder_hidden, c.encoder_layers, cell=c.cell, bidirectional=True,
            dropout=c.dropout if c.encoder_layers > 1 else 0.0,
        )
        memory_size = self.encoder.output_size
        self.states_per_layer = 2 if c.cell == "lstm" else 1  # LSTM: h and c
        self.bridge = nn.Linear(memory_size, c.decoder_layers * c.decoder_hidden * self.states_per_layer)
        rnn_input = c.embedding_dim + (c.attentional_dim if c.input_feeding else 0)
        self.decoder = (nn.LSTM if c.cell == "lstm" else nn.GRU)(
            rnn_input, c.decoder_hidden, num_layers=c.decoder_layers, batch_first=True,
            dropout=c.dropout if c.decoder_layers > 1 else 0.0,
        )
        self.attention = build_attention(c.attention, c.decoder_hidden, memory_size, c.attention_dim)
        self.combine = nn.Linear(memory_size + c.decoder_hidden, c.attentional_dim, bias=False)
        self.output = nn.Linear(c.attentional_dim, c.target_vocab_size)
        if c.tie_embeddings:
            self.output.weight = self.target_embedding.weight
        self._init_embeddings()

    @property
    def source_embedding(self) -> nn.Embedding:
        """The source embedding table: the target's own with ``share_embeddings``."""
        return self.target_embedding if self.config.share_embeddings else self.source_table

    def _init_embeddings(self) -> None:
        # N(0, d^-1/2) keeps tied output logits O(1) at the start (as fairseq does); pad row 0.
        for embedding in {id(e): e for e in (self.source_embedding, self.target_embedding)}.values():
            nn.init.normal_(embedding.weight, std=self.config.embedding_dim ** -0.5)
            with torch.no_grad():
                embedding.weight[self.config.pad_id].zero_()

    # -- encoder -----------------------------------------------------------------------
    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[tuple, tuple]:
        """Source ids ``(B, S)`` → ``(state, memory)`` for ``step``; both tuples of batch-first tensors.

        ``memory`` is ``(outputs (B, S, 2H), attention keys, mask (B, S))``; the keys are
        computed here once per sentence.
        """
        if src.dim() != 2:
            raise InputError(f"Seq2Seq.encode: source ids must be (B, S), got {tuple(src.shape)}")
        check_lengths(src_lengths, src.shape[0], src.shape[1], where="source lengths")
        embedded = self.dropout(self.source_embedding(src))
        outputs, final, _ = self.encoder(embedded, src_lengths)
        mask = lengths_to_mask(src_lengths.to(src.device), src.shape[1])
        outputs = self.dropout(outputs)
        memory = (outputs, self.attention.keys(outputs), mask)
        c = self.config
        init = torch.tanh(self.bridge(final)).view(src.shape[0], c.decoder_layers * self.states_per_layer, c.decoder_hidden)
        state: tuple = (init,)
        if c.input_feeding:
            state = state + (outputs.new_zeros(src.shape[0], c.attentional_dim),)
        return state, memory

    def _rnn_state(self, hidden: Tensor):
        """Batch-first ``(B, layers·k, H)`` → what ``nn.GRU``/``nn.LSTM`` take."""
        layers = self.config.decoder_layers
        h = hidden.transpose(0, 1).contiguous()
        if self.config.cell == "lstm":
            return h[:layers].contiguous(), h[layers:].contiguous()
        return h

    def _state_tensor(self, rnn_state) -> Tensor:
        if self.config.cell == "lstm":
            rnn_state = torch.cat(list(rnn_state), dim=0)
        return rnn_state.transpose(0, 1)

    def _attend(self, states: Tensor, memory: tuple) -> tuple[Tensor, Tensor]:
        """Decoder states ``(B, T, H)`` → attentional vectors ``h̃ (B, T, A)`` and weights ``(B, T, S)``."""
        outputs, keys, mask = memory
        context, weights = self.attention(states, keys, outputs, mask)
        return torch.tanh(self.combine(torch.cat([context, states], dim=-1))), weights

    # -- decoder --------------------------------------------------------------------------
    def attentional_states(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced attentional vectors ``h̃ (B, T, A)`` and attention ``(B, T, S)`` for decoder inputs ``tgt_in``."""
        state, memory = self.encode(src, src_lengths)
        embedded = self.dropout(self.target_embedding(tgt_in))
        if not self.config.input_feeding:
            states, _ = self.decoder(embedded, self._rnn_state(state[0]))
            return self._attend(states, memory)
        hidden, feed = self._rnn_state(state[0]), state[1]
        steps, all_weights = [], []
        for t in range(tgt_in.shape[1]):
            x = torch.cat([embedded[:, t], feed], dim=-1).unsqueeze(1)
            out, hidden = self.decoder(x, hidden)
            feed, w = self._attend(out, memory)
            feed = feed.squeeze(1)
            steps.append(feed)
            all_weights.append(w)
            feed = self.dropout(feed)  # what the next step reads
        return torch.stack(steps, dim=1), torch.cat(all_weights, dim=1)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor]:
        """Teacher-forced logits ``(B, T, V)`` and attention ``(B, T, S)`` for decoder inputs ``tgt_in``."""
        attentional, weights = self.attentional_states(src, src_lengths, tgt_in)
        return self.output(self.dropout(attentional)), weights

    def step(self, tokens: Tensor, state: tuple, memory: tuple) -> tuple[Tensor, tuple, Tensor]:
        """One decoder step for ``seqlab.nn.decoding``: previous tokens ``(N,)`` → log-probs ``(N, V)``."""
        embedded = self.dropout(self.target_embedding(tokens))
        if self.config.input_feeding:
            embedded = torch.cat([embedded, state[1]], dim=-1)
        out, hidden = self.decoder(embedded.unsqueeze(1), self._rnn_state(state[0]))
        attentional, weights = self._attend(out, memory)
        attentional = attentional.squeeze(1)
        logits = self.output(self.dropout(attentional))
        new_state: tuple = (self._state_tensor(hidden),)
        if self.config.input_feeding:
            new_state = new_state + (attentional,)
        if logits.dtype in (torch.float16, torch.bfloat16):  # search sums log-probs: not in half precision
            logits = logits.float()
        return torch.log_softmax(logits, dim=-1), new_state, weights.squeeze(1)

    def teacher_forcing_pair(self, tgt: Tensor, tgt_lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Targets ``(B, T)`` without specials → decoder input ``<bos> y`` and output ``y <eos>``, ``(B, T+1)``."""
        c = self.config
        batch = tgt.shape[0]
        bos = tgt.new_full((batch, 1), c.bos_id)
        pad = tgt.new_full((batch, 1), c.pad_id)
        tgt_in = torch.cat([bos, tgt], dim=1)
        tgt_out = torch.cat([tgt, pad], dim=1)
        tgt_out = tgt_out.scatter(1, tgt_lengths.to(tgt.device).view(-1, 1), c.eos_id)
        # The pads after each target stay pads in the input; they are never predicted from.
        return tgt_in, tgt_out

    def loss(self, src: Tensor, src_lengths: Tensor, tgt: Tensor, tgt_lengths: Tensor) -> Tensor:
        """Label-smoothed cross-entropy per target token (``<eos>`` included, pads excluded)."""
        tgt_in, tgt_out = self.teacher_forcing_pair(tgt, tgt_lengths)
        attentional, _ = self.attentional_states(src, src_lengths, tgt_in)
        # The output projection is the costliest layer: apply it to the real tokens only.
        valid = tgt_out.ne(self.config.pad_id)
        logits = self.output(self.dropout(attentional[valid]))
        if logits.dtype in (torch.float16, torch.bfloat16):  # the softmax in full precision under AMP
            logits = logits.float()
        return nn.functional.cross_entropy(logits, tgt_out[valid], label_smoothing=self.config.label_smoothing)

    @torch.no_grad()
    def translate(
        self,
        src: Tensor,
        src_lengths: Tensor,
        beam_size: int = 1,
        max_len_a: float = 1.5,
        max_len_b: int = 10,
        length_penalty: Literal["gnmt", "mean", "none"] = "gnmt",
        length_alpha: float = 0.6,
    ) -> list[Hypothesis]:
        """Greedy (``beam_size=1``) or beam search; one ``Hypothesis`` per source sentence."""
        check_beam_size(beam_size)
        src_lengths = torch.as_tensor(src_lengths).to(src.device)
        state, memory = self.encode(src, src_lengths)
        c = self.config
        common = dict(bos_id=c.bos_id, eos_id=c.eos_id, max_len_a=max_len_a, max_len_b=max_len_b,
                      banned=(c.pad_id, c.bos_id), length_penalty=length_penalty, length_alpha=length_alpha)
        if beam_size == 1:
            return greedy_search(self.step, state, memory, src_lengths, **common)
        return beam_search(self.step, state, memory, src_lengths, beam_size=beam_size, **common)
