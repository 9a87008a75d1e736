"""Resolving data paths in recipes: ``${SEQLAB_CORPORA}`` and ``~`` expanded, relative to the working directory."""
from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import DataError


def corpora_root() -> Path:
    """``$SEQLAB_CORPORA`` if set, else ``../shared/corpora`` beside the working directory."""
    return Path(os.environ.get("SEQLAB_CORPORA") or Path.cwd().parent / "shared" / "corpora")


def resolve_path(path: str | os.PathLike, must_exist: bool = True, what: str = "data file") -> Path:
    """Expand ``${SEQLAB_CORPORA}`` (defaulting as ``corpora_root``), ``~`` and other variables.

    >>> str(resolve_path("${SEQLAB_CORPORA}/x", must_exist=False)).endswith("x")
    True
    """
    text = str(path)
    if "SEQLAB_CORPORA" in text and not os.environ.get("SEQLAB_CORPORA"):
        text = text.replace("${SEQLAB_CORPORA}", str(corpora_root())).replace("$SEQLAB_CORPORA", str(corpora_root()))
    resolved = Path(os.path.expanduser(os.path.expandvars(text)))
    if must_exist and not resolved.exists():
        raise DataError(f"{what} {str(path)!r} does not exist (resolved to {str(resolved)!r})")
    return resolved
