"""Constituency trees: PTB bracketing → :class:`Tree`, flat node arrays, and the tree stages.

The Stanford Sentiment Treebank (Socher et al., 2013) writes one tree per line in Penn
Treebank bracketing, with a sentiment label 0–4 on every node::

    (3 (2 It) (4 (2 's) (4 (3 (2 a) (4 (3 lovely) (2 film))) (2 .))))

A leaf is ``(label word)``, an inner node ``(label child child …)``. The treebank escapes
brackets and slashes in words (``-LRB-``, ``-RRB-``, ``\\/``, ``\\*``); :func:`parse_ptb`
restores them so leaves are ordinary tokens for the vocabulary and embedding stages.

A plain sentence has no parse. :func:`fallback_tree` gives it a *balanced binary tree*
over its words (split each span at its middle), documented in ``docs/trees.md``; it costs
accuracy against real parses (the benchmark reports how much).

For the model a tree is flattened to node arrays in post-order (children before their
parent, the root last): ``node_parent`` (the parent's index, -1 for the root),
``node_token`` (the leaf's index into the sentence's tokens, -1 for inner nodes) and
``node_labels``. ``seqlab.nn.trees.TreeBatch`` batches such arrays level by level.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from ..core.errors import ConfigError, DataError, InputError
from ..core.stage import Stage
from .labels import LabelEncoder, LabelEncoderConfig, sort_labels

#: Bracket and slash escapes of the Penn Treebank, as found in SST leaves.
PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}
_BACKSLASHED = re.compile(r"\\(.)")

#: How SST's 0–4 node labels become class labels. ``sst2``: 0–1 negative, 3–4 positive,
#: 2 (neutral) none — neutral sentences are dropped and neutral phrases carry no loss.
LABEL_SCHEMES = ("sst5", "sst2", "raw")
_SST2 = {"0": "negative", "1": "negative", "3": "positive", "4": "positive"}


@dataclasses.dataclass
class Tree:
    """A constituency tree node: a leaf has a ``word`` and no children.

    >>> t = parse_ptb("(3 (2 a) (4 (4 good) (2 -LRB-film-RRB-)))")
    >>> t.leaves(), t.label, t.children[1].label
    (['a', 'good', '(film)'], '3', '4')
    """

    label: str | None
    children: list["Tree"] = dataclasses.field(default_factory=list)
    word: str | None = None

    @property
    def is_leaf(self) -> bool:
        return self.word is not None

    def leaves(self) -> list[str]:
        return [n.word for n in self.postorder() if n.is_leaf]

    def postorder(self) -> Iterator["Tree"]:
        # Iterative: SST trees are up to ~55 levels deep, other treebanks deeper.
        stack: list[tuple[Tree, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded or node.is_leaf:
                yield node
            else:
                stack.append((node, True))
                stack.extend((child, False) for child in reversed(node.children))

    def to_ptb(self) -> str:
        """The bracketing (words escaped again; labels omitted where there are none)."""
        head = f"{self.label} " if self.label is not None else ""
        if self.is_leaf:
            return f"({head}{escape_word(self.word)})"
        return f"({head}{' '.join(c.to_ptb() for c in self.children)})"


def escape_word(word: str) -> str:
    """The inverse of :func:`unescape_word` for what must be escaped: backslashes, brackets, spaces."""
    word = word.replace("\\", "\\\\").replace("(", "-LRB-").replace(")", "-RRB-")
    return re.sub(r"[ \t\r\n\f\v]", "_", word)


def unescape_word(word: str) -> str:
    """``-LRB-`` → ``(``, ``\\/`` → ``/`` (and any other backslash escape)."""
    for escaped, plain in PTB_ESCAPES.items():
        word = word.replace(escaped, plain)
    return _BACKSLASHED.sub(r"\1", word)


def parse_ptb(text: str, where: str = "tree", line: int = 1) -> Tree:
    """One PTB-bracketed tree; malformed input is a ``DataError`` naming line and column.

    >>> parse_ptb("(1 (2 not) (3 bad)").label
    Traceback (most recent call last):
    seqlab.core.errors.DataError: tree: line 1, column 19: the bracket opened at column 1 is never closed
    """
    n = len(text)
    pos = 0
    # ASCII white space only: SST has tokens with a no-break space inside ("8\u00a01/2").
    space = " \t\r\n\f\v"

    def fail(at: int, message: str) -> DataError:
        return DataError(f"{where}: line {line}, column {at + 1}: {message}")

    def skip() -> None:
        nonlocal pos
        while pos < n and text[pos] in space:
            pos += 1

    def atom() -> str:
        nonlocal pos
        start = pos
        while pos < n and text[pos] not in space and text[pos] not in "()":
            pos += 1
        return text[start:pos]

    skip()
    if pos >= n or text[pos] != "(":
        raise fail(pos, "expected '(' to start a tree" + (f", found {text[pos:pos + 10]!r}" if pos < n else ", found the end of the line"))
    # An explicit stack instead of recursion: deep trees must not hit Python's recursion limit.
    stack: list[tuple[Tree, int]] = []
    root: Tree | None = None
    while True:
        skip()
        if pos >= n:
            opened = stack[-1][1] if stack else 0
            raise fail(pos, f"the bracket opened at column {opened + 1} is never closed")
        char = text[pos]
        if char == "(":
            if stack and stack[-1][0].is_leaf:
                raise fail(pos, f"a leaf ({stack[-1][0].word!r}) cannot have children")
            opened = pos
            pos += 1
            skip()
            label = None if pos < n and text[pos] == "(" else (atom() or None)
            skip()
            node = Tree(label)
            if pos < n and text[pos] not in "()":
                node.word = unescape_word(atom())
            elif pos < n and text[pos] == ")" and label is not None:
                node.label, node.word = None, unescape_word(label)  # "(word)": a leaf without a label
            if stack:
                stack[-1][0].children.append(node)
            stack.append((node, opened))
        elif char == ")":
            if not stack:
                raise fail(pos, "')' closes a bracket that was never opened")
            node, opened = stack.pop()
            if not node.is_leaf and not node.children:
                raise fail(opened, "empty brackets: a node needs a word or children")
            pos += 1
            if not stack:
                root = node
                break
        else:
            word = atom()
            raise fail(pos - len(word), f"unexpected word {word!r:.30} after the children of a node")
    skip()
    if pos < n:
        raise fail(pos, f"text after the end of the tree: {text[pos:pos + 20]!r}")
    return root


def map_label(label: str | None, scheme: str) -> str | None:
    """A node's SST label under ``scheme`` (``None``: no label, no loss)."""
    if label is None or scheme == "raw":
        return label
    if label not in ("0", "1", "2", "3", "4"):
        raise DataError(f"label {label!r:.20} is not an SST sentiment label 0–4 (use label_scheme 'raw' for other treebanks)")
    return label if scheme == "sst5" else _SST2.get(label)


def read_trees(path: str | Path) -> list[Tree]:
    """Every tree of a one-tree-per-line file (blank lines skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise DataError(f"cannot read trees from {str(path)!r}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    return [parse_ptb(text, str(path), number) for number, text in enumerate(lines, 1) if text.strip()]


def read_sentiment_trees(path: str | Path, scheme: str = "sst5") -> dict[str, list[str]]:
    """``{"text": [bracketed tree], "label": [root label]}``; sentences without a root label dropped.

    With ``sst2`` that drops the neutral sentences (SST dev: 1,101 → 872).
    """
    if scheme not in LABEL_SCHEMES:
        raise ConfigError(f"label scheme {scheme!r} is not one of {', '.join(LABEL_SCHEMES)}")
    path = Path(path)
    out: dict[str, list[str]] = {"text": [], "label": []}
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else None
    if lines is None:
        raise DataError(f"tree file {str(path)!r} does not exist")
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        tree = parse_ptb(text, str(path), number)
        try:
            label = map_label(tree.label, scheme)
        except DataError as err:
            raise DataError(f"{path}: line {number}: {err}") from None
        if label is not None:
            out["text"].append(text.strip())
            out["label"].append(label)
    return out


# -- plain sentences ------------------------------------------------------------------
_CLITIC = re.compile(r"(?i)(n't|'s|'re|'ve|'ll|'d|'m)$")
_PUNCT = re.compile(r"^([\"'`(\[{]*)(.*?)([\"'.,!?;:)\]}]*)$")


def ptb_words(text: str) -> list[str]:
    """Split a plain sentence roughly as the treebank does: punctuation and clitics apart.

    >>> ptb_words("It isn't a (great) film, is it?")
    ['It', 'is', "n't", 'a', '(', 'great', ')', 'film', ',', 'is', 'it', '?']
    """
    words: list[str] = []
    for chunk in text.split():
        if _CLITIC.fullmatch(chunk):  # already split ("it 's"): not a quote before "s"
            words.append(chunk)
            continue
        m = _PUNCT.match(chunk)
        lead, core, trail = m.group(1), m.group(2), m.group(3)
        # Straight double quotes become the treebank's `` and '' (the vocabulary knows those).
        words.extend("``" if p == '"' else p for p in _split_punct(lead))
        clitic = _CLITIC.search(core) if len(core) > 3 or core.lower() == "n't" else None
        if clitic and clitic.start() > 0:
            words.extend([core[: clitic.start()], core[clitic.start():]])
        elif core:
            words.append(core)
        words.extend("''" if p == '"' else p for p in _split_punct(trail))
    return words


def _split_punct(chars: str) -> list[str]:
    # "...", "!!", `` and '' stay one token, as in the treebank; other marks one each.
    return re.findall(r"``|''|\.{2,}|[!?]{2,}|.", chars)


def looks_like_tree(text: str) -> bool:
    """Whether ``text`` is meant as a bracketed tree rather than a plain sentence.

    It is when it starts with ``(`` and that bracket closes only at its very end (or never,
    which :func:`parse_ptb` then reports): ``(3 (2 a) (3 b))`` is a tree, ``( the film )
    works .`` and ``(Great) film (really)`` are sentences that happen to start with a bracket.

    >>> looks_like_tree("(3 (2 a) (3 b))"), looks_like_tree("( a ) b ."), looks_like_tree("(3 (2 a)")
    (True, False, True)
    """
    text = text.strip()
    if not text.startswith("("):
        return False
    depth = 0
    for i, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if depth == 0:
            return i == len(text) - 1
    return True


def fallback_tree(words: list[str], shape: str = "balanced") -> Tree:
    """A binary tree over ``words`` when no parse is given (labels none).

    ``balanced`` splits each span at its middle (left half gets the extra word);
    ``left`` / ``right`` branch all the way.

    >>> fallback_tree(["a", "b", "c"]).to_ptb()
    '((a) ((b) (c)))'
    """
    if not words:
        raise InputError("cannot build a tree over no words; give at least one word")
    leaves = [Tree(None, word=w) for w in words]
    if shape == "left":
        node = leaves[0]
        for leaf in leaves[1:]:
            node = Tree(None, [node, leaf])
        return node
    if shape == "right":
        node = leaves[-1]
        for leaf in reversed(leaves[:-1]):
            node = Tree(None, [leaf, node])
        return node

    def build(lo: int, hi: int) -> Tree:
        if hi - lo == 1:
            return leaves[lo]
        mid = lo + (hi - lo) // 2
        return Tree(None, [build(lo, mid), build(mid, hi)])

    return build(0, len(leaves))


def flatten(tree: Tree, scheme: str = "raw", lowercase: bool = False, fine_labels: bool = False) -> dict[str, list]:
    """Node arrays in post-order: ``tokens``, ``node_parent``, ``node_token``, ``node_labels``
    (+ ``node_fine_labels``, the treebank's own labels, with ``fine_labels``).

    >>> flatten(parse_ptb("(3 (2 a) (4 good))"))
    {'tokens': ['a', 'good'], 'node_parent': [2, 2, -1], 'node_token': [0, 1, -1], 'node_labels': ['2', '4', '3']}
    >>> flatten(parse_ptb("(3 (2 a) (4 good))"), "sst2", fine_labels=True)["node_fine_labels"]
    ['2', '4', '3']
    """
    nodes = list(tree.postorder())
    index = {id(node): i for i, node in enumerate(nodes)}
    parent = [-1] * len(nodes)
    token = [-1] * len(nodes)
    tokens: list[str] = []
    for i, node in enumerate(nodes):
        for child in node.children:
            parent[index[id(child)]] = i
        if node.is_leaf:
            token[i] = len(tokens)
            tokens.append(node.word.lower() if lowercase else node.word)
    labels = [map_label(node.label, scheme) or "" for node in nodes]
    out = {"tokens": tokens, "node_parent": parent, "node_token": token, "node_labels": labels}
    if fine_labels:
        out["node_fine_labels"] = [map_label(node.label, "raw") or "" for node in nodes]
    return out


# -- stages ------------------------------------------------------------------------------
@dataclasses.dataclass
class TreeReaderConfig:
    #: Column holding a PTB-bracketed tree (starts with "(") or a plain sentence.
    input: str = "text"
    lowercase: bool = False
    #: How node labels are mapped: ``sst5`` (0–4), ``sst2`` (negative/positive, neutral none), ``raw``.
    label_scheme: Literal["sst5", "sst2", "raw"] = "sst5"
    #: Tree over a plain sentence's words (see :func:`fallback_tree`).
    fallback: Literal["balanced", "left", "right"] = "balanced"
    #: Also give each node's label as the treebank has it (``node_fine_labels``, unmapped): the
    #: targets of fine-grained ensemble members (``model.fine_members``). The recipe sets it.
    fine_labels: bool = False

    def validate(self, where: str) -> None:
        if self.label_scheme not in LABEL_SCHEMES:
            raise ConfigError(f"{where}.label_scheme: {self.label_scheme!r} is not one of {', '.join(LABEL_SCHEMES)}")
        if self.fallback not in ("balanced", "left", "right"):
            raise ConfigError(f"{where}.fallback: {self.fallback!r} is not one of balanced, left, right")


class TreeReader(Stage):
    """Text → tree node arrays; the leaves become the ``tokens`` column.

    >>> TreeReader()({"text": ["(4 (2 -LRB-) (4 fun))", "so fun"]})["tokens"]
    [['(', 'fun'], ['so', 'fun']]
    """

    kind = "tree_reader"
    Config = TreeReaderConfig
    provides = ("tokens", "node_parent", "node_token", "node_labels")

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.takes = (self.config.input,)
        if self.config.fine_labels:
            self.provides = (*type(self).provides, "node_fine_labels")

    def tree(self, text: str, index: int = 0) -> Tree:
        """The parse given in ``text``, or the fallback tree over its words."""
        if not isinstance(text, str):
            raise InputError(f"TreeReader: row {index} is {type(text).__name__} {text!r:.60}; expected a string")
        if looks_like_tree(text):
            return parse_ptb(text, f"tree {index}")
        # Escapes are undone here too, so an SST sentence given as plain text reads the same.
        return fallback_tree([unescape_word(w) for w in ptb_words(text)], self.config.fallback)

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        cfg = self.config
        out: dict[str, list] = {name: [] for name in self.provides}
        for i, text in enumerate(batch[cfg.input]):
            for name, values in flatten(self.tree(text, i), cfg.label_scheme, cfg.lowercase, cfg.fine_labels).items():
                out[name].append(values)
        return out


class TreeLabelEncoder(LabelEncoder):
    """A :class:`LabelEncoder` that also encodes the per-node labels (``""`` → -1, no loss)."""

    kind = "tree_label_encoder"
    NODE_INPUT = "node_labels"
    NODE_OUTPUT = "node_label_ids"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.takes = (self.config.input, self.NODE_INPUT)
        self.provides = (self.config.output, self.NODE_OUTPUT)

    def fit(self, data: Any) -> "TreeLabelEncoder":
        super().fit(data)
        if self.config.labels is None:
            self._set_labels(sort_labels(set(self.labels) | self._node_labels_seen(data)))
        return self

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        return {**super().map(batch), self.NODE_OUTPUT: self._node_ids(batch)}

    def _node_labels_seen(self, data: Any) -> set[str]:
        """The non-empty labels of ``NODE_INPUT`` in ``data``."""
        from .vocab import column_rows

        return {label for row in column_rows(data, self.NODE_INPUT, type(self).__name__) for label in row if label}

    def _node_ids(self, batch: Mapping[str, list]) -> list[list[int]]:
        """``NODE_INPUT`` as class ids, ``""`` (no label) as -1."""
        return [[self.encode(label, i) if label else -1 for label in row] for i, row in enumerate(batch[self.NODE_INPUT])]


class TreeFineLabelEncoder(TreeLabelEncoder):
    """The treebank's own node labels (``node_fine_labels``) as class ids (``node_fine_ids``; ``""`` → -1).

    The targets of fine-grained ensemble members: under the ``sst2`` scheme the neutral phrases,
    which carry no binary label, still carry a fine one.

    >>> enc = TreeFineLabelEncoder().fit({"node_fine_labels": [["2", "4", "3"], ["0"]]})
    >>> enc.labels, enc({"node_fine_labels": [["4", "", "0"]]})
    (['0', '2', '3', '4'], {'node_fine_ids': [[3, -1, 0]]})
    """

    kind = "tree_fine_label_encoder"
    NODE_INPUT = "node_fine_labels"
    NODE_OUTPUT = "node_fine_ids"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.takes = (self.NODE_INPUT,)
        self.provides = (self.NODE_OUTPUT,)

    def fit(self, data: Any) -> "TreeFineLabelEncoder":
        seen = self._node_labels_seen(data)
        if self.config.labels is None:
            if not seen:
                raise DataError(f"{type(self).__name__}: the training trees have no node labels to learn")
            self._set_labels(sort_labels(seen))
        else:
            unknown = sorted(seen - set(self.labels))
            if unknown:
                raise DataError(f"{type(self).__name__}: node label(s) {unknown[:5]} outside the fixed label set {self.labels}")
        self.fitted = True
        return self

    def map(self, batch: Mapping[str, list]) -> dict[str, list]:
        return {self.NODE_OUTPUT: self._node_ids(batch)}


__all__ = [
    "LABEL_SCHEMES", "LabelEncoderConfig", "Tree", "TreeFineLabelEncoder", "TreeLabelEncoder", "TreeReader", "TreeReaderConfig",
    "escape_word", "fallback_tree", "flatten", "looks_like_tree", "map_label", "parse_ptb", "ptb_words", "read_sentiment_trees", "read_trees", "unescape_word",
]
