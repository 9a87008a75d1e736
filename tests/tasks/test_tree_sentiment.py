import pytest
import torch

import seqlab
from seqlab.core.errors import ConfigError, InputError
from seqlab.recipe import load_recipe

TINY = {"epochs": 20, "batch_size": 8, "lr": 0.01, "progress": "off", "seed": 1}


def fit(repo, scheme="sst2", train=TINY, train_file=None, **model):
    recipe = load_recipe(data={
        "task": "tree_sentiment",
        "data": {"train": str(train_file or repo / "corpora/sentiment/trees/train.txt"),
                 "dev": str(repo / "corpora/sentiment/trees/dev.txt")},
        "reader": {"label_scheme": scheme, "lowercase": True},
        "model": {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0, **model},
        "device": "cpu",
    })
    pipe = recipe.build()
    train_ds, dev_ds = recipe.datasets()
    pipe.fit(train_ds, dev_ds, train)
    return pipe, dev_ds


@pytest.mark.parametrize("encoder", ["binary", "childsum", "recursive"])
def test_each_tree_encoder_learns_the_tiny_treebank(repo, encoder):
    pipe, dev = fit(repo, encoder=encoder)
    assert pipe.evaluate(dev)["accuracy"] >= 0.85


def test_save_load_predict_trees_plain_sentences_and_phrases(repo, tmp_path):
    pipe, _ = fit(repo, scheme="sst5")
    assert pipe.model.config.labels == ["0", "1", "2", "3", "4"]
    pipe.save(tmp_path / "m")
    loaded = seqlab.load(tmp_path / "m", device="cpu")
    inputs = ["(4 (2 the) (4 (4 superb) (2 story)))", "the story is not dull ."]
    assert loaded(inputs) == pipe(inputs)
    tree_out = loaded(inputs[0])
    assert tree_out["label"] in ("3", "4") and "phrases" not in tree_out  # labels inside the input are ignored
    assert loaded("(0 (2 the) (0 (0 superb) (2 story)))")["label"] == tree_out["label"]

    with_phrases = loaded(inputs[1], return_phrases=True)
    assert {k: with_phrases[k] for k in ("label", "score", "scores")} == loaded(inputs[1])
    # Balanced fallback tree over 6 words: ((the story is) (not dull .)), post-order.
    texts = [p["text"] for p in with_phrases["phrases"]]
    assert texts == ["the", "story", "is", "story is", "the story is", "not", "dull", ".", "dull .", "not dull .",
                     "the story is not dull ."]
    assert with_phrases["phrases"][-1]["label"] == with_phrases["label"]
    labels = [p["label"] for p in with_phrases["phrases"]]
    assert with_phrases["tree"] == (
        f"({labels[10]} ({labels[4]} ({labels[0]} the) ({labels[3]} ({labels[1]} story) ({labels[2]} is))) "
        f"({labels[9]} ({labels[5]} not) ({labels[8]} ({labels[6]} dull) ({labels[7]} .))))"
    )
    assert loaded.model.format_output(with_phrases) == f"{with_phrases['label']} ({with_phrases['score']:.3f})\n{with_phrases['tree']}"
    assert loaded.model.format_output(tree_out) == f"{tree_out['label']} ({tree_out['score']:.3f})"
    # The model learned composition on phrases: "superb" alone is positive.
    words = {p["text"]: p["label"] for p in loaded(inputs[0], return_phrases=True)["phrases"]}
    assert words["superb"] in ("3", "4") and words["superb story"] in ("3", "4")


def test_bad_inputs_are_input_errors(repo):
    pipe, _ = fit(repo, train={**TINY, "epochs": 1})
    with pytest.raises(InputError, match=r"input 1: line 1, column 15: the bracket opened at column 1 is never closed"):
        pipe(["a film", "(3 (2 a) (3 b)"])
    with pytest.raises(InputError, match="return_phrases"):
        pipe("a film", return_phrases="yes")
    with pytest.raises(InputError, match="empty"):
        pipe("  ")
    # A sentence that merely starts with a bracket is a sentence, not a broken tree.
    assert pipe("( the film ) is dull .", return_phrases=True)["phrases"][0]["text"] == "("


def test_root_only_loss_and_word2vec_initialisation(repo):
    from seqlab.tasks.tree_sentiment import TreeSentimentRecipe

    recipe = load_recipe(data={
        "task": "tree_sentiment",
        "data": {"train": str(repo / "corpora/sentiment/trees/train.txt"), "dev": None},
        "word2vec": {"dim": 16, "epochs": 2, "min_count": 1},
        "model": {"embedding_dim": 16, "hidden_size": 8, "node_loss": False, "freeze_embeddings": True},
        "device": "cpu",
    })
    assert isinstance(recipe, TreeSentimentRecipe)
    pipe = recipe.build()
    train, _ = recipe.datasets()
    result = pipe.fit(train, None, {**TINY, "epochs": 3})
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    w2v, vocab = pipe.stages[2], pipe.stages[1].vocab
    row = pipe.model.embedding.weight[vocab.token_to_id("dull")]
    assert torch.allclose(row, torch.tensor(w2v.vectors["dull"]), atol=1e-6)


def test_recipe_file_and_config_errors(repo):
    recipe = load_recipe(repo / "pipelines" / "tree_sentiment.yaml", ["train.epochs=2"])
    assert recipe.train.epochs == 2 and recipe.model.encoder == "binary" and recipe.reader.label_scheme == "sst2"
    with pytest.raises(ConfigError, match="unknown key 'encodr'"):
        load_recipe(repo / "pipelines" / "tree_sentiment.yaml", ["model.encodr=binary"])
    with pytest.raises(ConfigError, match="encoder"):
        load_recipe(repo / "pipelines" / "tree_sentiment.yaml", ["model.encoder=lstm"])


def test_docs_examples_run(repo, monkeypatch):
    import re

    monkeypatch.chdir(repo)
    doc = repo / "docs" / "trees.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 4
    for block in blocks:
        exec(compile(block, str(doc), "exec"), {})


def test_cli_train_eval_predict(repo, tmp_path, capsys, monkeypatch):
    import json

    from seqlab.cli import main

    monkeypatch.chdir(repo)
    out = tmp_path / "trees"
    tiny = ["--set", "train.epochs=2", "--set", "model.hidden_size=8", "--set", "model.embedding_dim=8", "--set", "train.progress=off"]
    assert main(["train", "pipelines/tree_sentiment.yaml", "--output", str(out), *tiny]) == 0
    capsys.readouterr()
    # eval reads the file with the saved recipe's reader (SST-2 mapping: 26 of the 30 dev trees).
    assert main(["eval", str(out), "corpora/sentiment/trees/dev.txt", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and "macro_f1" in metrics
    assert main(["predict", str(out), "(3 (2 a) (3 (3 charming) (2 film)))", "a dull film", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["prediction"]["label"] in ("negative", "positive") for r in rows] == [True, True]
    assert main(["predict", str(out), "(3 (2 a) (3 charming)"]) == 2
    assert "column 22: the bracket opened at column 1 is never closed" in capsys.readouterr().err
    assert main(["predict", str(out), "(3 (2 a) (3 charming) (2 film))"]) == 2
    assert "takes at most 2 children per node, but a tree has a node with 3" in capsys.readouterr().err


def _tiny_batch():
    return {"input_ids": torch.tensor([[4, 5, 6], [7, 0, 0]]), "input_ids_lengths": torch.tensor([3, 1]),
            "node_parent": torch.tensor([[2, 2, 4, 4, -1], [-1, 0, 0, 0, 0]]), "node_parent_lengths": torch.tensor([5, 1]),
            "node_token": torch.tensor([[0, 1, -1, 2, -1], [0, -1, -1, -1, -1]]), "node_token_lengths": torch.tensor([5, 1]),
            "node_label_ids": torch.tensor([[0, 1, -1, 1, 1], [0, -1, -1, -1, -1]]), "node_label_ids_lengths": torch.tensor([5, 1]),
            "labels": torch.tensor([1, 0])}


def test_ensemble_members_average_probabilities_and_losses():
    from seqlab.tasks.tree_sentiment import TreeSentimentConfig, TreeSentimentModel

    torch.manual_seed(0)
    cfg = TreeSentimentConfig(embedding_dim=4, hidden_size=3, vocab_size=10, labels=["neg", "pos"], members=3, dropout=0.0)
    model = TreeSentimentModel(cfg).eval()
    members = model.members()
    assert len(members) == 3 and not torch.equal(members[0][0].weight, members[1][0].weight)  # own initialisation
    batch = _tiny_batch()
    single = []
    for embedding, _, encoder, head in members:  # each member alone, as a one-network model with its weights
        alone = TreeSentimentModel(TreeSentimentConfig(**{**vars(cfg), "members": 1})).eval()
        alone.embedding, alone.encoder, alone.head = embedding, encoder, head
        single.append((alone.decode(batch), alone.loss(batch)))
    out = model.decode(batch)
    for b in range(2):
        expected = sum(s[0][b]["scores"]["pos"] for s in single) / 3
        assert out[b]["scores"]["pos"] == pytest.approx(expected, abs=1e-6)
        assert out[b]["label"] == ("pos" if expected > 0.5 else "neg")
    assert model.loss(batch).item() == pytest.approx(sum(s[1].item() for s in single) / 3, abs=1e-6)
    model.config.node_loss = False
    assert model.loss(batch).item() > 0


def test_single_network_keeps_its_parameter_names_and_members_are_checked():
    from seqlab.tasks.tree_sentiment import TreeSentimentConfig, TreeSentimentModel

    cfg = TreeSentimentConfig(embedding_dim=4, hidden_size=3, vocab_size=10, labels=["neg", "pos"])
    names = set(TreeSentimentModel(cfg).state_dict())
    assert "embedding.weight" in names and not any(n.startswith("extra_members") for n in names)
    two = set(TreeSentimentModel(TreeSentimentConfig(**{**vars(cfg), "members": 2})).state_dict())
    assert two == names | {f"extra_members.0.{n}" for n in names}
    with pytest.raises(ConfigError, match=r"model.members must be >= 1, got 0"):
        TreeSentimentModel(TreeSentimentConfig(**{**vars(cfg), "members": 0}))


def test_ensemble_trains_saves_and_loads_with_word2vec_in_every_member(repo, tmp_path):
    recipe = load_recipe(data={
        "task": "tree_sentiment",
        "data": {"train": str(repo / "corpora/sentiment/trees/train.txt"), "dev": str(repo / "corpora/sentiment/trees/dev.txt")},
        "word2vec": {"dim": 16, "epochs": 2, "min_count": 1},
        "model": {"embedding_dim": 16, "hidden_size": 8, "members": 2},
        "device": "cpu",
    })
    pipe = recipe.build()
    train, dev = recipe.datasets()
    pipe.fit(train, dev, {**TINY, "epochs": 2})
    w2v, vocab = pipe.stages[2], pipe.stages[1].vocab
    fresh = torch.tensor(w2v.vectors["dull"])
    trained = [emb.weight[vocab.token_to_id("dull")] for emb, *_ in pipe.model.members()]
    # Both started from the word2vec vector and were fine-tuned apart.
    assert all((row - fresh).abs().max() < 0.5 for row in trained) and not torch.equal(trained[0], trained[1])
    pipe.save(tmp_path / "ens")
    loaded = seqlab.load(tmp_path / "ens", device="cpu")
    assert loaded.model.config.members == 2
    inputs = ["(3 (2 a) (3 (3 great) (2 film)))", "a dull mess"]
    assert loaded(inputs, return_phrases=True) == pipe(inputs, return_phrases=True)


def test_word_chars_stage_fits_maps_and_round_trips(tmp_path):
    from seqlab.core.errors import NotFittedError
    from seqlab.text.wordchars import WordChars

    from seqlab.text.wordchars import WordCharsConfig

    given = WordCharsConfig(max_word_length=4)
    WordChars(given).fit({"tokens": [["x"]]})
    assert given.alphabet is None  # the caller's config is not changed by fit
    stage = WordChars(max_word_length=4)
    with pytest.raises(NotFittedError):
        stage({"tokens": [["a"]]})
    stage.fit({"tokens": [["film", "dull"], ["a"]]})
    assert stage.config.alphabet == "adfilmu"
    ids = stage({"tokens": [["dull", "films!", "é"]]})["char_ids"][0]
    table = {c: i + 2 for i, c in enumerate("adfilmu")}
    assert ids[0] == [table[c] for c in "dull"]
    assert ids[1] == [table["f"], table["i"], 1, 1]  # "fi" + "s!", the first and last 2 of "films!" ("s", "!" unknown)
    assert ids[2] == [1, 0, 0, 0]  # an unknown character, then padding
    again = WordChars(stage.to_config()["config"])  # what a saved pipeline rebuilds it from
    assert again.fitted and again({"tokens": [["dull"]]}) == stage({"tokens": [["dull"]]})
    with pytest.raises(ConfigError, match="max_word_length must be >= 2"):
        WordChars(max_word_length=1)


@pytest.mark.parametrize("kind", ["cnn", "lstm"])
def test_char_encoder_gives_unseen_words_their_own_vectors(repo, tmp_path, kind):
    plain, _ = fit(repo, train={**TINY, "epochs": 2})
    pipe, dev = fit(repo, train={**TINY, "epochs": 2}, char_encoder=kind, char_embedding_dim=8, char_hidden_size=6)
    assert [s.kind for s in pipe.stages][:3] == ["tree_reader", "vocabulary", "word_chars"]
    assert pipe.model.config.num_chars == len(pipe.stages[2].table) > 10
    unseen = ["(2 zzqx)", "(2 superbly)"]  # neither word is in the tiny treebank
    assert plain(unseen[0])["scores"] == plain(unseen[1])["scores"]  # both <unk>: one vector
    assert pipe(unseen[0])["scores"] != pipe(unseen[1])["scores"]  # spelled differently: two
    # A batch of trees of different sizes gives each tree what it gets alone (leaves and their characters line up).
    inputs = ["(3 (2 the) (3 (3 charming) (2 film)))", "a dull , lifeless mess from start to end", "(2 zzqx)"]
    together = pipe(inputs)
    for text, out in zip(inputs, together):
        assert pipe(text)["scores"] == pytest.approx(out["scores"], abs=1e-6)
    pipe.save(tmp_path / "chars")
    loaded = seqlab.load(tmp_path / "chars", device="cpu")
    assert loaded(inputs, return_phrases=True) == pipe(inputs, return_phrases=True)
    assert pipe.evaluate(dev)["accuracy"] > 0.5


def test_char_encoder_config_errors(repo):
    from seqlab.tasks.tree_sentiment import TreeSentimentConfig, TreeSentimentModel
    from seqlab.text.trees import TreeLabelEncoder, TreeReader
    from seqlab.text.vocab import VocabularyStage

    with pytest.raises(ConfigError, match="char_encoder: 'gru' is not one of 'none', 'cnn', 'lstm'"):
        load_recipe(repo / "pipelines" / "tree_sentiment.yaml", ["model.char_encoder=gru"])
    with pytest.raises(ConfigError, match="char_hidden_size must be >= 1"):
        load_recipe(repo / "pipelines" / "tree_sentiment.yaml", ["model.char_hidden_size=0"])
    stages = [TreeReader(), VocabularyStage(), TreeLabelEncoder()]
    data = {"text": ["(3 (2 a) (3 good))"], "label": ["positive"]}
    columns = stages[0](data)
    stages[1].fit(columns)
    stages[2].fit({**columns, "label": ["positive"]})
    with pytest.raises(ConfigError, match="needs a word_chars stage"):
        TreeSentimentModel.configure(TreeSentimentConfig(char_encoder="cnn"), stages)
    with pytest.raises(ConfigError, match="num_chars"):
        TreeSentimentModel(TreeSentimentConfig(char_encoder="cnn", vocab_size=5, labels=["a", "b"]))


def test_singleton_dropout_trains_the_unk_row_from_words_seen_once(repo, tmp_path):
    """Lample et al.'s singleton replacement on trees: in training, a leaf whose word occurs once
    in the training trees becomes <unk> with probability ``singleton_dropout``; other leaves never,
    and nothing changes in eval mode. Trained with it, the <unk> row moves (without it, no
    training leaf looks it up, so it keeps its initial vector)."""
    from seqlab.data.collate import pad_collate
    from seqlab.nn.trees import TreeBatch
    from seqlab.tasks.tree_sentiment import TreeSentimentConfig
    from seqlab.text.trees import read_sentiment_trees
    from seqlab.train import TrainConfig
    from seqlab.train.checkpoint import seed_everything

    # The tiny treebank repeats every word; three trees add words seen once.
    train_file = tmp_path / "train.txt"
    extra = ["(4 (2 a) (4 (4 luminous) (2 cast)))", "(0 (2 this) (0 (0 leaden) (2 cast)))", "(3 (2 a) (3 (3 zesty) (2 film)))"]
    train_file.write_text((repo / "corpora/sentiment/trees/train.txt").read_text() + "\n".join(extra) + "\n")
    pipe, _ = fit(repo, train={**TINY, "epochs": 1}, train_file=train_file, singleton_dropout=0.999999)
    model, cfg = pipe.model, pipe.model.config
    assert cfg.unk_id == pipe.stages[1].vocab.unk_id == 1
    columns = pipe.preprocess(read_sentiment_trees(train_file, "sst2"))
    counts = torch.bincount(torch.tensor([i for r in columns["input_ids"] for i in r]), minlength=cfg.vocab_size)
    expected = counts == 1
    expected[[cfg.pad_id, cfg.unk_id]] = False
    assert model.train_batches(columns, TrainConfig(), 1) is None  # the Trainer's default batches
    assert torch.equal(model._singleton_rows, expected)
    vocab = pipe.stages[1].vocab
    assert sorted(vocab.id_to_token(i) for i in expected.nonzero().squeeze(1).tolist()) == ["leaden", "luminous", "zesty"]

    seen = []
    model.embedding.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    pads = model.pad_values(training=True)
    batch = pad_collate({c: columns[c][-6:] for c in pads}, pads)
    tree = TreeBatch.from_padded(batch["node_parent"], batch["node_token"], batch["node_parent_lengths"], batch["input_ids"].shape[1])
    before = batch["input_ids"].reshape(-1)[tree.leaf_tokens]
    rare = expected[before]
    assert int(rare.sum()) == 3
    model.train()
    model.loss(batch)
    assert bool((seen[0][rare] == cfg.unk_id).all()) and torch.equal(seen[0][~rare], before[~rare])
    model.eval()
    model.decode(batch)
    assert torch.equal(seen[1], before)

    # The <unk> row is trained only with the option on.
    unk_moved = {}
    for p in (0.0, 0.5):
        trained, _ = fit(repo, train={**TINY, "epochs": 3}, train_file=train_file, singleton_dropout=p)
        seed_everything(TINY["seed"])  # as Pipeline.fit does before it builds the model: the initial weights
        fresh = type(trained.model).from_stages(trained.model.config, trained.stages)
        unk_moved[p] = float((trained.model.embedding.weight[1] - fresh.embedding.weight[1]).detach().abs().max())
    assert unk_moved[0.0] == 0.0 and unk_moved[0.5] > 1e-3

    for bad in (1.0, -0.1):
        with pytest.raises(ConfigError, match=r"model.singleton_dropout must be in \[0, 1\)"):
            TreeSentimentConfig(singleton_dropout=bad).validate()
    with pytest.raises(ConfigError, match="needs a vocabulary with an <unk> entry"):
        TreeSentimentConfig(singleton_dropout=0.5, unk_id=None).validate()


def test_fine_members_fold_their_labels_into_the_classes_and_learn_from_neutral_phrases():
    from seqlab.tasks.tree_sentiment import TreeSentimentConfig, TreeSentimentModel

    torch.manual_seed(0)
    # Fine labels 0–4; under sst2: 0, 1 → neg (0); 3, 4 → pos (1); 2 → none.
    cfg = TreeSentimentConfig(embedding_dim=4, hidden_size=3, vocab_size=10, labels=["neg", "pos"], dropout=0.0,
                              fine_members=1, fine_labels=["0", "1", "2", "3", "4"], fine_to_label=[0, 0, -1, 1, 1])
    model = TreeSentimentModel(cfg).eval()
    assert len(model.members()) == 2 and model.members()[1][3].out_features == 5
    # Node 2 of the first tree is neutral: no class label (-1), fine label "2".
    batch = {**_tiny_batch(), "node_fine_ids": torch.tensor([[0, 4, 2, 3, 4], [1, -1, -1, -1, -1]])}
    logits, tree = model.node_logits(batch)
    fine = logits[1].softmax(-1)
    folded_pos = (fine[:, 3] + fine[:, 4]) / (fine[:, 0] + fine[:, 1] + fine[:, 3] + fine[:, 4])
    expected = (logits[0].softmax(-1)[:, 1] + folded_pos) / 2
    out = model.decode(batch)
    for b, root in enumerate(tree.roots.tolist()):
        assert out[b]["scores"]["pos"] == pytest.approx(expected[root].item(), abs=1e-6)
        assert sum(out[b]["scores"].values()) == pytest.approx(1.0, abs=1e-6)
    # The loss: the class network on node_label_ids, the fine one on node_fine_ids (neutral nodes included).
    from seqlab.nn.trees import TreeBatch

    flat = TreeBatch.valid_nodes(batch["node_parent_lengths"], batch["node_label_ids"].shape[1])
    ce = torch.nn.functional.cross_entropy
    parts = [ce(logits[0], batch["node_label_ids"].reshape(-1)[flat], ignore_index=-1),
             ce(logits[1], batch["node_fine_ids"].reshape(-1)[flat], ignore_index=-1)]
    assert model.loss(batch).item() == pytest.approx(sum(p.item() for p in parts) / 2, abs=1e-6)
    assert (batch["node_label_ids"] == -1).any() and (batch["node_fine_ids"].reshape(-1)[flat] >= 0).all()
    with pytest.raises(ConfigError, match="fine_members needs fine_labels"):
        TreeSentimentModel(TreeSentimentConfig(embedding_dim=4, hidden_size=3, vocab_size=10, labels=["neg", "pos"], fine_members=1))


def test_fine_members_train_save_and_load_through_the_recipe(repo, tmp_path):
    pipe, dev = fit(repo, fine_members=1)
    kinds = [s.kind for s in pipe.stages]
    assert kinds[-2:] == ["tree_label_encoder", "tree_fine_label_encoder"] and pipe.stages[0].config.fine_labels
    cfg = pipe.model.config
    assert cfg.labels == ["negative", "positive"] and cfg.fine_labels == ["0", "1", "2", "3", "4"]
    assert cfg.fine_to_label == [0, 0, -1, 1, 1]
    assert pipe.evaluate(dev)["accuracy"] >= 0.85
    pipe.save(tmp_path / "fine")
    loaded = seqlab.load(tmp_path / "fine", device="cpu")
    inputs = ["(3 (2 a) (3 (3 great) (2 film)))", "a dull mess"]
    assert loaded(inputs, return_phrases=True) == pipe(inputs, return_phrases=True)
    # Under sst5 every fine label is a class: allowed (the fold is the identity), though no different from `members`.
    pipe5, _ = fit(repo, scheme="sst5", train={**TINY, "epochs": 1}, fine_members=1)
    assert pipe5.model.config.fine_to_label == [0, 1, 2, 3, 4]
