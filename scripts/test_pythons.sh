#!/usr/bin/env bash
# Run the suite under other Python versions than .venv's (default: the oldest that requires-python admits and the
# newest installed), each in its own .venv-pyX.Y. torch==2.13.0 is pinned by constraints.txt; for Pythons other than
# 3.11 pip takes PyPI's CUDA build (~3 GB with its nvidia-* wheels, about a minute to fetch here), which runs on the
# CPU like the local CPU wheel.
#
# What each run is for (CI's time is budgeted): the first version given, the oldest, runs the whole suite but the
# docs' code blocks, since code written on 3.11 breaks there first (syntax, typing and stdlib features newer than
# 3.10; 3.10's asyncio.TimeoutError once hung `serve`; older pinned wheels). tests/test_docs.py (about 8 minutes: the
# README's tour trains a spam filter) runs commands that the CLI, task and server tests already run on every
# interpreter; what it adds is that the pages stay true, which does not depend on the Python that runs them. The others, the newest, run NEWEST_TESTS: what depends
# on the interpreter and on the wheels built for it rather than on our logic, which 3.11 already covers: installing
# and importing every module, the CLI end to end, the HTTP server (asyncio), tokenizers and the model's parity with
# transformers (C extensions and torch for that Python), the output policy (signals, O_TMPFILE, renameat2).
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.13)
missing=()
NEWEST_TESTS="tests/test_import.py tests/test_install.py tests/test_cli.py tests/test_cli_help.py tests/test_serve.py
tests/test_serve_edge.py tests/test_tokenizer.py tests/test_model.py tests/test_parity.py tests/test_outputs.py
tests/test_bad_input.py"
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
    if [ "$version" = "${versions[0]}" ]; then
        echo "== the whole suite but the docs' code blocks on $("$venv/bin/python" --version)"
        "$venv/bin/python" -m pytest -q -p no:cacheprovider --durations=10 tests --ignore tests/test_docs.py
    else
        echo "== the interpreter-dependent tests on $("$venv/bin/python" --version)"
        "$venv/bin/python" -m pytest -q -p no:cacheprovider --durations=10 $NEWEST_TESTS
    fi
done
if [ ${#missing[@]} -gt 0 ] && [ -n "${REQUIRE_PYTHONS:-}" ]; then
    echo "test-pythons: missing ${missing[*]} (REQUIRE_PYTHONS is set)" >&2
    exit 1
fi
