"""Hub ids over real HTTP: a local server that speaks the Hub's API (tests/hubserver.py) serves repositories written by
transformers; transformers loading from the same server is the reference. Each client runs in its own process with
the environment a user would set (HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE, HF_TOKEN)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hubserver import FakeHub

transformers = pytest.importorskip("transformers")

IDS = [[2, 17, 9, 33, 41, 3, 25, 8, 3], [2, 5, 60, 12, 3, 44, 3, 0, 0]]
MASK = [[1] * 9, [1] * 7 + [0] * 2]
TOKEN = "hf_allowed_token"


def _albert_config(**kw):
    base = dict(
        vocab_size=8000,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_act="gelu_new",
    )
    return transformers.AlbertConfig(**{**base, **kw})


def _write(model, directory: Path, tokenizer, **save) -> Path:
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    model.save_pretrained(directory, **save)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def hub(tmp_path_factory, brown_tokenizer):
    """Repositories as transformers writes them, served on 127.0.0.1."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("repos")
    server = FakeHub()
    # The released layout: AlbertForMaskedLM, safetensors and .bin side by side, plus files we must not fetch.
    base = _write(transformers.AlbertForMaskedLM(_albert_config()), root / "base", brown_tokenizer)
    torch.save({}, base / "pytorch_model.bin")  # transformers 5 writes safetensors only; the Hub repo has both
    (base / "tf_model.h5").write_bytes(b"\0" * 1000)
    (base / "flax_model.msgpack").write_bytes(b"\0" * 1000)
    server.add("albert/albert-base-v2", base)
    server.redirects["albert-base-v2"] = "albert/albert-base-v2"
    # A fine-tuned classifier with two revisions: main and a "v1" branch (also tagged) with other weights.
    labels = {0: "neg", 1: "pos"}
    clf_v1 = _write(
        transformers.AlbertForSequenceClassification(_albert_config(id2label=labels)), root / "v1", brown_tokenizer
    )
    clf_main = _write(
        transformers.AlbertForSequenceClassification(_albert_config(id2label=labels)), root / "main", brown_tokenizer
    )
    old = server.add("org/clf", clf_v1, revision="v1")
    server.tag("org/clf", "release-1", old)
    server.add("org/clf", clf_main)
    # Only pytorch_model.bin (older uploads), and a sharded safetensors checkpoint.
    bin_only = root / "bin"
    enc = transformers.AlbertModel(_albert_config())
    _write(enc, bin_only, brown_tokenizer)
    state = {k: v.contiguous() for k, v in enc.state_dict().items()}
    (bin_only / "model.safetensors").unlink()
    torch.save(state, bin_only / "pytorch_model.bin")
    server.add("org/bin-only", bin_only)
    server.add(
        "org/sharded",
        _write(transformers.AlbertModel(_albert_config()), root / "sharded", brown_tokenizer, max_shard_size="20KB"),
    )
    server.add("org/gated", clf_main, gated=True, tokens={TOKEN})
    server.add("org/private", clf_main, private=True, tokens={TOKEN})
    server.add("org/gpt", {"config.json": json.dumps({"model_type": "gpt2"}).encode(), "model.safetensors": b""})
    server.add("org/dataset-like", {"README.md": b"# not a model"})
    server.start()
    yield server, {"base": base, "clf_main": clf_main, "clf_v1": clf_v1, "bin": bin_only, "root": root}
    server.stop()


def _run(code: str, env: dict[str, str], timeout: int = 180) -> dict:
    """Run ``code`` in a fresh interpreter with ``env``; it prints one JSON object on its last line."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full.update({"HF_HUB_DISABLE_TELEMETRY": "1", **env})
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=full, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full.update({"HF_HUB_DISABLE_TELEMETRY": "1", **env})
    return subprocess.run(
        [sys.executable, "-m", "albert", *args], env=full, capture_output=True, text=True, timeout=300
    )


OURS = """
import json, torch, albert
from albert import AlbertForMaskedLM as MLM, AlbertForSequenceClassification as Clf, AlbertModel as Enc
from albert.infer import Predictor
ids, mask = torch.tensor({ids}), torch.tensor({mask})
text = ["The jury said it did not."]
out = {{}}
def run(name, fn):
    try:
        out[name] = fn()
    except albert.AlbertError as err:
        out[name] = "error: " + str(err)
with torch.no_grad():
    run("base", lambda: MLM.from_pretrained("albert/albert-base-v2")(ids, mask).logits.tolist())
    run("legacy", lambda: MLM.from_pretrained("albert-base-v2")(ids, mask).logits.tolist())
    run("clf", lambda: Clf.from_pretrained("org/clf")(ids, mask).logits.tolist())
    run("clf_v1", lambda: Clf.from_pretrained("org/clf", revision="v1")(ids, mask).logits.tolist())
    run("clf_tag", lambda: Clf.from_pretrained("org/clf", revision="release-1")(ids, mask).logits.tolist())
    run("bin", lambda: Enc.from_pretrained("org/bin-only")(ids, mask).last_hidden_state.tolist())
    run("sharded", lambda: Enc.from_pretrained("org/sharded")(ids, mask).last_hidden_state.tolist())
    run("tokenizer", lambda: albert.AlbertTokenizer.from_pretrained("org/clf")(text)["input_ids"])
    run("classifier", lambda: albert.TextClassifier.from_pretrained("org/clf").predict_proba(text).tolist())
    run("predictor", lambda: list(Predictor("org/clf").classify(text)[0]["probabilities"].values()))
    for bad in ("org/missing", "org/gated", "org/private", "org/gpt", "org/dataset-like"):
        run(bad, lambda: Enc.from_pretrained(bad) and "loaded")
    run("bad-revision", lambda: Enc.from_pretrained("org/clf", revision="nope") and "loaded")
    # after the refusal above (a cached copy would be served from the cache, as huggingface_hub does)
    run("gated_with_token", lambda: Clf.from_pretrained("org/gated", token="{token}")(ids, mask).logits.tolist())
print(json.dumps(out))
"""

REFERENCE = """
import json, torch, transformers
ids, mask = torch.tensor({ids}), torch.tensor({mask})
def outputs(cls, name, **kw):
    out = getattr(transformers, cls).from_pretrained(name, **kw)(ids, attention_mask=mask)
    return (out.logits if hasattr(out, "logits") else out.last_hidden_state).tolist()
with torch.no_grad():
    out = {{
        "base": outputs("AlbertForMaskedLM", "albert/albert-base-v2"),
        "clf": outputs("AlbertForSequenceClassification", "org/clf"),
        "clf_v1": outputs("AlbertForSequenceClassification", "org/clf", revision="v1"),
        "bin": outputs("AlbertModel", "org/bin-only"),
        "sharded": outputs("AlbertModel", "org/sharded"),
    }}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def loaded(hub, tmp_path_factory):
    server, _ = hub
    server.requests.clear()
    ours_home = tmp_path_factory.mktemp("hf-home-ours")
    ours = _run(OURS.format(ids=IDS, mask=MASK, token=TOKEN), {"HF_ENDPOINT": server.url, "HF_HOME": str(ours_home)})
    our_requests = list(server.requests)
    theirs_home = tmp_path_factory.mktemp("hf-home-transformers")
    theirs = _run(REFERENCE.format(ids=IDS, mask=MASK), {"HF_ENDPOINT": server.url, "HF_HOME": str(theirs_home)})
    return ours, theirs, our_requests, theirs_home


@pytest.mark.parametrize("name", ["base", "clf", "clf_v1", "bin", "sharded"])
def test_loading_by_name_equals_transformers_from_the_same_server(loaded, name):
    ours, theirs, _, _ = loaded
    assert isinstance(ours[name], list), ours[name]
    np.testing.assert_allclose(np.array(ours[name]), np.array(theirs[name]), atol=1e-5)


def test_revisions_branches_tags_and_legacy_names(loaded):
    ours, theirs, requests, _ = loaded
    assert ours["clf_tag"] == ours["clf_v1"]  # the tag points at the v1 commit
    assert not np.allclose(ours["clf"], ours["clf_v1"])  # main has other weights
    np.testing.assert_allclose(ours["legacy"], theirs["base"], atol=1e-5)
    # albert-base-v2 is mapped to albert/albert-base-v2 here, not left to the Hub's redirect
    assert not any(path.startswith("/albert-base-v2/") for _, path in requests)


def test_only_the_needed_files_are_downloaded(loaded, hub):
    _, _, requests, _ = loaded
    fetched = {path for method, path in requests if method == "GET" and "/resolve/" in path}
    base = {p.rsplit("/", 1)[1] for p in fetched if p.startswith("/albert/albert-base-v2/")}
    assert base == {"config.json", "model.safetensors"}  # a model needs no tokenizer; safetensors is preferred
    clf = {p.rsplit("/", 1)[1] for p in fetched if p.startswith("/org/clf/")}
    assert clf == {"config.json", "model.safetensors", "spiece.model", "tokenizer_config.json"}
    assert any(p.endswith("/pytorch_model.bin") for p in fetched if p.startswith("/org/bin-only/"))
    shards = [p for p in fetched if p.startswith("/org/sharded/") and "-of-" in p]
    assert len(shards) >= 2


def test_tokenizer_classifier_and_predictor_by_name(loaded, hub, brown_tokenizer):
    ours, _, _, _ = loaded
    assert ours["tokenizer"] == brown_tokenizer(["The jury said it did not."])["input_ids"]
    assert len(ours["classifier"][0]) == 2 and abs(sum(ours["classifier"][0]) - 1) < 1e-5
    np.testing.assert_allclose(ours["predictor"], ours["classifier"][0], atol=1e-5)
    assert isinstance(ours["gated_with_token"], list)


@pytest.mark.parametrize(
    "name, words",
    [
        ("org/missing", ["org/missing", "no repository", "private"]),
        ("org/gated", ["org/gated is gated", "token"]),
        ("org/private", ["org/private", "private", "token"]),
        ("org/gpt", ["'gpt2' model", "not ALBERT"]),
        ("org/dataset-like", ["org/dataset-like", "config.json"]),
        ("bad-revision", ["org/clf", "no revision 'nope'"]),
    ],
)
def test_hub_errors_are_one_line_naming_the_repository(loaded, name, words):
    ours, _, _, _ = loaded
    message = ours[name]
    assert message.startswith("error: ") and "\n" not in message, message
    for word in words:
        assert word in message, message


def test_a_model_transformers_downloaded_loads_offline(loaded, hub):
    _, theirs, _, theirs_home = loaded
    code = f"""
    import json, torch, albert
    with torch.no_grad():
        model = albert.AlbertForSequenceClassification.from_pretrained("org/clf")
        logits = model(torch.tensor({IDS}), torch.tensor({MASK})).logits
    try:
        albert.AlbertModel.from_pretrained("org/never-downloaded")
        missing = "loaded"
    except albert.AlbertError as err:
        missing = str(err)
    print(json.dumps({{"clf": logits.tolist(), "missing": missing}}))
    """
    # Offline, and the endpoint is a closed port: nothing can come from the network.
    env = {"HF_HOME": str(theirs_home), "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = _run(code, env)
    np.testing.assert_allclose(out["clf"], theirs["clf"], atol=1e-5)
    assert "not in the cache" in out["missing"] and "HF_HUB_OFFLINE=1" in out["missing"]
    assert out["missing"].startswith("org/never-downloaded: no such local directory, and ")  # it could be either


def test_no_network_and_not_cached_says_so(tmp_path):
    code = """
    import json, albert
    try:
        albert.AlbertModel.from_pretrained("albert/albert-base-v2")
        print(json.dumps({"error": None}))
    except albert.AlbertError as err:
        print(json.dumps({"error": str(err)}))
    """
    out = _run(code, {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path), "HF_HUB_ETAG_TIMEOUT": "2"})
    assert out["error"] and "cannot reach http://127.0.0.1:9" in out["error"], out
    assert out["error"].startswith("albert/albert-base-v2: no such local directory, and cannot reach"), out


def test_cli_predict_finetune_and_convert_by_hub_id(hub, tmp_path, realdata):
    server, _ = hub
    env = {"HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "home")}
    # predict with a revision, and with a token for the gated copy
    proc = _cli(["predict", "--model", "org/clf", "--revision", "v1", "The jury said it."], env)
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)["prediction"]) >= {"label", "probabilities"}
    proc = _cli(["predict", "--model", "org/gated", "The jury said it."], env)
    assert proc.returncode == 2 and "gated" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli(["predict", "--model", "org/gated", "--token", TOKEN, "The jury said it."], env)
    assert proc.returncode == 0, proc.stderr
    # fine-tune from the released name: the weights are the hub's, and the log says so
    train = tmp_path / "train.csv"
    lines = realdata.brown_lines()[:40]
    train.write_text("text,label\n" + "".join(f'"{t}",{"ab"[i % 2]}\n' for i, t in enumerate(lines)))
    out = tmp_path / "ft"
    args = ["finetune", "--train", str(train), "--init", "albert-base-v2", "--out", str(out), "--max-steps", "1"]
    proc = _cli([*args, "--no-progress"], env)
    assert proc.returncode == 2 and "--max-seq-length 64" in proc.stderr  # the repo's model has 64 positions
    proc = _cli([*args, "--no-progress", "--max-seq-length", "64"], env)
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "log.jsonl").read_text().splitlines()[0])
    assert record["init"] == "albert-base-v2" and record["weights"] == "pretrained", record
    proc = _cli(["finetune", "--train", str(train), "--init", "random:albert-tiny", "--out", str(tmp_path / "r")], env)
    assert proc.returncode == 2 and "--tokenizer" in proc.stderr
    # offline: what the run above downloaded is in the cache; a never-fetched revision is not
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    assert _cli(["predict", "--model", "org/clf", "--revision", "v1", "x"], offline).returncode == 0
    proc = _cli(["predict", "--model", "org/sharded", "x"], offline)
    assert proc.returncode == 2 and "not in the cache" in proc.stderr
    # nothing listening at the endpoint: the cache answers at once (huggingface_hub alone retries 23 s per file)
    dead = {**env, "HF_ENDPOINT": "http://127.0.0.1:9"}
    start = time.perf_counter()
    assert _cli(["predict", "--model", "org/clf", "--revision", "v1", "x"], dead).returncode == 0
    assert time.perf_counter() - start < 15


def test_a_push_between_two_downloads_does_not_mix_commits(hub, tmp_path):
    """The first file fetched pins the commit main pointed to; main moves on after config.json was served (a push),
    and the weights still come from the first commit, asked for by its hash."""
    server, dirs = hub
    first = server.add("org/moving", dirs["clf_v1"])
    pushed: list[str] = []

    def push(method: str, repo_id: str, filename: str) -> None:
        if method == "GET" and repo_id == "org/moving" and filename == "config.json" and not pushed:
            pushed.append(server.add("org/moving", dirs["clf_main"]))

    code = f"""
    import json, torch
    from albert import AlbertForSequenceClassification as Clf
    ids, mask = torch.tensor({IDS}), torch.tensor({MASK})
    names = ["org/moving", {str(dirs["clf_v1"])!r}]  # by hub id, and the first commit's files on disk
    with torch.no_grad():
        print(json.dumps([Clf.from_pretrained(name)(ids, mask).logits.tolist() for name in names]))
    """
    server.on_file = push
    try:
        loaded, first_commit = _run(code, {"HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path)})
    finally:
        server.on_file = None
    assert pushed and server.repos["org/moving"].branches["main"] == pushed[0] != first  # main moved mid-load
    assert loaded == first_commit  # bit for bit: the first commit's weights, not the pushed ones
    asked = [path for _, path in server.requests if path.startswith("/org/moving/resolve/")]
    later = [path for path in asked if not path.endswith("/config.json")]
    assert later and all(path.startswith(f"/org/moving/resolve/{first}/") for path in later), asked
