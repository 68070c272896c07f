"""The figures in README.md and docs/*.md are the results files' (scripts/figures.py writes them between markers)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("figures", ROOT / "scripts" / "figures.py")
figures = sys.modules["figures"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(figures)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The pages and the results files, in a folder of their own."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    for folder in ("docs", "benchmarks/results", "examples/results"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("*.png"))
    return tmp_path


def test_the_committed_figures_are_what_the_results_files_give():
    assert figures.check(ROOT) == []


def test_the_command_line_check_passes_here_and_says_which_block_differs(copy):
    check = [sys.executable, str(ROOT / "scripts" / "figures.py"), "--check", "--root"]
    assert subprocess.run([*check, str(ROOT)], capture_output=True, text=True).returncode == 0
    readme = copy / "README.md"
    text = readme.read_text(encoding="utf-8")
    row = re.search(r"^\| `make demo`.*?(\d)", text, re.M)  # the demo's row, its first digit changed
    readme.write_text(text[: row.start(1)] + str((int(row.group(1)) + 1) % 10) + text[row.end(1) :])
    done = subprocess.run([*check, str(copy)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "README.md: figures:readme differs" in done.stdout
    assert "-| `make demo`" in done.stdout and "+| `make demo`" in done.stdout


def edit_a_digit(page: Path, name: str) -> None:
    """Change one digit inside the block `name` of `page`."""
    text = page.read_text(encoding="utf-8")
    block = re.search(rf"<!-- figures:{name} -->\n(.*?)<!-- /figures:{name} -->", text, re.S)
    digit = re.search(r"\d", block.group(1))
    at = block.start(1) + digit.start()
    page.write_text(text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1 :], encoding="utf-8")


@pytest.mark.parametrize(("page", "name"), [("README.md", "readme"), ("docs/finetuning.md", "find-lr")])
def test_an_edited_figure_fails_the_check_and_the_script_restores_it(copy, page, name):
    before = (copy / page).read_text(encoding="utf-8")
    edit_a_digit(copy / page, name)
    problems = figures.check(copy)
    assert len(problems) == 1 and problems[0].startswith(f"{page}: figures:{name} differs")
    assert figures.write(copy) == [copy / page]
    assert (copy / page).read_text(encoding="utf-8") == before
    assert figures.check(copy) == []


def test_a_changed_results_file_fails_the_check(copy):
    path = copy / "benchmarks" / "results" / "forward.json"
    forward = json.loads(path.read_text(encoding="utf-8"))
    row = next(r for r in forward["rows"] if (r["batch"], r["length"]) == (32, 128))
    row["speedup"] = 1.5
    path.write_text(json.dumps(forward), encoding="utf-8")
    problems = figures.check(copy)
    assert {p.split(" differs")[0] for p in problems} == {
        "README.md: figures:readme",
        "docs/performance.md: figures:forward",
    }
    assert any("1.50×" in p for p in problems)


def test_a_missing_value_is_an_error_naming_its_file_and_key(copy):
    path = copy / "examples" / "results" / "demo.json"
    demo = json.loads(path.read_text(encoding="utf-8"))
    del demo["random_init"]["mean"]["accuracy"]
    path.write_text(json.dumps(demo), encoding="utf-8")
    with pytest.raises(figures.FigureError, match=r"examples/results/demo\.json: no 'random_init/mean/accuracy'"):
        figures.check(copy)


def test_every_marker_has_a_generator_and_every_generator_a_block():
    found = figures.found_blocks(ROOT)
    assert sorted(found) == sorted(figures.BLOCKS)
    for page in figures.pages(ROOT):  # no marker outside a well-formed pair
        text = page.read_text(encoding="utf-8")
        assert len(figures.MARKER.findall(text)) == 2 * sum(1 for _ in figures.BLOCK.finditer(text)), page.name


def test_a_marker_without_a_generator_or_a_generator_without_a_block_is_an_error(copy):
    performance = copy / "docs" / "performance.md"
    text = performance.read_text(encoding="utf-8")
    performance.write_text(text + "\n<!-- figures:nothing -->\n<!-- /figures:nothing -->\n", encoding="utf-8")
    with pytest.raises(figures.FigureError, match="figures:nothing has no generator"):
        figures.check(copy)
    performance.write_text(re.sub(r"<!-- (/?)figures:convert -->\n", "", text), encoding="utf-8")
    with pytest.raises(figures.FigureError, match="no block in README.md or docs/\\*.md for figures:convert"):
        figures.check(copy)


def test_each_figure_is_rounded_once():
    assert figures.fixed(0.9594706368899918, 3) == "0.959"  # from the file's full precision, not from 0.9595
    assert figures.fixed(0.8427, 3) == "0.8427"  # a value the file holds rounded is shown as stored
    assert figures.percent(0.512) == "51.2 %"
    assert figures.times(1.9) == "1.90×"
    assert figures.sci(5.0067901611328125e-06) == "5.0e-6"
    assert (figures.rate(0.0003), figures.rate(0.0007149428986597579)) == ("3e-4", "7.1e-4")


def test_welch_p_is_scipys():
    ours, theirs = [0.809, 0.8007, 0.8157, 0.7742, 0.8093], [0.7926, 0.7851, 0.7909, 0.7915, 0.7932]
    assert figures.welch_p(ours, theirs) == pytest.approx(0.20409, abs=1e-5)  # scipy.stats.ttest_ind(equal_var=False)
    assert figures.not_worse_p(ours, theirs) == pytest.approx(0.045545, abs=1e-5)
