"""The bare install: what `pip install albert-lite` (no extras) brings, how long `import albert` takes, and what a
missing extra says.

A fresh venv (this interpreter's Python) gets the package from this checkout, non-editable, with the pins of
constraints.txt and no extras. We report its size on disk (total and torch's share), the packages it holds, the time
of `import albert` (lazy: torch is imported on first use) and of a first model built, both as medians of 5 fresh
processes, and the one-line error of a command that needs an extra.

    python benchmarks/install.py     # writes benchmarks/results/install.json, prints a Markdown table
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def _median_seconds(python: Path, code: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([str(python), "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(venv: Path, timings: bool = True) -> dict:
    """Build the bare venv and report on it; timings=False leaves out the start-up medians (20 processes) and the
    byte-compiling they would measure."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt")]
    if not timings:
        pip.append("--no-compile")  # compiling torch's .py files is most of the install's CPU, and only speeds imports
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, str(ROOT)], check=True)
    site = next((venv / "lib").glob("python3.*/site-packages"))
    frozen = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True)
    packages = sorted(line.split("==")[0] for line in frozen.stdout.splitlines() if "==" in line)
    missing = subprocess.run(
        [str(venv / "bin" / "albert"), "finetune", "--train", "x.csv", "--init", "y", "--out", str(venv / "o")],
        capture_output=True,
        text=True,
    )
    result = {
        "python": sys.version.split()[0],
        "venv_mb": round(_size_mb(venv), 1),
        "torch_mb": round(_size_mb(site / "torch"), 1),
        "packages": packages,
        "missing_extra": {"status": missing.returncode, "stderr": missing.stderr.strip().splitlines()[-1:]},
    }
    if timings:
        result["interpreter_start_s"] = round(_median_seconds(python, "pass"), 3)
        result["import_albert_s"] = round(_median_seconds(python, "import albert"), 3)
        first_model = "import albert; albert.AlbertModel(albert.AlbertConfig(vocab_size=100))"
        result["first_model_s"] = round(_median_seconds(python, first_model), 3)
        result["albert_help_s"] = round(_median_seconds(python, "from albert import cli; cli.build_parser()"), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "install.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp) / "venv")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("| bare venv | of which torch | packages | `import albert` | first model | interpreter alone |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {result['venv_mb']:.0f} MB | {result['torch_mb']:.0f} MB | {len(result['packages'])} | "
        f"{result['import_albert_s'] * 1000:.0f} ms | {result['first_model_s']:.2f} s | "
        f"{result['interpreter_start_s'] * 1000:.0f} ms |"
    )
    print(f"missing extra: {result['missing_extra']}")


if __name__ == "__main__":
    main()
