"""seqlab: sequence modeling on text and speech with one pipeline API.

>>> import seqlab
>>> seqlab.__version__
'0.1.0'
"""
from __future__ import annotations

__version__ = "0.1.0"


def load(path, device="auto"):
    """Load a saved pipeline directory (``config.json`` + ``model.safetensors``); never unpickles.

    Every task (the generative ones too: anomaly, denoise, cgan) loads the same way; a folder
    saved in the retired generative format is a ``ModelFileError`` that says to retrain it. An
    artefact written by ``seqlab export`` (ONNX / TorchScript, docs/export.md) loads as a Pipeline
    whose network runs in ONNX Runtime or TorchScript, after every file's SHA-256 is checked.
    """
    from .pipeline import Pipeline

    return Pipeline.load(path, device=device)


def __getattr__(name):  # Pipeline without importing torch at ``import seqlab``
    if name == "Pipeline":
        from .pipeline import Pipeline

        return Pipeline
    raise AttributeError(name)
