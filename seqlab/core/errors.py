"""The exception types seqlab raises on bad input, bad files and bad configs.

Every error a user can cause is one of these, so callers can catch ``SeqlabError``
and CLI users get one clear line instead of a traceback. Each also derives from the
matching builtin (``ValueError``, ``FileNotFoundError`` …) so generic handlers work.
"""
from __future__ import annotations


class SeqlabError(Exception):
    """Base class of every error seqlab raises on purpose."""


class ConfigError(SeqlabError, ValueError):
    """A recipe or config is wrong: unknown key, bad value, wrong type."""


class WiringError(SeqlabError, ValueError):
    """A pipeline's stages do not connect: a stage needs a column nothing provides."""


class DataError(SeqlabError, ValueError):
    """Input data is malformed: empty dataset, unknown label, bad file line."""


class InputError(SeqlabError, ValueError):
    """A value passed to a stage or pipeline at prediction time is unusable."""


class ModelFileError(SeqlabError, ValueError):
    """A saved model is missing, corrupt, of another format/task, or from a newer seqlab."""


class NotFittedError(SeqlabError, RuntimeError):
    """A stage or pipeline was used before ``fit``."""


class DeviceError(SeqlabError, RuntimeError):
    """A device was asked for that this machine does not have."""


class TrainingError(SeqlabError, RuntimeError):
    """Training cannot go on (for example, the loss stayed NaN for too many steps)."""


class OutputDirError(SeqlabError, ValueError):
    """A folder cannot receive a model: a file, the current directory, a folder of someone else's files."""


class FolderLockedError(SeqlabError, RuntimeError):
    """Another seqlab process (or thread) is writing into the same folder; the message names it."""
