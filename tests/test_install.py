"""A bare `pip install albert-lite` (no extras) in a fresh venv: it holds none of the optional packages, `import
albert` does not import torch, `albert predict` works, and a command that needs an extra names it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

# Once, under the Python of `make test` (whichever version .venv has): under the others (scripts/test_pythons.sh sets
# ALBERT_OTHER_PYTHON) a fresh venv would install PyPI's CUDA build of torch again, several GB, for the same check.
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("ALBERT_OTHER_PYTHON")), reason="the bare install is checked once, under make test's Python"
)

OPTIONAL = {"scikit-learn", "seqeval", "rouge_score", "matplotlib", "jieba", "onnx", "onnxruntime", "fastapi"}
OPTIONAL |= {"uvicorn", "google-crc32c", "cramjam", "transformers"}


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    import install

    venv = tmp_path_factory.mktemp("bare") / "venv"
    return venv, install.measure(venv, timings=False)


def test_the_bare_install_holds_no_extra_and_imports_lazily(bare):
    venv, result = bare
    assert not OPTIONAL & set(result["packages"]), OPTIONAL & set(result["packages"])
    lazy = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys, albert; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert lazy.stdout.strip() == "False"  # torch waits for the first model or tokenizer
    assert result["missing_extra"]["status"] == 2
    assert result["missing_extra"]["stderr"] == [
        "albert: error: drawing training curves needs matplotlib: pip install 'albert-lite[train]'"
    ]


def test_predicting_needs_no_extra(bare, models, tmp_path):
    venv, _ = bare
    run = subprocess.run(
        [str(venv / "bin" / "albert"), "predict", "--model", str(models["clf"]), "a text", "another"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["text"] for r in records] == ["a text", "another"] and all("label" in r["prediction"] for r in records)
