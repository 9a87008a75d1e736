"""Sentiment over parse trees: words → embedding → tree encoder → a softmax at every node.

As Tai, Socher & Manning (2015, "Improved semantic representations from tree-structured
LSTM networks") train on the Stanford Sentiment Treebank: each node's state is classified,
the loss covers every labelled node (``node_loss: true``) or the root only, and the
sentence's label is the root's. Encoders: the recursive network (Socher et al., 2011), the
child-sum and the binary Tree-LSTM (``seqlab.nn.trees``), batched level by level.

Input at prediction time is a PTB-bracketed tree (text that starts with ``(`` and whose first
bracket closes at its end: ``seqlab.text.trees.looks_like_tree``; labels in it are ignored) or a plain sentence, which gets a balanced binary tree over its words
(``seqlab.text.trees.fallback_tree``). ``pipe(text, return_phrases=True)`` adds the label of
every phrase (every node), and the tree with the predicted labels.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from ..core.errors import ConfigError, DataError, InputError
from ..core.options import Option
from ..data.splits import FileRecipe, first_rows
from ..embeddings.word2vec import Word2VecConfig, copy_pretrained_vectors, optional_word2vec_stage
from ..nn.charenc import check_char_sizes
from ..nn.dropout import rows_seen_once, unk_dropout
from ..text.trees import TreeReaderConfig
from ..text.vocab import VocabularyStageConfig
from ..text.wordchars import WordCharsConfig
from ..train.config import TrainConfig
from .sentiment import WordClassifier

ENCODERS = ("recursive", "childsum", "binary")
CHAR_ENCODERS = ("none", "cnn", "lstm")


@dataclass
class TreeSentimentConfig:
    """Model settings; ``vocab_size``, ``pad_id`` and ``labels`` come from the fitted stages."""

    embedding_dim: int = 100
    encoder: Literal["recursive", "childsum", "binary"] = "binary"
    hidden_size: int = 150
    #: Dropout on the word vectors and on the node states before the classifier.
    dropout: float = 0.5
    #: Train on every labelled node (Tai et al.); false: on the root only.
    node_loss: bool = True
    #: Freeze pretrained embeddings (word2vec) instead of fine-tuning them.
    freeze_embeddings: bool = False
    #: Probability that, in training, a leaf whose word occurs once in the training trees becomes
    #: ``<unk>`` (Lample et al. 2016's singleton replacement; they use 0.5). Without it the
    #: ``<unk>`` row, which every word unseen in training looks up, is never trained.
    singleton_dropout: float = 0.0
    #: Networks in the ensemble: each has its own embedding, encoder and classifier, from its own
    #: random initialisation; they train side by side on the same batches (the loss is the mean
    #: of theirs) and predict with the mean of their probabilities. 1: a single network.
    members: int = 1
    #: Further networks in the ensemble trained on the treebank's own (fine-grained) node labels,
    #: read by the reader as they are (``0``–``4`` in SST) rather than through ``label_scheme``.
    #: Under ``sst2`` they learn from the neutral phrases too, which carry no binary label. They
    #: predict a class by summing the probabilities of the fine labels that map to it (``0``, ``1``
    #: → negative; ``3``, ``4`` → positive), renormalised without those that map to none (neutral).
    fine_members: int = 0
    #: A character-level encoder of each word, concatenated to its embedding (a ``word_chars``
    #: stage gives the characters): ``none``, ``cnn`` (Ma & Hovy 2016) or ``lstm`` (Lample et al. 2016).
    #: It gives words unseen in training a vector from their spelling.
    char_encoder: Literal["none", "cnn", "lstm"] = "none"
    #: Character embedding size and filters (cnn) / units per direction (lstm); None: the paper's.
    char_embedding_dim: int | None = None
    char_hidden_size: int | None = None
    num_chars: int = 0
    vocab_size: int = 0
    pad_id: int = 0
    #: The vocabulary's ``<unk>`` id (None: it has none), from the fitted stages.
    unk_id: int | None = 1
    labels: list[str] = field(default_factory=list)
    #: The fine labels and the class each maps to (an index into ``labels``; -1: none), from the fitted stages.
    fine_labels: list[str] = field(default_factory=list)
    fine_to_label: list[int] = field(default_factory=list)

    def validate(self, where: str = "model") -> None:
        for name in ("dropout", "singleton_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{where}.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.singleton_dropout > 0 and self.unk_id is None:
            raise ConfigError(f"{where}.singleton_dropout needs a vocabulary with an <unk> entry (vocabulary.specials)")
        if self.encoder not in ENCODERS:
            raise ConfigError(f"{where}.encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if self.char_encoder not in CHAR_ENCODERS:
            raise ConfigError(f"{where}.char_encoder must be one of {', '.join(CHAR_ENCODERS)}, got {self.char_encoder!r}")
        check_char_sizes(where, self.char_embedding_dim, self.char_hidden_size)
        for name in ("embedding_dim", "hidden_size", "members"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(self, name)}")
        if self.fine_members < 0:
            raise ConfigError(f"{where}.fine_members must be >= 0, got {self.fine_members}")
        if len(self.fine_to_label) != len(self.fine_labels):
            raise ConfigError(f"{where}: {len(self.fine_labels)} fine labels but {len(self.fine_to_label)} entries in fine_to_label")


def _phrase_texts(tokens: list[str], parents: list[int], node_token: list[int]) -> list[str]:
    """The words under each node (post-order: children are complete before their parent)."""
    spans: list[list[str]] = [[] for _ in parents]
    for i, (p, t) in enumerate(zip(parents, node_token)):
        if t >= 0:
            spans[i] = [tokens[t]]
        if p >= 0:
            spans[p].extend(spans[i])
    return [" ".join(s) for s in spans]


def _labelled_tree(tokens: list[str], parents: list[int], node_token: list[int], labels: list[str]) -> str:
    """PTB bracketing of the tree with ``labels`` (one per node) as node labels."""
    parts: list[list[str]] = [[] for _ in parents]
    text = [""] * len(parents)
    for i, (p, t) in enumerate(zip(parents, node_token)):
        inside = tokens[t] if t >= 0 else " ".join(parts[i])
        text[i] = f"({labels[i]} {inside})"
        if p >= 0:
            parts[p].append(text[i])
    return text[-1]


class TreeSentimentModel(WordClassifier):
    """Tree classifier; ``decode`` gives ``{"label", "score", "scores"}`` (+ ``"phrases"``, ``"tree"``).

    >>> cfg = TreeSentimentConfig(embedding_dim=4, hidden_size=3, vocab_size=10, labels=["neg", "pos"])
    >>> model = TreeSentimentModel(cfg).eval()
    >>> batch = {"input_ids": torch.tensor([[4, 5]]), "input_ids_lengths": torch.tensor([2]),
    ...          "node_parent": torch.tensor([[2, 2, -1]]), "node_parent_lengths": torch.tensor([3]),
    ...          "node_token": torch.tensor([[0, 1, -1]]), "node_token_lengths": torch.tensor([3])}
    >>> sorted(model.decode(batch)[0]["scores"])
    ['neg', 'pos']
    """

    task = "tree_sentiment"
    Config = TreeSentimentConfig
    options = {
        "return_phrases": Option(bool, False, "add every phrase's label and score, and the labelled tree"),
    }
    input_column = "text"
    target_columns = ("label",)
    selection_metric = "accuracy"
    selection_mode = "max"
    missing_stages = "the tree sentiment pipeline needs a vocabulary stage and a tree_label_encoder stage"

    @classmethod
    def configure(cls, config: TreeSentimentConfig, stages: list) -> TreeSentimentConfig:
        from ..text.trees import TreeFineLabelEncoder, map_label

        # The class labels come from the tree_label_encoder, never from the fine one beside it.
        config = super().configure(config, [s for s in stages if not isinstance(s, TreeFineLabelEncoder)])
        vocab = next(s for s in stages if hasattr(s, "vocab"))
        config = replace(config, unk_id=vocab.vocab.unk_id)
        if config.fine_members > 0:
            fine = next((s for s in stages if isinstance(s, TreeFineLabelEncoder)), None)
            reader = next((s for s in stages if getattr(s, "kind", "") == "tree_reader"), None)
            if fine is None or reader is None:
                raise ConfigError("model.fine_members needs a tree_reader with fine_labels: true and a tree_fine_label_encoder "
                                  "stage (the tree_sentiment recipe adds them)")
            scheme = reader.config.label_scheme
            index = {label: i for i, label in enumerate(config.labels)}
            mapping = [index.get(map_label(label, scheme) or "", -1) for label in fine.labels]
            if all(m < 0 for m in mapping):
                raise ConfigError(f"model.fine_members: none of the fine labels {fine.labels} maps to a class of "
                                  f"{config.labels} under label_scheme {scheme!r}")
            config = replace(config, fine_labels=list(fine.labels), fine_to_label=mapping)
        if config.char_encoder != "none":
            chars = next((s for s in stages if getattr(s, "kind", "") == "word_chars"), None)
            if chars is None:
                raise ConfigError(f"model.char_encoder {config.char_encoder!r} needs a word_chars stage after the tree_reader")
            config = replace(config, num_chars=len(chars.table))
        return config

    def __init__(self, config: TreeSentimentConfig) -> None:
        super().__init__(config)
        config.validate()
        if config.vocab_size < 1 or len(config.labels) < 2:
            raise ConfigError(
                f"tree sentiment model needs vocab_size >= 1 and >= 2 labels (got {config.vocab_size}, {config.labels}); "
                "build it with Pipeline.fit or TreeSentimentModel.from_stages"
            )
        from ..nn.trees import make_tree_encoder

        from ..nn.dropout import Dropout

        if config.char_encoder != "none" and config.num_chars < 3:
            raise ConfigError("model.char_encoder needs num_chars from a fitted word_chars stage (build it with Pipeline.fit)")

        if config.fine_members > 0 and not config.fine_labels:
            raise ConfigError("model.fine_members needs fine_labels from a fitted tree_fine_label_encoder stage "
                              "(build it with Pipeline.fit or TreeSentimentModel.from_stages)")

        def member(outputs: int = len(config.labels)) -> dict[str, nn.Module]:
            parts: dict[str, nn.Module] = {
                "embedding": nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_id)}
            size = config.embedding_dim
            if config.char_encoder != "none":
                from ..nn.charenc import char_encoder

                parts["chars"] = char_encoder(config.char_encoder, config.num_chars, config.char_embedding_dim,
                                              config.char_hidden_size)
                size += parts["chars"].output_size
            parts["encoder"] = make_tree_encoder(config.encoder, size, config.hidden_size)
            parts["head"] = nn.Linear(parts["encoder"].output_size, outputs)
            return parts

        # The first member keeps the single network's parameter names (pipelines saved before
        # ensembles load unchanged); the others live in ``extra_members``.
        first = member()
        self.embedding, self.encoder, self.head = first["embedding"], first["encoder"], first["head"]
        self.char_encoder = first.get("chars")
        self.dropout = Dropout(config.dropout)
        self.extra_members = nn.ModuleList(nn.ModuleDict(member()) for _ in range(config.members - 1))
        #: ``fine_members`` networks, classifying into ``fine_labels``.
        self.fine_networks = nn.ModuleList(nn.ModuleDict(member(len(config.fine_labels))) for _ in range(config.fine_members))
        # Fine label → class, as a (fine labels × classes) 0/1 matrix (a buffer: it follows the device).
        fold = torch.zeros(len(config.fine_labels), len(config.labels))
        for f, c in enumerate(config.fine_to_label):
            if c >= 0:
                fold[f, c] = 1.0
        self.register_buffer("fine_fold", fold, persistent=False)
        #: Vocabulary rows seen once in the training trees (``singleton_dropout``); set by ``train_batches``.
        self._singleton_rows: torch.Tensor | None = None

    def members(self) -> list[tuple[nn.Module, nn.Module | None, nn.Module, nn.Module]]:
        """``(embedding, char_encoder or None, encoder, head)`` of each network in the ensemble: the class
        networks first, then the fine-grained ones (the last ``len(fine_networks)``)."""
        first = [(self.embedding, self.char_encoder, self.encoder, self.head)]
        return first + [(m["embedding"], m["chars"] if "chars" in m else None, m["encoder"], m["head"])
                        for m in (*self.extra_members, *self.fine_networks)]

    def initialize(self, stages: list) -> None:
        for embedding, *_ in self.members():
            copy_pretrained_vectors(embedding, stages, self.config.freeze_embeddings)

    def train_batches(self, columns: Any, config: TrainConfig, epoch: int) -> None:
        """The default batches; first notes the words seen once in training (``singleton_dropout``)."""
        if self.config.singleton_dropout > 0:
            ids = torch.tensor([i for row in columns["input_ids"] for i in row], dtype=torch.long)
            once = rows_seen_once(ids, self.config.vocab_size, (self.config.pad_id, self.config.unk_id))
            self._singleton_rows = once.to(self.embedding.weight.device)  # where the steps index it
        return None

    def pad_values(self, training: bool) -> dict[str, Any]:
        # input_ids first: it is the length column, so tokens/s counts words, not nodes.
        pads: dict[str, Any] = {"input_ids": self.config.pad_id, "node_parent": -1, "node_token": -1}
        if self.config.char_encoder != "none":
            pads["char_ids"] = 0
        if training:
            pads["labels"] = None
            pads["node_label_ids"] = -1
            if self.config.fine_members > 0:
                pads["node_fine_ids"] = -1
        return pads

    def check_input(self, value: Any, index: int) -> Any:
        value = super().check_input(value, index)
        from ..text.trees import looks_like_tree, parse_ptb

        if looks_like_tree(value):
            try:
                parse_ptb(value, f"input {index}")
            except DataError as err:
                raise InputError(str(err)) from None
        return value

    # -- the network ---------------------------------------------------------------------
    def node_logits(self, batch: dict[str, torch.Tensor]):
        """Each member's logits of every node (a list of ``(num_nodes, labels)``) and the :class:`TreeBatch`."""
        from ..nn.trees import TreeBatch

        ids = batch["input_ids"]
        tree = TreeBatch.from_padded(batch["node_parent"], batch["node_token"], batch["node_parent_lengths"], ids.shape[1])
        leaf_ids = ids.reshape(-1)[tree.leaf_tokens]
        if self.training and self.config.singleton_dropout > 0 and self._singleton_rows is not None:
            rare = self._singleton_rows[leaf_ids]
            leaf_ids = unk_dropout(leaf_ids, self.config.unk_id, self.config.singleton_dropout, rare)
        if self.char_encoder is not None:
            chars = batch["char_ids"]
            chars = chars.reshape(-1, chars.shape[-1])[tree.leaf_tokens]  # (leaves, max_word_length)
            char_lengths = (chars != 0).sum(1).clamp(min=1)
            chars = chars[:, : int(char_lengths.max())] if len(char_lengths) else chars
        logits = []
        for embedding, char_encoder, encoder, head in self.members():
            x = embedding(leaf_ids)
            if char_encoder is not None:
                x = torch.cat([x, char_encoder(chars, char_lengths).to(x.dtype)], dim=-1)
            # Dropout after picking the leaves: padding positions need no mask.
            states = encoder(self.dropout(x), tree)
            logits.append(head(self.dropout(states)))
        return logits, tree

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from ..nn.trees import TreeBatch

        logits, tree = self.node_logits(batch)
        node_loss = self.config.node_loss
        if node_loss or self.fine_networks:
            flat = TreeBatch.valid_nodes(batch["node_parent_lengths"], batch["node_label_ids"].shape[1])
        targets = batch["node_label_ids"].reshape(-1)[flat] if node_loss else batch["labels"]
        if self.fine_networks:  # the fine-grained networks learn the treebank's own labels
            fine_targets = batch["node_fine_ids"].reshape(-1)[flat]
            fine_targets = fine_targets if node_loss else fine_targets[tree.roots]
        losses = [nn.functional.cross_entropy((x if node_loss else x[tree.roots]).float(),
                                              fine_targets if self._is_fine(k) else targets, ignore_index=-1)
                  for k, x in enumerate(logits)]
        return torch.stack(losses).mean()

    def _is_fine(self, k: int) -> bool:
        """Whether network ``k`` of :meth:`members` is a fine-grained one (they come last)."""
        return k > len(self.extra_members)

    def class_probabilities(self, logits: list[torch.Tensor]) -> torch.Tensor:
        """The ensemble's class probabilities of every node: the mean over its networks, a fine-grained
        network's probabilities summed into the classes its labels map to and renormalised."""
        probs = []
        for k, x in enumerate(logits):
            p = x.float().softmax(-1)
            if self._is_fine(k):
                p = p @ self.fine_fold
                p = p / p.sum(-1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)
            probs.append(p)
        return torch.stack(probs).mean(0)

    @torch.no_grad()
    def decode(self, batch: dict[str, Any], options: Any = None) -> list[dict[str, Any]]:
        options = options if options is not None else self.parse_options({})
        raw = batch.get("_raw") or {}
        phrases = options.return_phrases
        logits, tree = self.node_logits(batch)
        probs = self.class_probabilities(logits).cpu()
        labels = self.config.labels
        best_score, best = probs.max(-1)
        best_score, best = best_score.tolist(), best.tolist()
        roots = tree.roots.tolist()
        outputs = []
        for b, root in enumerate(roots):
            row = probs[root].tolist()
            out: dict[str, Any] = {"label": labels[best[root]], "score": best_score[root], "scores": dict(zip(labels, row))}
            if phrases:
                out.update(self._phrases(batch, raw, b, best, best_score))
            outputs.append(out)
        return outputs

    def _phrases(self, batch: dict[str, Any], raw: dict[str, list], b: int, best: list, score: list) -> dict[str, Any]:
        n = int(batch["node_parent_lengths"][b])
        start = int(batch["node_parent_lengths"][:b].sum())  # the tree's first node in the flat arrays
        parents = batch["node_parent"][b, :n].tolist()
        node_token = batch["node_token"][b, :n].tolist()
        tokens = raw["tokens"][b] if "tokens" in raw else [str(t) for t in batch["input_ids"][b].tolist()]
        names = [self.config.labels[best[start + i]] for i in range(n)]
        texts = _phrase_texts(tokens, parents, node_token)
        return {
            "phrases": [{"text": texts[i], "label": names[i], "score": score[start + i]} for i in range(n)],
            "tree": _labelled_tree(tokens, parents, node_token, names),
        }

    def metrics(self, outputs: list[dict[str, Any]], references: dict[str, list]) -> dict[str, float]:
        from ..metrics.classification import accuracy, macro_f1

        gold = [str(v) for v in references["label"]]
        predicted = [o["label"] for o in outputs]
        return {"accuracy": accuracy(gold, predicted), "macro_f1": macro_f1(gold, predicted)}

    def format_output(self, output: dict[str, Any]) -> str:
        """``label (score)``, then the tree with each phrase's label when it was asked for."""
        line = f"{output['label']} ({output['score']:.3f})"
        if "tree" in output:
            line += "\n" + output["tree"]
        return line


# -- recipe ---------------------------------------------------------------------------------
@dataclass
class TreeSentimentData:
    """Where the trees are: one PTB-bracketed tree per line, a label on (at least) the root."""

    train: str = "corpora/sentiment/trees/train.txt"
    dev: str | None = "corpora/sentiment/trees/dev.txt"
    #: Use only the first N training trees (None: all).
    limit_train: int | None = None


@dataclass
class TreeSentimentRecipe(FileRecipe):
    """``pipelines/tree_sentiment.yaml`` maps onto this."""

    task: str = "tree_sentiment"
    data: TreeSentimentData = field(default_factory=TreeSentimentData)
    reader: TreeReaderConfig = field(default_factory=lambda: TreeReaderConfig(label_scheme="sst2", lowercase=True))
    vocabulary: VocabularyStageConfig = field(default_factory=VocabularyStageConfig)
    #: Optional word2vec stage settings (None: embeddings learned from scratch).
    word2vec: Word2VecConfig | None = None
    #: The characters of each word, used when ``model.char_encoder`` is not ``none``.
    word_chars: WordCharsConfig = field(default_factory=WordCharsConfig)
    model: TreeSentimentConfig = field(default_factory=TreeSentimentConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, batch_size=25, lr=2e-3))
    output: str = "runs/tree_sentiment"
    device: str = "auto"
    #: Inputs to predict after training: a bracketed tree, or a plain sentence (balanced fallback tree).
    examples: list[str] = field(default_factory=lambda: ["(3 (2 a) (3 (3 great) (2 film)))", "a dull mess"])

    def read(self, path: str, limit: int | None = None):
        """A tree file as a Dataset with columns ``text`` (the bracketing) and ``label`` (the root's)."""
        import datasets

        from ..data.paths import resolve_path
        from ..text.trees import read_sentiment_trees

        ds = datasets.Dataset.from_dict(read_sentiment_trees(resolve_path(path), self.reader.label_scheme))
        return first_rows(ds, limit)

    def build(self):
        from ..pipeline import Pipeline
        from ..text.trees import TreeFineLabelEncoder, TreeLabelEncoder, TreeReader
        from ..text.vocab import VocabularyStage
        from ..text.wordchars import WordChars

        fine = self.model.fine_members > 0
        stages = [TreeReader(replace(self.reader, fine_labels=True) if fine else self.reader), VocabularyStage(self.vocabulary)]
        if self.model.char_encoder != "none":
            stages.append(WordChars(self.word_chars))
        stages.extend(optional_word2vec_stage(self.word2vec))
        stages.append(TreeLabelEncoder())
        if fine:
            stages.append(TreeFineLabelEncoder())
        return Pipeline(stages, TreeSentimentModel, self.model, device=self.device)
