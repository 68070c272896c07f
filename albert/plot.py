"""Pictures of runs: pretraining and fine-tuning curves, confusion matrices (PNG; matplotlib, the [train] extra)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from albert.extras import check, require

PURPOSE = "drawing training curves"


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed); a MissingExtra error without matplotlib."""
    matplotlib = require("matplotlib", PURPOSE)
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", PURPOSE)


def check_available() -> None:
    """The MissingExtra error of `pyplot`, before a run's work, without importing matplotlib (slow to import)."""
    check("matplotlib", PURPOSE)


def _rows(log_path: Path) -> list[dict]:
    """The log's records; a null (a metric that was NaN, written as strict JSON) is NaN again: a gap in the curve."""
    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line]
    return [{k: float("nan") if v is None else v for k, v in row.items()} for row in rows]


def _finish(plt, fig, axes, png: Path) -> None:
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, png)
    plt.close(fig)


def pretrain_curves(log_path: Path, png: Path) -> None:
    """Training and held-out loss, MLM and SOP accuracy against steps."""
    plt = pyplot()
    rows = _rows(log_path)
    train = [r for r in rows if "loss" in r]
    held = [r for r in rows if "eval_loss" in r]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss")
    ax_loss.plot([r["step"] for r in held], [r["eval_loss"] for r in held], "o-", label="held-out loss")
    for key, label in [("mlm_acc", "MLM"), ("sop_acc", "SOP")]:
        ax_acc.plot([r["step"] for r in train], [r[key] for r in train], alpha=0.5, label=f"train {label} acc")
        ax_acc.plot([r["step"] for r in held], [r["eval_" + key] for r in held], "o-", label=f"held-out {label} acc")
    _finish(plt, fig, (ax_loss, ax_acc), png)


def finetune_curves(log_path: Path, png: Path, metric: str) -> None:
    """Training loss and the dev metric against steps."""
    plt = pyplot()
    rows = [r for r in _rows(log_path) if "step" in r]  # the first line says where the weights came from
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot([r["step"] for r in rows], [r["loss"] for r in rows], alpha=0.6, label="train loss")
    dev = [r for r in rows if f"eval_{metric}" in r]
    right.plot([r["step"] for r in dev], [r[f"eval_{metric}"] for r in dev], "o-", label=f"dev {metric}")
    _finish(plt, fig, (left, right), png)


def confusion_png(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], png: str | Path) -> None:
    """A confusion matrix (rows: true label, columns: predicted)."""
    plt = pyplot()
    ConfusionMatrixDisplay = require("sklearn.metrics", "a confusion matrix").ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.2 * len(labels) + 2))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=range(len(labels)), display_labels=labels, ax=ax, colorbar=False
    )
    fig.tight_layout()
    _save(fig, png)
    plt.close(fig)


def _save(fig, png) -> None:
    """Written under a temporary name and renamed: a kill leaves the previous figure, not half of a new one."""
    from albert.checkpoint import atomic_write

    atomic_write(png, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
