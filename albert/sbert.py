"""sentence-transformers folders: which pooling and normalisation their ``modules.json`` asks for.

A sentence-transformers model is a transformers encoder (module 0, the folder itself) followed by modules listed in
``modules.json``: ``Pooling`` (its ``1_Pooling/config.json`` says cls / mean / max / mean-sqrt-len) and often
``Normalize`` (L2). ``albert convert --from bert`` records both in the converted config (``sentence_pooling``,
``sentence_normalize``) so ``Predictor.embed`` and ``/embed`` return the vectors sentence-transformers returns.
"""

from __future__ import annotations

import json
from pathlib import Path

from albert.errors import CheckpointError

POOLING_MODES = {  # Pooling config key → our sentence_pooling value
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
}


def modules(directory: str | Path) -> list[dict]:
    """The entries of ``modules.json`` (empty when the folder is not a sentence-transformers model)."""
    path = Path(directory) / "modules.json"
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "type" in e for e in entries):
        raise CheckpointError(f"{path}: expected a list of {{'type', 'path'}} objects")
    return entries


def pooling_config_files(directory: str | Path) -> list[str]:
    """Relative paths of the Pooling modules' configs (what a hub download must fetch besides modules.json)."""
    return [f"{e['path']}/config.json" for e in modules(directory) if e["type"].endswith(".Pooling")]


def settings(directory: str | Path) -> tuple[str | None, bool, list[str]]:
    """(pooling, normalize, notes) for a sentence-transformers folder; (None, False, []) for any other folder."""
    directory = Path(directory)
    pooling, normalize, notes = None, False, []
    for entry in modules(directory):
        kind = entry["type"].rsplit(".", 1)[-1]
        if kind == "Transformer":
            continue
        if kind == "Normalize":
            normalize = True
        elif kind == "Pooling":
            path = directory / entry["path"] / "config.json"
            try:
                config = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
                raise CheckpointError(f"{path}: cannot read the pooling config ({err})") from None
            chosen = [ours for key, ours in POOLING_MODES.items() if config.get(key)]
            others = sorted(
                k for k, v in config.items() if k.startswith("pooling_mode_") and v and k not in POOLING_MODES
            )
            if len(chosen) == 1 and not others:
                pooling = chosen[0]
            else:
                notes.append(
                    f"{path}: pooling {', '.join(chosen + others) or 'none'} is not supported (one of "
                    f"{', '.join(POOLING_MODES.values())}); embeddings will use the default pooling"
                )
        else:
            notes.append(
                f"sentence-transformers module {entry.get('path') or entry['type']} ({kind}) is not converted: "
                "embeddings stop before it"
            )
    return pooling, normalize, notes
