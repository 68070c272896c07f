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
