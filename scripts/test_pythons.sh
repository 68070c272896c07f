#!/usr/bin/env bash
# Run the suite under other Python versions than .venv's (default: the oldest that requires-python admits and the
# newest installed), each in its own .venv-pyX.Y. torch==2.13.0 is pinned by constraints.txt, its build is the index's:
# PyPI's CUDA build (several GB with its nvidia-* wheels), which runs on the CPU, unless TORCH_INDEX names another.
#
# What each run is for (CI's time is budgeted; each run prints its 25 slowest tests):
# - the first version given, the oldest, runs the whole suite, since code written on 3.11 breaks there first (syntax,
#   typing and stdlib features newer than 3.10; 3.10's asyncio.TimeoutError once hung `serve`; older pinned wheels),
#   and the docs' commands are what a user on 3.10 runs first. One test is left to the main run: the bare install
#   (tests/test_install.py) checks what pip resolves for our package, the same under any interpreter, and here it
#   would unpack the CUDA torch into one more venv to check it.
# - the others, the newest, run NEWEST_TESTS: what depends on the interpreter and on the wheels built for it rather
#   than on our logic, which the main run already covers: importing every module, the CLI end to end, the HTTP server
#   (asyncio), tokenizers and the model's parity with transformers (C extensions and torch for that Python), the
#   output policy (signals, O_TMPFILE, renameat2).
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10 3.13)
missing=()
workers=${WORKERS:-$(( $(nproc) + 1 ))}  # as make test: a pytest-xdist worker per core and one more
export ALBERT_OTHER_PYTHON=1  # tests/test_install.py's bare install runs once, under make test's Python
NEWEST_TESTS="tests/test_import.py tests/test_cli.py tests/test_cli_help.py tests/test_serve.py
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
        # TORCH_INDEX (the Makefile's): another index for torch alone, e.g. PyTorch's CPU wheels
        "$venv/bin/python" -m pip install -q -c constraints.txt \
            ${TORCH_INDEX:+--index-url "$TORCH_INDEX" --extra-index-url https://pypi.org/simple} torch==2.13.0
        "$venv/bin/python" -m pip install -q -c constraints.txt -e '.[dev]'
        touch "$venv/.installed"
    fi
    if [ "$version" = "${versions[0]}" ]; then
        echo "== the whole suite on $("$venv/bin/python" --version)"
        "$venv/bin/python" -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile --no-loadscope-reorder \
            --durations=25 tests
    else
        echo "== the interpreter-dependent tests on $("$venv/bin/python" --version)"
        "$venv/bin/python" -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile --no-loadscope-reorder \
            --durations=25 $NEWEST_TESTS
    fi
done
if [ ${#missing[@]} -gt 0 ] && [ -n "${REQUIRE_PYTHONS:-}" ]; then
    echo "test-pythons: missing ${missing[*]} (REQUIRE_PYTHONS is set)" >&2
    exit 1
fi
