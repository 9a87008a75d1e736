import pytest

from seqlab.core.errors import DataError, InputError
from seqlab.text.trees import (
    Tree, TreeLabelEncoder, TreeReader, fallback_tree, flatten, map_label, parse_ptb, ptb_words, read_sentiment_trees,
    read_trees,
)


def test_parse_restores_brackets_and_slashes_and_keeps_every_label():
    tree = parse_ptb(r"(3 (2 -LRB-) (4 (3 writer\/director) (2 \*\*\*)) (2 -RRB-))")
    assert tree.leaves() == ["(", "writer/director", "***", ")"]
    assert [n.label for n in tree.postorder()] == ["2", "3", "2", "4", "2", "3"]
    assert tree.children[1].children[0].word == "writer/director"


def test_parse_accepts_unlabelled_nodes_and_round_trips():
    tree = parse_ptb("((a) ((b) (c)))")
    assert tree.label is None and tree.leaves() == ["a", "b", "c"]
    assert tree.to_ptb() == "((a) ((b) (c)))"
    text = "(1 (2 not) (3 (3 good) (2 fun)))"
    assert parse_ptb(text).to_ptb() == text


@pytest.mark.parametrize("text, message", [
    ("(1 (2 not) (3 bad)", "line 1, column 19: the bracket opened at column 1 is never closed"),
    ("(1 (2 not) (3 bad)))", "line 1, column 20: text after the end of the tree: ')'"),
    ("(1 (2 not)) x", "line 1, column 13: text after the end of the tree: 'x'"),
    ("1 (2 not)", "line 1, column 1: expected '(' to start a tree, found '1 (2 not)'"),
    ("(1 (2 not) ()", "line 1, column 12: empty brackets"),
    ("(1 (2 a b))", "line 1, column 9: unexpected word 'b'"),
    ("(1 (2 a (3 b)))", "line 1, column 9: a leaf ('a') cannot have children"),
    ("", "line 1, column 1: expected '(' to start a tree, found the end of the line"),
])
def test_malformed_brackets_name_line_and_column(text, message):
    with pytest.raises(DataError) as info:
        parse_ptb(text)
    assert str(info.value).startswith(f"tree: {message}"), str(info.value)


def test_a_file_error_names_the_file_line_and_column(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("(3 (2 a) (3 b))\n\n(2 (2 a) (2 b)\n")
    with pytest.raises(DataError, match=r"t\.txt: line 3, column 15: the bracket opened at column 1 is never closed"):
        read_trees(path)


def test_sst2_mapping_drops_neutral_roots_and_neutral_phrases(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("(0 (2 a) (0 b))\n(2 (2 a) (2 b))\n(3 (4 a) (1 b))\n(4 (3 a) (2 b))\n")
    assert read_sentiment_trees(path, "sst2") == {
        "text": ["(0 (2 a) (0 b))", "(3 (4 a) (1 b))", "(4 (3 a) (2 b))"], "label": ["negative", "positive", "positive"],
    }
    assert read_sentiment_trees(path, "sst5")["label"] == ["0", "2", "3", "4"]
    assert flatten(parse_ptb("(3 (4 a) (1 (2 b) (0 c)))"), "sst2")["node_labels"] == ["positive", "", "negative", "negative", "positive"]
    with pytest.raises(DataError, match="'7' is not an SST sentiment label"):
        map_label("7", "sst5")


def test_the_project_treebank_counts(repo):
    counts = {(s, k): len(read_sentiment_trees(repo / f"corpora/sentiment/trees/{s}.txt", k)["text"])
              for s in ("train", "dev") for k in ("sst5", "sst2")}
    assert counts == {("train", "sst5"): 80, ("train", "sst2"): 69, ("dev", "sst5"): 30, ("dev", "sst2"): 26}


def test_sst_dev_has_872_binary_sentences(shared_corpora):
    dev = shared_corpora / "sentiment" / "sst" / "dev.txt"
    if not dev.is_file():
        pytest.skip("SST trees not in the shared corpora")
    assert len(read_sentiment_trees(dev, "sst5")["text"]) == 1101
    assert len(read_sentiment_trees(dev, "sst2")["text"]) == 872


def test_flatten_is_post_order_with_parents_and_token_positions():
    flat = flatten(parse_ptb("(3 (2 (2 The) (3 Good)) (2 .))"), "sst5", lowercase=True)
    assert flat == {
        "tokens": ["the", "good", "."],
        "node_parent": [2, 2, 4, 4, -1],
        "node_token": [0, 1, -1, 2, -1],
        "node_labels": ["2", "3", "2", "2", "3"],
    }


def test_fallback_trees_and_plain_sentence_splitting():
    assert fallback_tree(list("abcde")).to_ptb() == "(((a) (b)) ((c) ((d) (e))))"
    assert fallback_tree(list("abc"), "left").to_ptb() == "(((a) (b)) (c))"
    assert fallback_tree(list("abc"), "right").to_ptb() == "((a) ((b) (c)))"
    assert fallback_tree(["solo"]).to_ptb() == "(solo)"
    with pytest.raises(InputError, match="no words"):
        fallback_tree([])
    assert ptb_words('"Don\'t" go, it\'s dull!') == ["``", "Do", "n't", "''", "go", ",", "it", "'s", "dull", "!"]
    assert ptb_words("`` Wow ... '' !!") == ["``", "Wow", "...", "''", "!!"]
    assert ptb_words("it 's not , is n't it") == ["it", "'s", "not", ",", "is", "n't", "it"]  # treebank tokens stay


def test_tree_reader_stage_reads_trees_and_plain_sentences():
    stage = TreeReader(lowercase=True, label_scheme="sst2")
    out = stage({"text": ["(4 (3 Great) (2 -LRB-fun-RRB-))", r"a writer\/director"]})
    assert out["tokens"] == [["great", "(fun)"], ["a", "writer/director"]]
    assert out["node_parent"] == [[2, 2, -1], [2, 2, -1]]
    assert out["node_labels"] == [["positive", "", "positive"], ["", "", ""]]


def test_tree_label_encoder_encodes_roots_and_nodes():
    data = {"label": ["positive", "negative"], "node_labels": [["positive", "", "positive"], ["negative", "negative"]]}
    enc = TreeLabelEncoder().fit(data)
    assert enc.labels == ["negative", "positive"]
    assert enc(data) == {"labels": [1, 0], "node_label_ids": [[1, -1, 1], [0, 0]]}
    assert isinstance(parse_ptb("(a)"), Tree)


def test_a_no_break_space_stays_inside_a_token():
    # SST writes the film "8 1/2" as one leaf with a no-break space.
    assert parse_ptb("(2 (2 Fellini) (2 8\u00a01\\/2))").leaves() == ["Fellini", "8\u00a01/2"]
