"""seqlab: sequence modeling on text and speech with one pipeline API.

>>> import seqlab
>>> seqlab.__version__
'0.1.0'
"""
from __future__ import annotations

__version__ = "0.1.0"


def load(path, device="auto"):
    """Load a saved pipeline directory (``config.json`` + ``model.safetensors``); never unpickles.

    Directories written by the generative pipelines (anomaly, denoise, cgan) load through
    ``seqlab.tasks.generative.load_generative``.
    """
    from pathlib import Path

    from .core.files import reading_model
    from .core.serialization import read_config

    # config.json is read as a regular file inside the folder (never through a link), nested
    # at most 64 levels; a folder without one goes on to Pipeline.load, which says what it is.
    kind = None
    if Path(path).is_dir():
        config = read_config(path)
        kind = config.get("format") if config is not None else None
    if kind == "seqlab.generative":
        from .tasks.generative import load_generative

        with reading_model(path):  # its files too: regular files inside the folder only
            return load_generative(path, device=device)
    from .pipeline import Pipeline

    return Pipeline.load(path, device=device)


def __getattr__(name):  # Pipeline without importing torch at ``import seqlab``
    if name == "Pipeline":
        from .pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
