#!/usr/bin/env bash
# Run the whole suite under other Python versions than .venv's (default: the oldest that requires-python admits and
# the newest installed), each in its own .venv-pyX.Y. torch==2.13.0 is pinned by constraints.txt; for Pythons other
# than 3.11 pip takes PyPI's CUDA build (~3 GB with its nvidia-* wheels, about a minute to fetch here), which runs
# on the CPU like the local CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.13)
missing=()
for version in "${versions[@]}"; do
    python=$(scripts/find_python.sh "$version")
    if [ -z "$python" ]; then
        echo "test-pythons: no working python$version on PATH or under pyenv; skipped" >&2
        missing+=("$version")
        continue
    fi
    venv=".venv-py$version"
    if [ ! -f "$venv/.installed" ] || [ pyproject.toml -nt "$venv/.installed" ] || [ constraints.txt -nt "$venv/.installed" ]; then
        echo "== setting up $venv with $python"
        test -x "$venv/bin/python" || "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip
        "$venv/bin/python" -m pip install -q -c constraints.txt torch==2.13.0
        "$venv/bin/python" -m pip install -q -c constraints.txt -e '.[dev]'
        touch "$venv/.installed"
    fi
    echo "== tests on $("$venv/bin/python" --version)"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider tests
done
if [ ${#missing[@]} -gt 0 ] && [ -n "${REQUIRE_PYTHONS:-}" ]; then
    echo "test-pythons: missing ${missing[*]} (REQUIRE_PYTHONS is set)" >&2
    exit 1
fi
