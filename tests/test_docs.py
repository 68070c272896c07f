"""Every code block of README.md and docs/*.md runs, so the docs cannot rot (the pages after tasks.md: in
test_docs_pages.py, the same check, so that a second worker runs them).

Each page runs in a folder that ``scripts/docs_data.py`` fills with small slices of real text, after the README's
tour has run there: the tour trains the tokenizer and models the other pages use. The tour runs once per test run
(built by the first test that needs it, on any worker), and each page then runs in its own copy of the toured folder:
no page uses what another page (but the tour) writes.
```bash blocks run with the package's ``albert`` command on PATH; ```python blocks run as scripts there; ```text,
```json and ```yaml blocks are output or file contents, not code. A few lines are shown but not run, each listed
in SHOWN_ONLY with why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import built_once

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


TOUR = "albert evaluate --model runs/spam "  # in the README block that trains the spam filter and checks it


def commands(page: Path) -> list[tuple[list[str], str, int]]:
    """(command, the block's code, line) of each block of a page that runs."""
    out = []
    for language, code, line in blocks(page):
        if language == "bash" and runnable(code).strip():
            out.append((["bash", "-euo", "pipefail", "-c", runnable(code)], code, line))
        elif language == "python":
            out.append(([sys.executable, "-c", code], code, line))
    return out


def run_block(command: list[str], folder: Path, where: str) -> tuple[str, float]:
    """Run one block in ``folder``; (its stdout, seconds). A failure names the page and line."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    env.pop("HF_ENDPOINT", None)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{where}: block failed\n{done.stdout}\n{done.stderr}"
    return done.stdout, time.perf_counter() - start


@pytest.fixture(scope="session")
def toured(realdata, tmp_path_factory) -> tuple[Path, dict]:
    """The docs' folder after the README's blocks up to and including the tour, built once per run; and the tour's
    stdout and seconds."""

    def build(folder: Path) -> None:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "docs_data.py"), str(folder)], check=True)
        for command, code, line in commands(PAGES[0]):
            stdout, seconds = run_block(command, folder, f"README.md:{line}")
            if TOUR in code:
                folder.with_name("docs-tour.json").write_text(json.dumps({"stdout": stdout, "seconds": seconds}))
                return
        raise AssertionError(f"no README block holds {TOUR!r}")

    folder = built_once(tmp_path_factory, "docs-tour", build)
    return folder, json.loads(folder.with_name("docs-tour.json").read_text())


# The README and tasks.md run here; the other pages in test_docs_pages.py, on another worker (each module goes to one
# worker whole), once the tour is built.
FIRST = 2


@pytest.mark.parametrize("page", PAGES[:FIRST], ids=lambda p: p.name)
def test_code_blocks_run(page, request, tmp_path):
    run_page(page, request, tmp_path)


def run_page(page: Path, request, tmp_path: Path) -> None:
    """Every runnable block of ``page``, in order, in a copy of the toured folder (the README: what follows the
    tour, after the tour's own checks)."""
    todo = commands(page)
    if not todo:
        assert page.name in ("architecture.md", "performance.md"), f"{page.name} has no code block that runs"
        return
    folder, tour = request.getfixturevalue("toured")
    sandbox = shutil.copytree(folder, tmp_path / "docs", symlinks=True)  # pages must not see each other's files
    if page == PAGES[0]:
        check_the_tour(tour["stdout"], tour["seconds"])
        todo = todo[1 + next(k for k, (_, code, _) in enumerate(todo) if TOUR in code) :]  # the tour ran already
    for command, _, line in todo:
        run_block(command, sandbox, f"{page.name}:{line}")


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
