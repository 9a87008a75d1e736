"""Tiny saved pipelines and helpers shared by the file-fault tests (saving, loading, locking)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from seqlab.pipeline import Pipeline
from seqlab.text.labels import LabelEncoder
from seqlab.text.tokenizers import WordTokenizer
from seqlab.text.vocab import VocabularyStage

TEXTS = {
    "a": (["good film", "bad film", "great plot", "awful acting"] * 3, [1, 0, 1, 0] * 3),
    # Another vocabulary and other weights: a mix of the two models' files cannot pass for either.
    "b": (["superb story", "dull story", "brilliant cast", "boring cast", "fine"] * 3, [1, 0, 1, 0, 1] * 3),
}


def tiny_pipeline(which: str = "a", seed: int = 0) -> Pipeline:
    torch.manual_seed(seed)
    texts, labels = TEXTS[which]
    pipe = Pipeline([WordTokenizer(), VocabularyStage(), LabelEncoder()], task="sentiment", device="cpu",
                    model_config={"embedding_dim": 4, "hidden_size": 4})
    pipe.fit({"text": texts, "label": labels}, train_config={"epochs": 1, "progress": "off", "seed": seed})
    return pipe


def fingerprint(pipe: Pipeline) -> str:
    """What a loaded pipeline is: its vocabulary, labels and every weight."""
    digest = hashlib.sha256()
    for stage in pipe.stages:
        vocab = getattr(stage, "vocab", None)
        if vocab is not None:
            digest.update(repr(list(vocab._tokens)).encode())
        digest.update(repr(list(getattr(stage, "labels", None) or [])).encode())
    for name, tensor in sorted(pipe.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def tree(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path → bytes), links and all."""
    out = {}
    for base, dirs, files in os.walk(directory):
        for name in files:
            path = Path(base) / name
            out[path.relative_to(directory).as_posix()] = path.read_bytes() if not path.is_symlink() else b"->" + os.readlink(path).encode()
    return out


def hidden_leftovers(directory: Path) -> list[str]:
    """Hidden entries other than seqlab's locks and manifest (staging folders, journals, temp files)."""
    from seqlab.core.files import KEPT_HIDDEN_FILES

    return sorted(n for n in os.listdir(directory) if n.startswith(".") and n not in KEPT_HIDDEN_FILES)
