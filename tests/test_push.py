"""Pushing to a hub over real HTTP: `albert push` and the push_to_hub methods against the local server of
tests/hubserver.py (its upload side speaks what huggingface_hub calls), then transformers and `albert predict` load
the pushed model back by id from that server and give the local directory's outputs. Each client runs in its own
process with the environment a user would set (HF_ENDPOINT, HF_HOME, HF_TOKEN); HF_HUB_DISABLE_XET=1 keeps
huggingface_hub on the LFS protocol, which the server speaks (it takes Xet whenever hf_xet is installed)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hubserver import FakeHub

from albert import cli

IDS = [[2, 17, 9, 33, 41, 3, 25, 8, 3], [2, 5, 60, 12, 3, 44, 3, 0, 0]]
MASK = [[1] * 9, [1] * 7 + [0] * 2]
TEXT = "The jury said it did not."


@pytest.fixture(scope="module")
def hub():
    server = FakeHub()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def folder(models, tmp_path) -> Path:
    """A fine-tuned-like classifier directory (model, tokenizer, a training log) of its own, to change freely."""
    out = shutil.copytree(models["clf"], tmp_path / "clf")
    (out / "log.jsonl").write_text('{"step": 1, "loss": 0.7}\n')
    return out


def _env(hub: FakeHub, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_DISABLE_XET": "1", **extra}


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "albert", *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _push(hub, args, env) -> dict:
    proc = _cli(["push", *args], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _run(code: str, env: dict[str, str]) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object on its last line."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _sent(hub: FakeHub, start: int, repo_id: str) -> set[str | None]:
    """The Authorization headers of the requests about ``repo_id`` since ``start`` (LFS uploads go to storage
    unsigned, and huggingface_hub fetches a registry of its own anonymously)."""
    about = (f"/{repo_id}.git/", f"/api/models/{repo_id}/", "/api/repos/create")
    return {auth for _, path, auth in hub.authorizations[start:] if path.startswith(about)}


CARD = "---\nlibrary_name: albert-lite\npipeline_tag: text-classification\n---\n# A tiny classifier\n"


def test_push_then_transformers_and_predict_load_it_back(hub, folder, tmp_path):
    (folder / "README.md").write_text(CARD)  # the model card fine-tuning writes: huggingface_hub validates it first
    start = len(hub.requests)
    out = _push(hub, [folder, "user/tiny", "--token", "hf_write"], _env(hub, tmp_path / "push-home"))
    repo = hub.repos["user/tiny"]
    assert out["repo_id"] == "user/tiny" and out["revision"] == "main" and out["commit"] == repo.branches["main"]
    assert out["commit_url"] == f"{hub.url}/user/tiny/commit/{out['commit']}"
    # one commit holding every file, byte for byte; the weights and spiece.model by LFS, the JSON files regular
    commits = [path for method, path in hub.requests[start:] if method == "POST" and "/commit/" in path]
    assert commits == ["/api/models/user/tiny/commit/main"]
    (push,) = [p for p in hub.pushes if p.repo_id == "user/tiny"]
    local = _files(folder)
    assert set(push.modes) == set(local) == set(out["files"]) and not push.deleted
    assert repo.commits[push.commit] == {**local, ".gitattributes": repo.commits[push.commit][".gitattributes"]}
    assert push.modes["model.safetensors"] == push.modes["spiece.model"] == "lfs"
    assert push.modes["config.json"] == push.modes["tokenizer_config.json"] == push.modes["README.md"] == "regular"
    assert ("POST", "/api/validate-yaml") in hub.requests[start:]
    assert hub.lfs[__import__("hashlib").sha256(local["model.safetensors"]).hexdigest()] == local["model.safetensors"]
    assert not repo.private and push.summary.startswith("Upload model and tokenizer with albert-lite ")

    # transformers by id from the server (a fresh cache, no token), and the local directory
    code = f"""
    import json, torch, transformers
    ids, mask = torch.tensor({IDS}), torch.tensor({MASK})
    load = transformers.AlbertForSequenceClassification.from_pretrained
    with torch.no_grad():
        out = [load(name)(ids, attention_mask=mask).logits.tolist() for name in ("user/tiny", {str(folder)!r})]
    print(json.dumps(out))
    """
    pytest.importorskip("transformers")
    pulled, local_logits = _run(code, _env(hub, tmp_path / "transformers-home"))
    np.testing.assert_allclose(pulled, local_logits, atol=1e-6)
    assert np.abs(np.array(local_logits)).max() > 0.1  # decisive outputs: the comparison says something

    # `albert predict` by id (another fresh cache) and from the directory
    env = _env(hub, tmp_path / "predict-home")
    by_id, by_dir = (_cli(["predict", "--model", model, TEXT], env) for model in ("user/tiny", folder))
    assert by_id.returncode == 0 == by_dir.returncode, by_id.stderr + by_dir.stderr
    by_id, by_dir = json.loads(by_id.stdout)["prediction"], json.loads(by_dir.stdout)["prediction"]
    assert by_id["label"] == by_dir["label"]
    np.testing.assert_allclose(list(by_id["probabilities"].values()), list(by_dir["probabilities"].values()), atol=1e-6)


def test_private_branch_message_and_token_precedence(hub, folder, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text("hf_from_login_cache")  # what `hf auth login` stores
    # the login cache alone; --private and a commit message
    start = len(hub.authorizations)
    _push(hub, [folder, "user/secret", "--private", "--commit-message", "First model"], _env(hub, home))
    assert _sent(hub, start, "user/secret") == {"Bearer hf_from_login_cache"}
    repo = hub.repos["user/secret"]
    assert repo.private and hub.pushes[-1].summary == "First model"
    assert _cli(["predict", "--model", "user/secret", TEXT], _env(hub, tmp_path / "anonymous")).returncode == 2

    # HF_TOKEN over the login cache; --revision makes a new branch from main and commits there only
    (folder / "notes.txt").write_text("trained on the spam corpus\n")
    main_before = repo.branches["main"]
    start = len(hub.authorizations)
    out = _push(hub, [folder, "user/secret", "--revision", "new-branch"], _env(hub, home, HF_TOKEN="hf_from_env"))
    assert _sent(hub, start, "user/secret") == {"Bearer hf_from_env"}
    assert out["revision"] == "new-branch" and repo.branches["new-branch"] == out["commit"]
    assert repo.branches["main"] == main_before
    assert "notes.txt" in repo.commits[out["commit"]] and "notes.txt" not in repo.commits[main_before]
    assert hub.pushes[-1].branch == "new-branch" and hub.pushes[-1].summary.startswith("Upload model and tokenizer")
    assert ("POST", "/api/models/user/secret/branch/new-branch") in hub.requests
    # the first commit is still readable by its hash, and main gives the first push's files
    assert repo.commits[main_before]["config.json"] == (folder / "config.json").read_bytes()

    # --token over HF_TOKEN and the login cache
    start = len(hub.authorizations)
    _push(hub, [folder, "user/secret", "--token", "hf_from_flag"], _env(hub, home, HF_TOKEN="hf_from_env"))
    assert _sent(hub, start, "user/secret") == {"Bearer hf_from_flag"}

    # no token anywhere: refused before anything is sent
    start = len(hub.requests)
    proc = _cli(["push", folder, "user/secret"], _env(hub, tmp_path / "no-login"))
    assert proc.returncode == 2 and "needs a token" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(hub.requests) == start


def test_private_is_refused_for_an_existing_public_repository(hub, folder, tmp_path):
    env = _env(hub, tmp_path / "home", HF_TOKEN="hf_write")
    _push(hub, [folder, "user/open"], env)
    head = hub.repos["user/open"].branches["main"]
    proc = _cli(["push", folder, "user/open", "--private", "--revision", "hidden"], env)
    assert proc.returncode == 2 and "exists and is public" in proc.stderr, proc.stderr
    assert hub.repos["user/open"].branches["main"] == head and not hub.repos["user/open"].private
    assert "hidden" not in hub.repos["user/open"].branches  # refused before anything was created on it


def test_what_the_hub_refuses_is_one_line(hub, folder, tmp_path):
    env = _env(hub, tmp_path / "home", HF_TOKEN="hf_write")
    (folder / "README.md").write_text("---\nlibrary_name: [unclosed\n---\n# card\n")
    proc = _cli(["push", folder, "user/bad-card"], env)
    assert proc.returncode == 2 and "Invalid metadata in README.md" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not [p for p in hub.pushes if p.repo_id == "user/bad-card"]
    (folder / "README.md").unlink()
    proc = _cli(["push", folder, "someone-else/model"], env)  # another user's namespace
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "someone-else/model: the token may not write there (HTTP 403" in proc.stderr, proc.stderr
    assert "someone-else/model" not in hub.repos
    proc = _cli(["push", folder, "user/nowhere"], {**env, "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert proc.returncode == 2 and proc.stderr.startswith("albert: error: cannot reach http://127.0.0.1:9 ")
    if importlib.util.find_spec("hf_xet") is not None:  # huggingface_hub would upload by Xet, which the server lacks
        proc = _cli(["push", folder, "user/xet"], {**env, "HF_HUB_DISABLE_XET": ""})
        last = proc.stderr.strip().splitlines()[-1]  # after huggingface_hub's progress bars
        assert proc.returncode == 2 and last.startswith("albert: error: user/xet: the Xet upload to "), proc.stderr
        assert "set HF_HUB_DISABLE_XET=1" in last and not [p for p in hub.pushes if p.repo_id == "user/xet"]


def test_a_push_replaces_the_files_it_pushes_and_keeps_the_rest(hub, folder, tmp_path):
    """Weights and tokenizer files of an earlier upload that the folder lacks are deleted in the same commit (a
    stale pytorch_model.bin or vocab.txt would be loaded instead of the new files); a model card is kept."""
    old = {"config.json": b"{}", "pytorch_model.bin": b"old", "vocab.txt": b"[PAD]\n", "README.md": b"# card"}
    hub.add("user/replaced", old)
    out = _push(hub, [folder, "user/replaced"], _env(hub, tmp_path / "home", HF_TOKEN="hf_write"))
    files = hub.repos["user/replaced"].commits[out["commit"]]
    assert out["deleted"] == hub.pushes[-1].deleted == ["pytorch_model.bin", "vocab.txt"]
    assert files["README.md"] == b"# card" and files["config.json"] == (folder / "config.json").read_bytes()
    assert not {"pytorch_model.bin", "vocab.txt"} & set(files)


def _pretraining_run(folder: Path) -> Path:
    run = folder.parent / "run"
    shutil.copytree(folder, run / "model")
    (run / "run_config.json").write_text("{}")
    return run


@pytest.mark.parametrize(
    "case, words",
    [
        ("incomplete", ["INCOMPLETE marker", "has not finished"]),
        ("no-weights", ["not a complete model", "no weights (model.safetensors"]),
        ("missing-shard", ["not a complete model", "model-00002-of-00002.safetensors (named in"]),
        ("no-config", ["not a complete model", "no config.json"]),
        ("no-tokenizer", ["not a complete model", "no tokenizer (spiece.model or vocab.txt)"]),
        ("pretraining-run", ["is a pretraining run", "push {folder}/model"]),
        ("missing", ["no such directory"]),
    ],
)
def test_an_incomplete_folder_is_refused_before_anything_is_sent(hub, folder, case, words, capsys):
    if case == "incomplete":
        (folder / "INCOMPLETE").write_text("written by a command that has not finished\n")
    elif case == "no-weights":
        (folder / "model.safetensors").unlink()
    elif case == "missing-shard":
        (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
        index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    elif case == "no-config":
        (folder / "config.json").unlink()
    elif case == "no-tokenizer":
        (folder / "spiece.model").unlink()
    elif case == "pretraining-run":
        folder = _pretraining_run(folder)
    else:
        folder = folder / "nothing-here"
    start, repos = len(hub.requests), set(hub.repos)
    assert cli.main(["push", str(folder), "user/refused"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"albert: error: {folder}") and err.count("\n") == 1, err
    for word in words:
        assert word.format(folder=folder) in err, err
    assert len(hub.requests) == start and set(hub.repos) == repos  # nothing sent, nothing created


def test_push_to_hub_from_python_round_trip(hub, folder, tmp_path):
    """model.push_to_hub, then tokenizer.push_to_hub to the same repository: two commits, the second keeping the
    first's files; both load back by id with the local outputs and ids."""
    code = f"""
    import json, torch, albert
    folder = {str(folder)!r}
    ids, mask = torch.tensor({IDS}), torch.tensor({MASK})
    model = albert.AlbertForSequenceClassification.from_pretrained(folder)
    tok = albert.AlbertTokenizer.from_pretrained(folder)
    pushed = [model.push_to_hub("user/py", token="hf_python"),
              tok.push_to_hub("user/py", token="hf_python", commit_message="Add the tokenizer")]
    with torch.no_grad():
        logits = [m(ids, mask).logits.tolist()
                  for m in (model, albert.AlbertForSequenceClassification.from_pretrained("user/py"))]
    encoded = [t([{TEXT!r}])["input_ids"] for t in (tok, albert.AlbertTokenizer.from_pretrained("user/py"))]
    print(json.dumps({{"pushed": pushed, "logits": logits, "ids": encoded}}))
    """
    out = _run(code, _env(hub, tmp_path / "home"))
    model_push, tokenizer_push = out["pushed"]
    assert set(model_push["files"]) == {"config.json", "model.safetensors"}
    assert set(tokenizer_push["files"]) == {"spiece.model", "tokenizer_config.json", "special_tokens_map.json"}
    assert model_push["deleted"] == tokenizer_push["deleted"] == []
    repo, pushes = hub.repos["user/py"], [p for p in hub.pushes if p.repo_id == "user/py"]
    pushed = {".gitattributes", *model_push["files"], *tokenizer_push["files"]}
    assert set(repo.commits[repo.branches["main"]]) == pushed
    assert [p.summary for p in pushes][1] == "Add the tokenizer"
    assert {p.authorization for p in pushes} == {"Bearer hf_python"}
    np.testing.assert_allclose(out["logits"][1], out["logits"][0], atol=1e-6)
    assert out["ids"][0] == out["ids"][1]
