import math
import random

import pytest
import torch

from seqlab.core.errors import InputError
from seqlab.nn.trees import BinaryTreeLSTM, ChildSumTreeLSTM, RecursiveEncoder, TreeBatch, _BinaryLevels, naive_encode
from seqlab.text.trees import Tree, flatten, parse_ptb


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def batch_of(*trees: str | Tree) -> tuple[TreeBatch, int]:
    flats = [flatten(parse_ptb(t) if isinstance(t, str) else t) for t in trees]
    width = max(len(f["tokens"]) for f in flats)
    return TreeBatch.from_parents([f["node_parent"] for f in flats], [f["node_token"] for f in flats], width), width


def set_(linear: torch.nn.Linear, weight, bias) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight, dtype=torch.float64))
        linear.bias.copy_(torch.tensor(bias, dtype=torch.float64))


X = [0.5, -1.0, 2.0]  # the words a, b, c (1-dimensional)


def test_tree_batch_groups_nodes_by_height_across_trees():
    tb, width = batch_of("((a) ((b) (c)))", "((d) (e))")
    # tree 0: a0 b1 c2 bc3 root4; tree 1: d5 e6 root7
    assert tb.num_nodes == 8 and tb.roots.tolist() == [4, 7] and width == 3
    assert tb.leaf_nodes.tolist() == [0, 1, 2, 5, 6] and tb.leaf_tokens.tolist() == [0, 1, 2, 3, 4]
    assert [lv.nodes.tolist() for lv in tb.levels] == [[3, 7], [4]]
    assert [lv.left.tolist() for lv in tb.levels] == [[1, 5], [0]]
    assert [lv.right.tolist() for lv in tb.levels] == [[2, 6], [3]]
    assert [lv.lr.tolist() for lv in tb.levels] == [[1, 2, 5, 6], [0, 3]]
    with pytest.raises(InputError, match="post-order"):
        TreeBatch.from_parents([[-1, 0]], [[-1, 0]], 1)


def test_recursive_network_on_a_hand_computed_tree():
    enc = RecursiveEncoder(1, 1).double()
    set_(enc.leaf, [[0.8]], [0.1])
    set_(enc.compose, [[0.6, -0.4]], [0.2])
    tb, _ = batch_of("(((a) (b)) (c))")
    h = enc(torch.tensor(X, dtype=torch.float64).unsqueeze(1), tb).squeeze(1)
    ha, hb, hc = (math.tanh(0.8 * x + 0.1) for x in X)
    hab = math.tanh(0.6 * ha - 0.4 * hb + 0.2)
    root = math.tanh(0.6 * hab - 0.4 * hc + 0.2)
    assert h.tolist() == pytest.approx([ha, hb, hab, hc, root], abs=1e-12)
    assert root == pytest.approx(0.1932, abs=1e-4)  # by hand: tanh(0.6·0.6164 − 0.4·0.9354 + 0.2)


def test_binary_tree_lstm_on_a_hand_computed_tree():
    enc = BinaryTreeLSTM(1, 1).double()
    wi, wo, wu, bi, bo, bu = 0.7, -0.3, 0.9, 0.1, 0.2, -0.1
    set_(enc.W, [[wi], [wo], [wu]], [bi, bo, bu])
    U = [[0.5, -0.2], [0.2, 0.2], [0.8, -0.5], [0.3, 0.1], [-0.4, 0.6]]  # rows i, o, u, f_L, f_R; columns left, right
    b = [0.05, 0.0, 0.1, 1.0, -1.0]
    set_(enc.U, U, b)
    tb, _ = batch_of("(((a) (b)) (c))")
    h = enc(torch.tensor(X, dtype=torch.float64).unsqueeze(1), tb).squeeze(1)

    def leaf(x):
        c = sig(wi * x + bi) * math.tanh(wu * x + bu)
        return sig(wo * x + bo) * math.tanh(c), c

    def inner(left, right):
        g = [U[k][0] * left[0] + U[k][1] * right[0] + b[k] for k in range(5)]
        c = sig(g[0]) * math.tanh(g[2]) + sig(g[3]) * left[1] + sig(g[4]) * right[1]
        return sig(g[1]) * math.tanh(c), c

    a, bb, c = (leaf(x) for x in X)
    ab = inner(a, bb)
    root = inner(ab, c)
    assert h.tolist() == pytest.approx([a[0], bb[0], ab[0], c[0], root[0]], abs=1e-12)
    # The right-child forget gate must see the right child: swapping the children changes the root.
    assert inner(c, ab)[0] != pytest.approx(root[0], abs=1e-6)


def test_child_sum_tree_lstm_on_a_hand_computed_ternary_tree():
    enc = ChildSumTreeLSTM(1, 1).double()
    wi, wo, wu, bi, bo, bu = 0.7, -0.3, 0.9, 0.1, 0.2, -0.1
    set_(enc.W, [[wi], [wo], [wu]], [bi, bo, bu])
    ui, uo, uu, ci, co, cu = 0.5, -0.6, 0.8, 0.0, 0.1, 0.2
    set_(enc.U_iou, [[ui], [uo], [uu]], [ci, co, cu])
    uf, bf = 1.5, 0.3
    set_(enc.U_f, [[uf]], [bf])
    tb, _ = batch_of("((a) (b) (c))")
    h = enc(torch.tensor(X, dtype=torch.float64).unsqueeze(1), tb).squeeze(1)

    leaves = []
    for x in X:
        c = sig(wi * x + bi) * math.tanh(wu * x + bu)
        leaves.append((sig(wo * x + bo) * math.tanh(c), c))
    hs = sum(hk for hk, _ in leaves)
    c_root = sig(ui * hs + ci) * math.tanh(uu * hs + cu) + sum(sig(uf * hk + bf) * ck for hk, ck in leaves)
    h_root = sig(uo * hs + co) * math.tanh(c_root)
    assert h.tolist() == pytest.approx([*(hk for hk, _ in leaves), h_root], abs=1e-12)


def random_tree(rng: random.Random, words: list[str], max_arity: int, unary: float) -> Tree:
    if len(words) == 1:
        node = Tree(None, word=words[0])
    else:
        arity = rng.randint(2, min(max_arity, len(words)))
        cuts = sorted(rng.sample(range(1, len(words)), arity - 1))
        spans = [words[i:j] for i, j in zip([0, *cuts], [*cuts, len(words)])]
        node = Tree(None, [random_tree(rng, s, max_arity, unary) for s in spans])
    return Tree(None, [node]) if rng.random() < unary else node


@pytest.mark.parametrize("cls, max_arity", [
    (RecursiveEncoder, 2), (BinaryTreeLSTM, 2), (ChildSumTreeLSTM, 4),
    (lambda i, h: BinaryTreeLSTM(i, h, hand_backward=False), 2),
])
def test_level_batched_equals_node_by_node_in_value_and_gradient(cls, max_arity):
    rng = random.Random(7)
    torch.manual_seed(3)
    trees = [random_tree(rng, [f"w{i}" for i in range(n)], max_arity, unary=0.15) for n in (1, 2, 5, 9, 13, 4)]
    tb, width = batch_of(*trees)
    assert len(tb.levels) < tb.num_nodes / 3  # truly batched: far fewer steps than nodes
    enc = cls(3, 4).double()
    x = torch.randn(len(trees) * width, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(tb.num_nodes, 4, dtype=torch.float64)

    def run(fn):
        enc.zero_grad()
        x.grad = None
        h = fn(enc, x[tb.leaf_tokens], tb)
        (h * weights).sum().backward()
        return h.detach(), x.grad.clone(), {n: p.grad.clone() for n, p in enc.named_parameters()}

    h_batched, gx_batched, gp_batched = run(lambda e, xl, t: e(xl, t))
    h_naive, gx_naive, gp_naive = run(naive_encode)
    assert torch.allclose(h_batched, h_naive, atol=1e-12)
    assert torch.allclose(gx_batched, gx_naive, atol=1e-12)
    for name in gp_naive:
        assert torch.allclose(gp_batched[name], gp_naive[name], atol=1e-12), name
    assert gx_batched.abs().sum() > 0


@pytest.mark.parametrize("cls, max_arity", [
    (RecursiveEncoder, 2), (BinaryTreeLSTM, 2), (ChildSumTreeLSTM, 4),
    (lambda i, h: BinaryTreeLSTM(i, h, hand_backward=False), 2),
])
def test_encoders_train_under_bf16_autocast(cls, max_arity):
    """Mixed precision (CUDA's default ``amp: bf16``, the CPU's ``cpu_amp``): values and
    gradients stay within bf16 rounding of float32's, in float32 tensors. The hand-written
    backward once multiplied a float32 gradient with bf16 activations and failed."""
    rng = random.Random(11)
    torch.manual_seed(5)
    trees = [random_tree(rng, [f"w{i}" for i in range(n)], max_arity, unary=0.15) for n in (3, 8, 13, 1)]
    tb, width = batch_of(*trees)
    enc = cls(16, 32)
    x = torch.randn(len(trees) * width, 16, requires_grad=True)
    weights = torch.randn(tb.num_nodes, 32)

    def run(bf16: bool):
        enc.zero_grad()
        x.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            h = enc(x[tb.leaf_tokens], tb)
        (h.float() * weights).sum().backward()
        return h.detach(), x.grad.clone(), {n: p.grad.clone() for n, p in enc.named_parameters()}

    h32, gx32, gp32 = run(False)
    h16, gx16, gp16 = run(True)
    assert x.grad.dtype == torch.float32 and all(g.dtype == torch.float32 for g in gp16.values())
    assert not torch.equal(h16.float(), h32)  # the products did run in bf16
    assert torch.allclose(h16.float(), h32, atol=3e-2)
    scale = gx32.abs().max()
    assert torch.allclose(gx16, gx32, atol=3e-2 * scale)
    for name in gp32:
        assert torch.allclose(gp16[name], gp32[name], atol=3e-2 * gp32[name].abs().max()), name


def test_binary_encoders_refuse_a_node_with_three_children():
    tb, width = batch_of("((a) (b) (c))")
    with pytest.raises(InputError, match="at most 2 children per node, but a tree has a node with 3"):
        BinaryTreeLSTM(2, 2)(torch.zeros(width, 2), tb)


def test_binary_tree_lstm_hand_backward_passes_gradcheck():
    torch.manual_seed(0)
    tb, width = batch_of("(((a) (b)) ((c) (d) ))", "(((e)) (f))")
    enc = BinaryTreeLSTM(2, 2).double()
    x = torch.randn(width * 2, 2, dtype=torch.float64, requires_grad=True)
    weight = enc.U.weight.detach().clone().requires_grad_()
    bias = enc.U.bias.detach().clone().requires_grad_()

    def levels(v, w, b):
        i, o, u = enc.W(v[tb.leaf_tokens]).chunk(3, -1)
        c = torch.sigmoid(i) * torch.tanh(u)
        return _BinaryLevels.apply(torch.sigmoid(o) * torch.tanh(c), c, w, b, tb)

    assert torch.autograd.gradcheck(levels, (x, weight, bias))
