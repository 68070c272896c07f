"""The package's layering: each module imports only from its own layer or below, imports (inside functions too) form
no circle, and every module imports on its own (from a fresh `albert` package), so a newcomer can read it bottom-up."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top. A module may import from its own layer or any lower one.
LAYERS = [
    # foundations: no model, no torch needed to read them
    {
        "errors",
        "fields",
        "outputs",
        "readers",
        "extras",
        "masking",
        "optim",
        "convert",
        "archives",
        "sbert",
        "dist",
        "batching",
    },
    {"config", "checkpoint", "hub", "push", "tfcheckpoint", "tflayouts", "tokenizer", "spm", "plot", "modelcard"},
    {"model", "heads"},  # the forward pass and its heads
    {"engines", "data", "runs", "lrfind"},  # running a model over rows; pretraining data; runs
    {
        "tasks",
        "tasks.base",
        "tasks.classification",
        "tasks.ner",
        "tasks.qa",
        "tasks.multiple_choice",
        "tasks.summarization",
        "tasks.similarity",
        "tasks.embedding",
        "tasks.fill_mask",
    },
    {"infer", "importers", "export"},  # prediction; checkpoint conversion
    {"finetune", "pretrain", "serve", "servehttp", "estimators"},
    {"cli", "cliflags", "__main__", "__init__"},
]
LAYER_OF = {name: k for k, names in enumerate(LAYERS) for name in names}
MODULES = sorted(
    str(p.relative_to(ROOT / "albert").with_suffix("")).replace("/", ".").removesuffix(".__init__") or "__init__"
    for p in (ROOT / "albert").rglob("*.py")
)


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(module-level, anywhere) albert modules imported by ``module``; TYPE_CHECKING blocks are not imports."""
    path = ROOT / "albert" / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / "albert" / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text())
    top, anywhere = set(), set()

    def found(node, at_top: bool) -> None:
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "albert":
            base = node.module.removeprefix("albert").lstrip(".")
            # `from albert import hub` and `from albert.tasks import ner` name modules; `from albert.x import f` x;
            # `from albert import AlbertModel` the package itself
            names = [
                f"{base}.{a.name}".lstrip(".") if f"{base}.{a.name}".lstrip(".") in LAYER_OF else base or "__init__"
                for a in node.names
            ]
        elif isinstance(node, ast.Import):  # `import albert` is the package itself (layer of __init__)
            names = [
                "__init__" if a.name == "albert" else a.name.removeprefix("albert.")
                for a in node.names
                if a.name == "albert" or a.name.startswith("albert.")
            ]
        for name in names:
            name = name if name in LAYER_OF else name.rsplit(".", 1)[0]
            if name in LAYER_OF and name != module:
                anywhere.add(name)
                if at_top:
                    top.add(name)

    def walk(node, at_top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = at_top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            found(child, inner)
            walk(child, inner)

    walk(tree, True)
    return top, anywhere


def test_every_module_has_a_layer():
    assert set(MODULES) == set(LAYER_OF), set(MODULES) ^ set(LAYER_OF)


def test_the_architecture_page_draws_these_layers():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("<!-- layers -->", 1)[1].split("<!-- /layers -->", 1)[0]
    drawn = {}
    for row in table.strip().splitlines()[2:]:
        layer, modules = row.strip("|").split("|")
        drawn[int(layer.split(":")[0])] = {m.strip().strip("`") for m in modules.split(",")}
    assert drawn == dict(enumerate(LAYERS))


@pytest.mark.parametrize("module", MODULES)
def test_imports_go_down_the_layers(module):
    _, anywhere = _imports(module)
    upward = sorted(name for name in anywhere if LAYER_OF[name] > LAYER_OF[module])
    assert not upward, f"albert.{module} (layer {LAYER_OF[module]}) imports from above: {upward}"


def test_imports_form_no_circle_at_any_level():
    """Not even through an import inside a function: a circle there is two modules that cannot be read apart."""
    graph = {m: _imports(m)[1] for m in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in MODULES:
        if module not in state:
            visit(module, [])


# One interpreter imports each module after dropping every albert module it holds: each import starts from a fresh
# albert package (so import order cannot hide a circle or a missing import), while torch and the other third-party
# packages stay imported (one interpreter instead of one per module, which cost the suite an import of torch each).
IMPORT_EACH_ALONE = """
import importlib, json, sys
failed = {}
for module in sys.argv[1:]:
    for name in [n for n in sys.modules if n == "albert" or n.startswith("albert.")]:
        del sys.modules[name]
    try:
        importlib.import_module("albert" if module == "__init__" else f"albert.{module}")
    except Exception as error:
        failed[module] = f"{type(error).__name__}: {error}"
print(json.dumps(failed))
"""


def test_every_module_imports_alone():
    run = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH_ALONE, *MODULES], capture_output=True, text=True, cwd=ROOT, check=True
    )
    failed = json.loads(run.stdout.splitlines()[-1])
    assert not failed, failed
