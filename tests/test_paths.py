"""Paths are paths (albert/hub.py): a name that can only mean a local path never goes to the Hub, so a typo answers
"no such directory" on every command and API, never a network error; a name that could be either says both."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_config

import albert
from albert import hub
from albert.cli import main
from albert.errors import CheckpointError
from albert.tokenizer import TokenizerError


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working folder with runs/ (and runs/pretrain/) in it, as after a pretraining run; the Hub is off limits."""
    (tmp_path / "runs" / "pretrain").mkdir(parents=True)
    (tmp_path / "train.csv").write_text("text,label\nfine,a\nbad,b\n")
    (tmp_path / "data.csv").write_text("text,label\nfine,a\n")
    monkeypatch.chdir(tmp_path)

    def no_hub(*args, **kwargs):
        raise AssertionError(f"a local path went to the Hub: {args}")

    monkeypatch.setattr(hub, "_Fetcher", no_hub)
    return tmp_path


@pytest.mark.parametrize(
    "name", ["./model", "../model", "/abs/model", "~/model", "~model", "model.json", "Model.SAFETENSORS", "a/b/c"]
)
def test_clearly_local_names(name, workdir):
    assert hub.is_local_path(name) and not hub.is_remote(name)


def test_a_name_in_an_existing_folder_is_local_except_the_released_ids(workdir):
    assert hub.is_local_path("runs/spamm")  # runs/ exists: a typo of a run, not a repository
    for name in ("foo", "org/model", "albert/albert-base-v3", "albert-base-v2"):
        assert not hub.is_local_path(name) and hub.is_remote(name), name  # could be either: the Hub is asked
    (workdir / "albert").mkdir()  # e.g. a checkout of this project
    assert hub.is_local_path("albert/albert-base-v3")
    assert not hub.is_local_path("albert/albert-base-v2")  # a released checkpoint stays a hub id


def test_python_apis_answer_no_such_directory(workdir):
    with pytest.raises(CheckpointError, match=r"^runs/spamm: no such directory$"):
        albert.AlbertModel.from_pretrained("runs/spamm")
    with pytest.raises(CheckpointError, match=r"^--model runs/spamm: no such directory$"):
        hub.local_or_hub("runs/spamm", "all", flag="--model")
    with pytest.raises(CheckpointError, match=r"^runs/model\.safetensors: no such file$"):
        hub.local_or_hub("runs/model.safetensors", "model")
    with pytest.raises(TokenizerError, match=r"^~/nothing-here: no such tokenizer file or directory$"):
        albert.AlbertTokenizer.from_pretrained("~/nothing-here")
    with pytest.raises(CheckpointError, match=r"^runs/spamm: no such directory$"):
        albert.TextClassifier.from_pretrained("runs/spamm")


def test_tilde_is_expanded(workdir, monkeypatch):
    monkeypatch.setenv("HOME", str(workdir))
    albert.AlbertModel(tiny_config()).save_pretrained(workdir / "mine")
    assert hub.local_or_hub("~/mine", "model") == workdir / "mine"
    assert albert.AlbertModel.from_pretrained("~/mine").config.hidden_size == 32


TYPOS = {
    "predict": ["predict", "--model", "runs/spamm", "some text"],
    "predict-tilde": ["predict", "--model", "~/no-such-model", "some text"],
    "serve": ["serve", "--model", "runs/spamm", "--port", "0"],
    "export": ["export", "--model", "runs/spamm", "--onnx", "m.onnx"],
    "evaluate": ["evaluate", "--model", "runs/spamm", "--data", "data.csv"],
    "finetune-init": ["finetune", "--train", "train.csv", "--init", "runs/pretrain/modl", "--out", "ft"],
    "convert-bert": ["convert", "--from", "bert", "runs/bertt", "--out", "converted"],
    "tokenizer-encode": ["tokenizer", "encode", "--tokenizer", "runs/tok"],
}


@pytest.mark.parametrize("argv", list(TYPOS.values()), ids=list(TYPOS))
def test_a_typo_in_a_local_path_says_no_such_directory(argv, workdir, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    typo = argv[argv.index("--from") + 2] if "--from" in argv else next(a for a in argv if "/" in a)
    assert typo in last and "no such" in last and "directory" in last, err
    assert "tokenizer" not in last or argv[:2] == ["tokenizer", "encode"], err  # --init is about the model
    for word in ("hub", "network", "reach", "HF_"):
        assert word.lower() not in last.lower(), err
    assert not (workdir / "ft").exists() and not (workdir / "converted").exists()


def test_cli_typo_in_a_subprocess_makes_no_connection(workdir):
    """Over a real interpreter: exit 2, one line, no traceback, and not even a TCP connection to HF_ENDPOINT."""
    listener = socket.create_server(("127.0.0.1", 0))  # listens, never answers: any connection stays queued here
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{listener.getsockname()[1]}", HF_HOME=str(workdir / "home"))
    env.update(HF_HUB_ETAG_TIMEOUT="2", PYTHONPATH=str(Path(albert.__file__).parents[1]))
    try:
        args = [sys.executable, "-m", "albert", "predict", "--model", "runs/spamm", "x"]
        proc = subprocess.run(args, env=env, cwd=workdir, capture_output=True, text=True, timeout=120)
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing connected
            listener.accept()
    finally:
        listener.close()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "albert: error: --model runs/spamm: no such directory", proc.stderr


def test_a_name_that_could_be_either_says_both(workdir):
    """Nothing listens at HF_ENDPOINT: the answer names the missing local directory and the unreachable Hub."""
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(workdir / "home"), HF_HUB_ETAG_TIMEOUT="2")
    env.update(PYTHONPATH=str(Path(albert.__file__).parents[1]))
    args = [sys.executable, "-m", "albert", "predict", "--model", "albert/albert-base-v3", "x"]
    proc = subprocess.run(args, env=env, cwd=workdir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "albert/albert-base-v3: no such local directory, and cannot reach" in last, last
