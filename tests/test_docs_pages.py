"""The docs pages after tasks.md: test_docs.py's check of every code block, in a module of its own so that xdist,
which gives each module to one worker whole, runs these pages beside the README's once the tour is built (they wait
for it: test_docs.py's ``toured`` fixture builds it once per run, under a file lock)."""

from __future__ import annotations

import pytest
from test_docs import FIRST, PAGES, run_page, toured  # noqa: F401 (toured: the fixture run_page asks for)


@pytest.mark.parametrize("page", PAGES[FIRST:], ids=lambda p: p.name)
def test_code_blocks_run(page, request, tmp_path):
    run_page(page, request, tmp_path)
