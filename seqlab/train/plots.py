"""Training curves as a PNG (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_history(history: list[dict[str, Any]], path: str | Path) -> Path | None:
    """Plot train loss and every ``dev_*`` metric against the step; returns the PNG path."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    steps = [h["step"] for h in history]
    dev_keys = sorted({k for h in history for k, v in h.items() if k.startswith("dev_") and isinstance(v, (int, float))})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].plot(steps, [h.get("train_loss") for h in history], marker="o")
    axes[0].set_title("training loss")
    axes[0].set_xlabel("step")
    for key in dev_keys:
        axes[1].plot(steps, [h.get(key) for h in history], marker="o", label=key[4:])
    axes[1].set_title("dev metrics")
    axes[1].set_xlabel("step")
    if dev_keys:
        axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
