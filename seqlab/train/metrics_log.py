"""Where a run's numbers go: ``metrics.jsonl`` (one JSON object per evaluation) and,
optionally, TensorBoard event files.

TensorBoard is used only when asked for (``train.tensorboard: true``) and when
``torch.utils.tensorboard`` imports (it needs the ``tensorboard`` package); otherwise it
is skipped without a fuss — the JSON lines hold the same numbers.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

logger = logging.getLogger("seqlab.train")

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def _json_number(value: Any) -> Any:
    # JSON has no NaN/Infinity; a strict reader would choke on Python's extension.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsLog:
    """Append evaluation records to ``<log_dir>/metrics.jsonl`` (and TensorBoard).

    A resumed run passes the history it restored; the file is rewritten with it first, so
    it ends up the same as an uninterrupted run's.

    >>> import tempfile, json
    >>> d = tempfile.mkdtemp()
    >>> log = MetricsLog(d)
    >>> log.write({"step": 1, "train_loss": 0.5})
    >>> log.close()
    >>> json.loads(open(f"{d}/metrics.jsonl").read())
    {'step': 1, 'train_loss': 0.5}
    """

    def __init__(
        self,
        log_dir: str | Path | None,
        tensorboard: bool = False,
        history: list[dict[str, Any]] | None = None,
        purge_step: int | None = None,
    ) -> None:
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.file = None
        self.writer = None
        if self.log_dir is None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.file = open(self.log_dir / METRICS_FILE, "w", encoding="utf-8")
        for record in history or []:
            self._write_json(record)
        if tensorboard:
            self.writer = _summary_writer(self.log_dir / TENSORBOARD_DIR, purge_step)

    def _write_json(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps({k: _json_number(v) for k, v in record.items()}) + "\n")
        self.file.flush()

    def write(self, record: dict[str, Any]) -> None:
        if self.file is not None:
            self._write_json(record)
        if self.writer is not None:
            step = int(record.get("step", 0))
            for key, value in record.items():
                if key in ("step", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                group = "dev" if key.startswith("dev_") else "train"
                self.writer.add_scalar(f"{group}/{key.removeprefix('dev_')}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _summary_writer(directory: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # ImportError, or a broken tensorboard install
        logger.info("seqlab: tensorboard is not installed; logging to metrics.jsonl only")
        return None
    return SummaryWriter(log_dir=str(directory), purge_step=purge_step)
