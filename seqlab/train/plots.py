"""PNGs (matplotlib, headless): training curves (loss, dev metrics, learning rate), grids of generated samples."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.errors import InputError


def plot_history(history: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Plot the train loss, every ``dev_*`` metric and the learning rate against the step.

    Returns the PNG path, or None for an empty history.

    >>> plot_history([], "unused.png") is None
    True
    """
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    steps = [h["step"] for h in history]
    nan = float("nan")  # an epoch whose steps were all skipped has no train loss
    dev_keys = sorted({k for h in history for k, v in h.items() if k.startswith("dev_") and isinstance(v, (int, float))})
    has_lr = any(isinstance(h.get("lr"), (int, float)) for h in history)
    fig, axes = plt.subplots(1, 3 if has_lr else 2, figsize=(14 if has_lr else 10, 3.8))
    axes[0].plot(steps, [nan if h.get("train_loss") is None else h["train_loss"] for h in history], marker="o", label="train")
    if "dev_loss" in dev_keys:
        axes[0].plot(steps, [h.get("dev_loss") for h in history], marker="o", label="dev")
        axes[0].legend()
    axes[0].set_title("loss")
    axes[0].set_xlabel("step")
    for key in (k for k in dev_keys if k != "dev_loss"):
        axes[1].plot(steps, [h.get(key) for h in history], marker="o", label=key[4:])
    axes[1].set_title("dev metrics")
    axes[1].set_xlabel("step")
    if len(dev_keys) > ("dev_loss" in dev_keys):
        axes[1].legend()
    if has_lr:
        axes[2].plot(steps, [h.get("lr") for h in history], marker="o")
        axes[2].set_title("learning rate (last step)")
        axes[2].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def save_sample_grid(images: Any, labels: Sequence[int], path: str | Path, title: str | None = None,
                     label_names: Sequence[str] | None = None, cell_inches: float = 1.3) -> Path:
    """A PNG grid of ``(N, 1, H, W)`` images (MFCC coefficients up, time right), one row per label,
    each image ``cell_inches`` wide.

    >>> import tempfile, os
    >>> p = save_sample_grid(np.random.rand(4, 1, 13, 32) * 2 - 1, [0, 0, 1, 1], os.path.join(tempfile.mkdtemp(), "g.png"))
    >>> p.read_bytes()[:4] == b"\\x89PNG"
    True
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)  # a tensor or an array
    if arr.ndim != 4 or arr.shape[0] != len(labels):
        raise InputError(f"save_sample_grid: expected (N, C, H, W) images with one label each, got {arr.shape} and {len(labels)} labels")
    rows = sorted(set(int(y) for y in labels))
    per_row = {r: [i for i, y in enumerate(labels) if int(y) == r] for r in rows}
    cols = max(len(v) for v in per_row.values())
    fig, axes = plt.subplots(len(rows), cols, figsize=(cell_inches * cols + 0.6, cell_inches * 0.58 * len(rows) + 0.6), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(per_row[row]):
                ax.imshow(arr[per_row[row][c], 0], origin="lower", aspect="auto", cmap="magma", vmin=-1, vmax=1)
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(label_names[row] if label_names else str(row), rotation=0, labelpad=12, va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
