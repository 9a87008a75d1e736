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
    import json
    from pathlib import Path

    config = Path(path) / "config.json"
    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get("format") if config.is_file() else None
    except (OSError, ValueError, AttributeError):
        kind = None  # Pipeline.load says what is wrong with the file
    if kind == "seqlab.generative":
        from .tasks.generative import load_generative

        return load_generative(path, device=device)
    from .pipeline import Pipeline

    return Pipeline.load(path, device=device)


def __getattr__(name):  # Pipeline without importing torch at ``import seqlab``
    if name == "Pipeline":
        from .pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
