"""A fine-tuning compared over seeds: the summary that the demo and the real-encoder example write for each side.

One run says little where a rate is near the edge of stability (a seed decides whether the model learns or gives
every example one label), so each side of a "pretrained vs random" comparison is fine-tuned with several seeds and
reported by its mean, its worst and best seed, and how many runs gave one label.
"""

from __future__ import annotations

import statistics


def summary(runs: list[dict]) -> dict:
    """Each run's test metrics (with its "seed"), their mean, the worst and best seed's accuracy and how many runs
    predicted one label for every test example."""
    return {
        "runs": runs,
        "mean": {key: statistics.fmean(run[key] for run in runs) for key in ("accuracy", "macro_f1", "mcc")},
        "worst_accuracy": min(run["accuracy"] for run in runs),
        "best_accuracy": max(run["accuracy"] for run in runs),
        "one_label_runs": sum(run["predicted_labels"] == 1 for run in runs),
    }


def table(rows: list[tuple[str, dict]], seeds: int) -> str:
    """A Markdown table of test accuracy and macro-F1: a side run over seeds by its mean (worst, best), a baseline
    with no seed (TF-IDF) by its one run."""
    lines = [f"| model | accuracy: mean (worst, best of {seeds} seeds) | macro-F1 |", "|---|---|---|"]
    for name, m in rows:
        if "runs" in m:
            spread = f"{m['mean']['accuracy']:.4f} ({m['worst_accuracy']:.4f}, {m['best_accuracy']:.4f})"
            lines.append(f"| {name} | {spread} | {m['mean']['macro_f1']:.4f} |")
        else:
            lines.append(f"| {name} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} |")
    return "\n".join(lines)
