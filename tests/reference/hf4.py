"""Call transformers 4.57.6's slow tokenizers in the separate .venv-hf4 (made by `make test` / `make bench`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HF4_PYTHON = ROOT / ".venv-hf4" / "bin" / "python"


def hf4_run(request: dict) -> dict:
    """{"ids": [[...], ...], "seconds": the batch call's time} for a request to hf4_tokenize.py."""
    if not HF4_PYTHON.exists():
        raise FileNotFoundError(f"{HF4_PYTHON} is missing: `make test` creates the reference venv")
    result = subprocess.run(
        [str(HF4_PYTHON), str(Path(__file__).with_name("hf4_tokenize.py"))],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)
