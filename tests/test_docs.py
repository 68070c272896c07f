"""Every code block of README.md and docs/*.md runs, so the docs cannot rot.

The pages are run in reading order (README first: its tour trains the tokenizer and models that later pages use)
in one folder that ``scripts/docs_data.py`` fills with small slices of real text. ```bash blocks run with the
package's ``albert`` command on PATH; ```python blocks run as scripts there; ```text, ```json and ```yaml blocks
are output or file contents, not code. A few lines are shown but not run, each listed in SHOWN_ONLY with why.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ROOT / "README.md",
    *(
        ROOT / "docs" / name
        for name in (
            "tasks.md",
            "finetuning.md",
            "prediction.md",
            "serving.md",
            "conversion.md",
            "tokenizers.md",
            "pretraining.md",
            "performance.md",
            "architecture.md",
        )
    ),
]
SHOWN_ONLY = {  # line prefix: why the docs test does not run it
    "make ": "the Makefile's own targets (make test runs this test; make demo takes about half an hour)",
    "pip install": "installing the package is what the test environment already did",
    "torchrun --nnodes 2": "the second machine of a two-machine example",
    "git clone": "the repository is already here",
    "python benchmarks/": "benchmarks take minutes to hours; the tables quote the results files they write",
    "python examples/": "the end-to-end examples take many minutes; the pages quote the results files they write",
    "albert push": "needs a hub account; tests/test_push.py pushes to a local hub server",
}
BLOCK = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[tuple[str, str, int]]:
    """(language, code, line number) of each fenced block of a page."""
    text = page.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), text[: m.start()].count("\n") + 1) for m in BLOCK.finditer(text)]


def runnable(code: str) -> str:
    """A bash block without its shown-only lines (a continued line counts as part of the line it continues)."""
    kept, skipping = [], False
    for line in code.splitlines():
        starts = line.lstrip()
        if not skipping and any(starts.startswith(prefix) for prefix in SHOWN_ONLY):
            skipping = line.rstrip().endswith("\\")
            continue
        if skipping:
            skipping = line.rstrip().endswith("\\")
            continue
        kept.append(line)
    return "\n".join(kept)


def test_every_page_is_linked_from_the_readme_and_listed_here():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert pages == sorted(p.name for p in PAGES[1:])
    assert all(f"docs/{name}" in readme for name in pages)
    assert len(readme.splitlines()) <= 200  # the front door stays short


@pytest.fixture(scope="module")
def sandbox(realdata, tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "docs_data.py"), str(root)], check=True)
    return root


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_blocks_run(page, sandbox):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    env.pop("HF_ENDPOINT", None)
    ran = 0
    for language, code, line in blocks(page):
        if language == "bash":
            if not runnable(code).strip():
                continue  # every line is shown only
            command = ["bash", "-euo", "pipefail", "-c", runnable(code)]
        elif language == "python":
            command = [sys.executable, "-c", code]
        else:
            continue
        start = time.perf_counter()
        done = subprocess.run(command, cwd=sandbox, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{page.name}:{line}: {language} block failed\n{done.stdout}\n{done.stderr}"
        if "albert evaluate --model runs/spam " in code:
            check_the_tour(done.stdout, time.perf_counter() - start)
        ran += 1
    assert ran or page.name in ("architecture.md", "performance.md"), f"{page.name} has no code block that runs"


def check_the_tour(stdout: str, seconds: float) -> None:
    """The README's tour trains a spam filter that filters spam: on the 400 held-out emails, accuracy ≥ 0.90 and
    MCC ≥ 0.5 (a filter that calls everything ham scores the ham share, about 0.7, and MCC 0), and the two texts it
    predicts get one label each; within ten minutes (about three on this 2-core machine; the slowest of its kind
    is twice as slow)."""
    metrics = dict(re.findall(r"^\s+(accuracy|mcc)\s+(-?[\d.]+)$", stdout, re.M))
    assert metrics.keys() == {"accuracy", "mcc"}, f"albert evaluate's lines were not found in:\n{stdout}"
    assert float(metrics["accuracy"]) >= 0.90 and float(metrics["mcc"]) >= 0.5, stdout
    labels = [json.loads(line)["prediction"]["label"] for line in stdout.splitlines() if line.startswith('{"text"')]
    assert labels == ["spam", "ham"], stdout
    assert seconds < 600, f"the tour took {seconds:.0f} s"
