"""Tree-structured encoders, batched level by level, with a node-by-node reference.

Equations (``σ`` the logistic sigmoid, ``⊙`` the element-wise product; in a constituency
tree only leaves carry a word ``x``, so inner nodes see their children only):

Recursive neural network (Socher et al., 2011, "Parsing natural scenes and natural
language with recursive neural networks")::

    leaf:   h = tanh(W_x x + b_x)                  (a projection, so words and phrases may differ in size)
    inner:  h = tanh(W [h_left; h_right] + b)

Child-sum Tree-LSTM (Tai, Socher & Manning, 2015, eqs. 2–8), children ``k`` of node ``j``::

    h̃_j  = Σ_k h_k
    i_j  = σ(W_i x_j + U_i h̃_j + b_i)
    f_jk = σ(W_f x_j + U_f h_k + b_f)              one forget gate per child
    o_j  = σ(W_o x_j + U_o h̃_j + b_o)
    u_j  = tanh(W_u x_j + U_u h̃_j + b_u)
    c_j  = i_j ⊙ u_j + Σ_k f_jk ⊙ c_k
    h_j  = o_j ⊙ tanh(c_j)

Binary (N-ary, N = 2) Tree-LSTM (Tai et al., eqs. 9–14): separate matrices for the left
and right child, and one forget gate per child that sees both children::

    g_j  = U^L h_jL + U^R h_jR + b                 g = (i, o, u, f_L, f_R) pre-activations
    c_j  = σ(i) ⊙ tanh(u) + σ(f_L) ⊙ c_jL + σ(f_R) ⊙ c_jR
    h_j  = σ(o) ⊙ tanh(c_j)

Leaves of both Tree-LSTMs have no children: ``c = σ(i) ⊙ tanh(u)``, ``h = σ(o) ⊙ tanh(c)``
with the gates from ``W x + b_W`` (Tai et al.'s leaf module). A missing child (a unary node
under a binary encoder) is a zero state.

**Batching.** :class:`TreeBatch` holds a batch of trees as one flat array of nodes, grouped
by *height* (leaves 0, a parent one more than its highest child). Every node of one height
has all its children computed, so each level is one gather of the children's states and
one matrix product for the whole batch — about ``max height`` steps instead of one per
node. :func:`naive_encode` evaluates the same weights node by node from :meth:`node`, the
reference the tests compare against (values and gradients) and the benchmark times.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import Tensor, nn

from ..core.errors import InputError

State = tuple[Tensor, "Tensor | None"]  # (h, c); c is None for the recursive network


@dataclasses.dataclass
class TreeLevel:
    """The nodes of one height and where their children are (flat node indices)."""

    nodes: Tensor  #: (n,) nodes of this height
    left: Tensor  #: (n,) first child; ``num_nodes`` (the zero row) when missing
    right: Tensor  #: (n,) second child; ``num_nodes`` when missing
    child: Tensor  #: (k,) every child of these nodes …
    slot: Tensor  #: (k,) … and the position of its parent in ``nodes``
    lr: Tensor  #: (2n,) left and right child of each node, interleaved: a gather ``.view(n, 2 * H)`` is ``[h_L; h_R]``


@dataclasses.dataclass
class TreeBatch:
    """A batch of trees as flat node arrays, grouped by height.

    >>> tb = TreeBatch.from_parents([[2, 2, -1], [-1]], [[0, 1, -1], [0]], tokens_per_tree=2)
    >>> tb.num_nodes, tb.roots.tolist(), tb.leaf_tokens.tolist(), [l.nodes.tolist() for l in tb.levels]
    (4, [2, 3], [0, 1, 2], [[2]])
    """

    num_nodes: int
    #: Flat index of each tree's root.
    roots: Tensor
    #: Leaf nodes, and the flat index of each one's token in a ``(trees × tokens_per_tree)`` matrix.
    leaf_nodes: Tensor
    leaf_tokens: Tensor
    levels: list[TreeLevel]
    #: Python lists for the node-by-node reference: children of each node, tree of each node.
    children: list[list[int]]
    tree_of: Tensor
    max_children: int

    @classmethod
    def from_parents(
        cls, parents: Sequence[Sequence[int]], node_tokens: Sequence[Sequence[int]], tokens_per_tree: int,
        device: torch.device | str | None = None,
    ) -> "TreeBatch":
        """Build from per-tree ``node_parent`` / ``node_token`` lists in post-order (see ``seqlab.text.trees``)."""
        children: list[list[int]] = []
        height: list[int] = []
        tree_of: list[int] = []
        roots, leaf_nodes, leaf_tokens = [], [], []
        for b, (parent, token) in enumerate(zip(parents, node_tokens)):
            base = len(children)
            n = len(parent)
            children.extend([] for _ in range(n))
            height.extend([0] * n)
            tree_of.extend([b] * n)
            root = None
            for i in range(n):
                p = parent[i]
                if p < 0:
                    if root is not None:
                        raise InputError(f"tree {b}: nodes {root} and {i} both have no parent; a tree has one root")
                    root = i
                    continue
                if not i < p < n:
                    raise InputError(f"tree {b}: node {i} has parent {p}; nodes must be in post-order (children first)")
                children[base + p].append(base + i)
                if height[base + i] + 1 > height[base + p]:
                    height[base + p] = height[base + i] + 1
            if root is None:
                raise InputError(f"tree {b} has no root (every node has a parent)")
            roots.append(base + root)
            for i in range(n):
                if token[i] >= 0:
                    if children[base + i]:
                        raise InputError(f"tree {b}: node {i} has a word and children")
                    leaf_nodes.append(base + i)
                    leaf_tokens.append(b * tokens_per_tree + token[i])
                elif not children[base + i]:
                    raise InputError(f"tree {b}: node {i} has neither a word nor children")
        total = len(children)
        by_height: dict[int, list[int]] = {}
        for node, h in enumerate(height):
            if h > 0:
                by_height.setdefault(h, []).append(node)
        long = dict(dtype=torch.long, device=device)
        levels = []
        for h in sorted(by_height):
            nodes = by_height[h]
            kids = [children[n] for n in nodes]
            left = [k[0] for k in kids]
            right = [k[1] if len(k) > 1 else total for k in kids]
            child = [c for k in kids for c in k]
            slot = [s for s, k in enumerate(kids) for _ in k]
            levels.append(TreeLevel(*(torch.tensor(v, **long) for v in (nodes, left, right, child, slot, [c for pair in zip(left, right) for c in pair]))))
        return cls(
            num_nodes=total, roots=torch.tensor(roots, **long), leaf_nodes=torch.tensor(leaf_nodes, **long),
            leaf_tokens=torch.tensor(leaf_tokens, **long), levels=levels, children=children,
            tree_of=torch.tensor(tree_of, **long), max_children=max((len(k) for k in children), default=0),
        )

    @classmethod
    def from_padded(cls, node_parent: Tensor, node_token: Tensor, lengths: Tensor, tokens_per_tree: int) -> "TreeBatch":
        """From the padded ``node_parent`` / ``node_token`` columns of a collated batch."""
        counts = lengths.tolist()
        parents = [row[:n] for row, n in zip(node_parent.tolist(), counts)]
        tokens = [row[:n] for row, n in zip(node_token.tolist(), counts)]
        return cls.from_parents(parents, tokens, tokens_per_tree, device=node_parent.device)

    @staticmethod
    def valid_nodes(lengths: Tensor, max_nodes: int) -> Tensor:
        """Flat node index → position in a padded ``(trees × max_nodes)`` layout."""
        ar = torch.arange(max_nodes, device=lengths.device)
        mask = ar.unsqueeze(0) < lengths.unsqueeze(1)
        return mask.reshape(-1).nonzero().squeeze(1)


class TreeEncoder(nn.Module):
    """Base: ``forward(x_leaf, tree) → h`` of every node, ``(num_nodes, hidden_size)``."""

    #: Children per node the encoder accepts (None: any number).
    max_children: int | None = 2

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def check(self, tree: TreeBatch) -> None:
        if self.max_children is not None and tree.max_children > self.max_children:
            raise InputError(
                f"{type(self).__name__} takes at most {self.max_children} children per node, but a tree has a node "
                f"with {tree.max_children}; binarize the trees or use the child-sum Tree-LSTM"
            )

    def node(self, x: Tensor | None, children: list[State]) -> State:
        """One node from the equations: a leaf (``x``, no children) or an inner node."""
        raise NotImplementedError


class RecursiveEncoder(TreeEncoder):
    """Socher et al. (2011): ``h = tanh(W [h_left; h_right] + b)``.

    >>> enc = RecursiveEncoder(3, 4)
    >>> tb = TreeBatch.from_parents([[2, 2, -1]], [[0, 1, -1]], tokens_per_tree=2)
    >>> enc(torch.randn(2, 3), tb).shape
    torch.Size([3, 4])
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.leaf = nn.Linear(input_size, hidden_size)
        self.compose = nn.Linear(2 * hidden_size, hidden_size)

    def forward(self, x_leaf: Tensor, tree: TreeBatch) -> Tensor:
        self.check(tree)
        h = x_leaf.new_zeros(tree.num_nodes + 1, self.hidden_size)
        h = h.index_copy(0, tree.leaf_nodes, torch.tanh(self.leaf(x_leaf)).to(h.dtype))
        for level in tree.levels:
            # One gather gives [h_left; h_right] row by row; the buffer is written in place
            # (autograd allows it: a gather keeps only its indices for the backward pass).
            # Under autocast the product comes back in bf16; the buffer stays in x's dtype.
            new = torch.tanh(self.compose(h[level.lr].view(-1, 2 * self.hidden_size)))
            h.index_copy_(0, level.nodes, new.to(h.dtype))
        return h[:-1]

    def node(self, x: Tensor | None, children: list[State]) -> State:
        if not children:
            return torch.tanh(self.leaf.weight @ x + self.leaf.bias), None
        left = children[0][0]
        right = children[1][0] if len(children) > 1 else torch.zeros_like(left)
        return torch.tanh(self.compose.weight @ torch.cat([left, right]) + self.compose.bias), None


class ChildSumTreeLSTM(TreeEncoder):
    """Tai et al. (2015), child-sum Tree-LSTM: any number of children, one forget gate each.

    Parameters: ``W`` (leaf input → i, o, u), ``U_iou`` (child sum → i, o, u), ``U_f`` (one child → f).
    At inner nodes of a constituency tree ``x = 0``, so ``W_f x`` is 0 and ``b_f`` is ``U_f``'s bias.
    """

    max_children = None

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.W = nn.Linear(input_size, 3 * hidden_size)
        self.U_iou = nn.Linear(hidden_size, 3 * hidden_size)
        self.U_f = nn.Linear(hidden_size, hidden_size)

    @staticmethod
    def _cell(iou: Tensor, carried: Tensor | float) -> tuple[Tensor, Tensor]:
        i, o, u = iou.chunk(3, -1)
        c = torch.sigmoid(i) * torch.tanh(u) + carried
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, x_leaf: Tensor, tree: TreeBatch) -> Tensor:
        H = self.hidden_size
        h_leaf, c_leaf = self._cell(self.W(x_leaf), 0.0)
        h = x_leaf.new_zeros(tree.num_nodes + 1, H).index_copy(0, tree.leaf_nodes, h_leaf)
        c = x_leaf.new_zeros(tree.num_nodes + 1, H).index_copy(0, tree.leaf_nodes, c_leaf)
        for level in tree.levels:
            n = level.nodes.shape[0]
            h_child, c_child = h[level.child], c[level.child]
            h_sum = h_child.new_zeros(n, H).index_add(0, level.slot, h_child)
            f = torch.sigmoid(self.U_f(h_child))
            fc = h_child.new_zeros(n, H).index_add(0, level.slot, f * c_child)
            h_new, c_new = self._cell(self.U_iou(h_sum), fc)
            h.index_copy_(0, level.nodes, h_new)
            c.index_copy_(0, level.nodes, c_new)
        return h[:-1]

    def node(self, x: Tensor | None, children: list[State]) -> State:
        if not children:
            return self._cell(self.W.weight @ x + self.W.bias, 0.0)
        h_sum = sum(hk for hk, _ in children)
        carried = sum(torch.sigmoid(self.U_f.weight @ hk + self.U_f.bias) * ck for hk, ck in children)
        return self._cell(self.U_iou.weight @ h_sum + self.U_iou.bias, carried)


class BinaryTreeLSTM(TreeEncoder):
    """Tai et al. (2015), binary (N-ary, N = 2) Tree-LSTM: ``U = [U^L U^R]`` → (i, o, u, f_L, f_R).

    >>> enc = BinaryTreeLSTM(3, 4)
    >>> tb = TreeBatch.from_parents([[2, 2, -1]], [[0, 1, -1]], tokens_per_tree=2)
    >>> torch.allclose(enc(torch.ones(2, 3), tb), naive_encode(enc, torch.ones(2, 3), tb))
    True
    """

    def __init__(self, input_size: int, hidden_size: int, hand_backward: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        self.W = nn.Linear(input_size, 3 * hidden_size)  # leaves: i, o, u
        self.U = nn.Linear(2 * hidden_size, 5 * hidden_size)  # inner: i, o, u, f_L, f_R
        #: Levels through :class:`_BinaryLevels` (hand-written backward pass) rather than autograd.
        self.hand_backward = hand_backward

    def forward(self, x_leaf: Tensor, tree: TreeBatch) -> Tensor:
        self.check(tree)
        i, o, u = self.W(x_leaf).chunk(3, -1)
        c_leaf = torch.sigmoid(i) * torch.tanh(u)
        h_leaf = torch.sigmoid(o) * torch.tanh(c_leaf)
        if self.hand_backward:
            return _BinaryLevels.apply(h_leaf, c_leaf, self.U.weight, self.U.bias, tree)
        return self._levels_autograd(h_leaf, c_leaf, tree)

    def _levels_autograd(self, h_leaf: Tensor, c_leaf: Tensor, tree: TreeBatch) -> Tensor:
        H = self.hidden_size
        h = h_leaf.new_zeros(tree.num_nodes + 1, H).index_copy(0, tree.leaf_nodes, h_leaf)
        c = h_leaf.new_zeros(tree.num_nodes + 1, H).index_copy(0, tree.leaf_nodes, c_leaf)
        for level in tree.levels:
            # Interleaved gathers: rows [h_L; h_R] feed U directly, c as (n, 2, H) meets the two
            # forget gates without slicing (each slice would cost a full-size zero in the backward pass).
            h_lr = h[level.lr].view(-1, 2 * H)
            c_lr = c[level.lr].view(-1, 2, H)
            i, o, u, f = self.U(h_lr).split([H, H, H, 2 * H], 1)
            c_new = torch.sigmoid(i) * torch.tanh(u) + (torch.sigmoid(f).view(-1, 2, H) * c_lr).sum(1)
            h.index_copy_(0, level.nodes, torch.sigmoid(o) * torch.tanh(c_new))
            c.index_copy_(0, level.nodes, c_new)
        return h[:-1]

    def node(self, x: Tensor | None, children: list[State]) -> State:
        H = self.hidden_size
        if not children:
            i, o, u = (self.W.weight @ x + self.W.bias).split(H)
            c = torch.sigmoid(i) * torch.tanh(u)
            return torch.sigmoid(o) * torch.tanh(c), c
        (h_l, c_l) = children[0]
        h_r, c_r = children[1] if len(children) > 1 else (torch.zeros_like(h_l), torch.zeros_like(c_l))
        U_l, U_r = self.U.weight[:, :H], self.U.weight[:, H:]
        i, o, u, f_l, f_r = (U_l @ h_l + U_r @ h_r + self.U.bias).split(H)
        c = torch.sigmoid(i) * torch.tanh(u) + torch.sigmoid(f_l) * c_l + torch.sigmoid(f_r) * c_r
        return torch.sigmoid(o) * torch.tanh(c), c


class _BinaryLevels(torch.autograd.Function):
    """The binary Tree-LSTM's inner levels with a hand-written backward pass (backpropagation through structure).

    Autograd over the level loop allocates a full-size zero gradient for every gather of the
    children's states (four per level); here the backward pass walks the levels top-down,
    reads each node's accumulated ``dh``/``dc``, and scatter-adds into its children's rows in
    place. ``U``'s gradient is one product per level. Tests hold it to the node-by-node
    reference and to ``gradcheck``.
    """

    @staticmethod
    def forward(ctx, h_leaf: Tensor, c_leaf: Tensor, weight: Tensor, bias: Tensor, tree: TreeBatch) -> Tensor:
        H = h_leaf.shape[1]
        N = tree.num_nodes
        # Under autocast the products run in its dtype (bf16), both ways; states, gates and
        # gradients stay in the weights' dtype, as autocast keeps element-wise work.
        device = h_leaf.device.type
        mm = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype
        w_mm, b_mm = weight.to(mm), bias.to(mm)  # no copy when mm is the weights' dtype
        h = h_leaf.new_zeros(N + 1, H, dtype=weight.dtype)
        c = h_leaf.new_zeros(N + 1, H, dtype=weight.dtype)
        h.index_copy_(0, tree.leaf_nodes, h_leaf.to(weight.dtype))
        c.index_copy_(0, tree.leaf_nodes, c_leaf.to(weight.dtype))
        saved = []
        for level in tree.levels:
            x = h[level.lr].view(-1, 2 * H).to(mm)
            c_lr = c[level.lr].view(-1, 2, H)
            gates = torch.addmm(b_mm, x, w_mm.t()).to(weight.dtype)
            i, o, f = torch.sigmoid(gates[:, :H]), torch.sigmoid(gates[:, H:2 * H]), torch.sigmoid(gates[:, 3 * H:])
            u = torch.tanh(gates[:, 2 * H:3 * H])
            c_new = i * u + (f.view(-1, 2, H) * c_lr).sum(1)
            tc = torch.tanh(c_new)
            h.index_copy_(0, level.nodes, o * tc)
            c.index_copy_(0, level.nodes, c_new)
            saved.append((x, c_lr, i, o, u, f, tc))
        ctx.tree, ctx.saved, ctx.H = tree, saved, H
        ctx.save_for_backward(w_mm)
        ctx.float_dtype = weight.dtype
        return h[:N]

    @staticmethod
    def backward(ctx, grad_h: Tensor):
        (weight,) = ctx.saved_tensors  # in the products' dtype
        tree, H, dtype = ctx.tree, ctx.H, ctx.float_dtype
        low = weight.dtype if weight.dtype != dtype else None
        N = tree.num_nodes
        grad_h = grad_h.to(dtype)
        dh = grad_h.new_zeros(N + 1, H)
        dh[:N] = grad_h
        dc = grad_h.new_zeros(N + 1, H)
        d_weight = torch.zeros_like(weight, dtype=dtype)
        d_bias = weight.new_zeros(weight.shape[0], dtype=dtype)
        for level, (x, c_lr, i, o, u, f, tc) in zip(reversed(tree.levels), reversed(ctx.saved)):
            # Parents sit on higher levels, so every node's dh and dc are complete when its level comes.
            dh_n = dh[level.nodes]
            dc_n = dc[level.nodes] + dh_n * o * (1 - tc * tc)
            d_gates = torch.cat([
                dc_n * u * i * (1 - i),                                           # i
                dh_n * tc * o * (1 - o),                                          # o
                dc_n * i * (1 - u * u),                                           # u
                (dc_n.unsqueeze(1) * c_lr * (f * (1 - f)).view(-1, 2, H)).view(-1, 2 * H),  # f_L, f_R
            ], 1)
            d_bias += d_gates.sum(0)
            if low is not None:  # mixed dtypes; the float path accumulates in place (no temporary)
                d_gates = d_gates.to(low)
                d_weight += (d_gates.t() @ x).to(dtype)
                dh.index_add_(0, level.lr, (d_gates @ weight).to(dtype).view(-1, H))
            else:
                d_weight.addmm_(d_gates.t(), x)
                dh.index_add_(0, level.lr, (d_gates @ weight).view(-1, H))
            dc.index_add_(0, level.lr, (dc_n.unsqueeze(1) * f.view(-1, 2, H)).view(-1, H))
        return dh[tree.leaf_nodes], dc[tree.leaf_nodes], d_weight, d_bias, None


TREE_ENCODERS = {"recursive": RecursiveEncoder, "childsum": ChildSumTreeLSTM, "binary": BinaryTreeLSTM}


def naive_encode(encoder: TreeEncoder, x_leaf: Tensor, tree: TreeBatch) -> Tensor:
    """The same encoder evaluated node by node (children first), from :meth:`TreeEncoder.node`.

    The reference for the level-batched ``forward``, and the slow baseline it is timed against.
    """
    encoder.check(tree)
    leaf_row = {node: k for k, node in enumerate(tree.leaf_nodes.tolist())}
    states: list[State | None] = [None] * tree.num_nodes
    # Flat order is post-order within each tree, so children come before their parent.
    for index in range(tree.num_nodes):
        if index in leaf_row:
            states[index] = encoder.node(x_leaf[leaf_row[index]], [])
        else:
            states[index] = encoder.node(None, [states[k] for k in tree.children[index]])
    return torch.stack([s[0] for s in states])


def make_tree_encoder(name: str, input_size: int, hidden_size: int) -> TreeEncoder:
    from ..core.config import suggest
    from ..core.errors import ConfigError

    if name not in TREE_ENCODERS:
        raise ConfigError(f"unknown tree encoder {name!r}{suggest(name, list(TREE_ENCODERS))}; known: {', '.join(TREE_ENCODERS)}")
    return TREE_ENCODERS[name](input_size, hidden_size)
