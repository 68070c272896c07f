#!/usr/bin/env bash
# Print the path of a working python3.X interpreter (X from $1, e.g. 3.10), or nothing.
# PATH first; then pyenv's installs, whose shims exist on PATH but fail unless that version is active.
set -u
version="$1"
if command -v "python$version" >/dev/null 2>&1 && "python$version" -c "" >/dev/null 2>&1; then
    command -v "python$version"
    exit 0
fi
for root in "${PYENV_ROOT:-$HOME/.pyenv}" /usr/local; do
    for candidate in $(ls -d "$root"/versions/"$version".*/bin/"python$version" 2>/dev/null | sort -V -r); do
        if "$candidate" -c "" >/dev/null 2>&1; then
            echo "$candidate"
            exit 0
        fi
    done
done
