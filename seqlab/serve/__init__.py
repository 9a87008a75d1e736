"""``seqlab serve``: saved pipelines behind an HTTP JSON API, with dynamic batching (docs/serve.md).

>>> from seqlab.serve import ServeSettings
>>> ServeSettings().max_batch
32
"""
from __future__ import annotations

from .app import ServeSettings, create_app
from .batching import DynamicBatcher

__all__ = ["DynamicBatcher", "ServeSettings", "create_app"]
