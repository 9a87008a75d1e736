"""Training curves as a PNG (matplotlib, headless): loss, dev metrics, learning rate."""
from __future__ import annotations

from pathlib import Path
from typing import Any


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
