"""The TensorFlow checkpoint reader, on files TensorFlow itself wrote (scripts/make_tf_fixtures.py), without TF."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys

import numpy as np
import pytest
from conftest import ROOT

from albert.errors import CheckpointError
from albert.tfcheckpoint import TFCheckpoint, resolve_prefix

FIXTURES = ROOT / "tests" / "fixtures" / "tf"
ALL = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def _tf_bytes(array: np.ndarray, dtype: str) -> bytes:
    """The bytes TensorFlow held: bfloat16 is read back widened to float32, so take its top halves."""
    if dtype == "bfloat16":
        array = (array.view(np.uint32) >> 16).astype(np.uint16)
    return np.ascontiguousarray(array).tobytes()


@pytest.mark.parametrize("name", ALL)
def test_every_variable_matches_what_tensorflow_wrote(name):
    ckpt = TFCheckpoint(FIXTURES / name)
    expected = json.loads((FIXTURES / name / "checksums.json").read_text())
    assert set(ckpt.names()) == set(expected)
    for var, info in expected.items():
        value = ckpt.read(var)
        entry = ckpt.entries[var]
        assert list(value.shape) == info["shape"] == list(entry.shape), var
        assert entry.dtype == info["dtype"], var
        assert hashlib.sha256(_tf_bytes(value, entry.dtype)).hexdigest() == info["sha256"], var
    assert "tensorflow" not in sys.modules


def test_dtypes_are_decoded_to_their_values():
    ckpt = TFCheckpoint(FIXTURES / "dtypes")
    np.testing.assert_array_equal(ckpt.read("f32"), np.arange(6, dtype=np.float32).reshape(2, 3) / 4)
    f16 = ckpt.read("f16")
    assert f16.dtype == np.float16
    np.testing.assert_array_equal(f16, np.arange(6, dtype=np.float16).reshape(3, 2) / 8)
    bf16 = ckpt.read("bf16")
    assert bf16.dtype == np.float32
    np.testing.assert_array_equal(bf16[0, :3], [-1.5, 0.25, 3.0])  # exactly representable in bfloat16
    assert abs(bf16[0, 3] - 1e-3) < 1e-5  # rounded to bfloat16's 8 bits of mantissa
    np.testing.assert_array_equal(ckpt.read("i64"), [1 << 40, -7])
    np.testing.assert_array_equal(ckpt.read("i32"), [[3, -4]])
    assert ckpt.read("scalar").shape == () and float(ckpt.read("scalar")) == 2.5


def test_sharded_checkpoint_reads_from_both_shards():
    ckpt = TFCheckpoint(FIXTURES / "google_pretrain")
    assert ckpt.num_shards == 2
    assert {e.shard for e in ckpt.entries.values()} == {0, 1}


def test_every_way_of_naming_a_checkpoint_finds_it(tmp_path):
    src = FIXTURES / "hub_classifier"
    prefix = src / "model.ckpt"
    for path in (src, prefix, str(prefix) + ".index", str(prefix) + ".data-00000-of-00001"):
        assert resolve_prefix(path) == prefix
    # A TF-Hub module directory keeps its weights in variables/variables.*
    hub = tmp_path / "hub"
    (hub / "variables").mkdir(parents=True)
    for f in src.glob("model.ckpt.*"):
        shutil.copy(f, hub / "variables" / f.name.replace("model.ckpt", "variables"))
    assert len(TFCheckpoint(hub)) == len(TFCheckpoint(src))
    # Two checkpoints and no state file: the user has to say which.
    two = tmp_path / "two"
    two.mkdir()
    for stem in ("model.ckpt-100", "model.ckpt-200"):
        for f in src.glob("model.ckpt.*"):
            shutil.copy(f, two / f.name.replace("model.ckpt", stem))
    with pytest.raises(CheckpointError, match="several checkpoints"):
        TFCheckpoint(two)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        TFCheckpoint(tmp_path / "nothing" / "model.ckpt")


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(FIXTURES / "brightmart_tiny", tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_missing_shard_is_named(copy):
    (copy / "model.ckpt.data-00000-of-00001").unlink()
    ckpt = TFCheckpoint(copy)  # the index alone still lists the variables
    with pytest.raises(CheckpointError, match=r"model\.ckpt\.data-00000-of-00001: checkpoint data shard is missing"):
        ckpt.read(ckpt.names()[0])


def test_truncated_data_file_is_reported(copy):
    data = copy / "model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    ckpt = TFCheckpoint(copy)
    last = max(ckpt.entries.values(), key=lambda e: e.offset)
    with pytest.raises(CheckpointError, match=f"truncated \\('{last.name}' needs bytes"):
        ckpt.read(last.name)


def test_flipped_data_byte_fails_the_checksum(copy):
    ckpt = TFCheckpoint(copy)
    entry = ckpt.entries["bert/embeddings/word_embeddings"]
    data = copy / "model.ckpt.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[entry.offset + 17] ^= 0x40
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="checksum mismatch for 'bert/embeddings/word_embeddings'"):
        TFCheckpoint(copy).read("bert/embeddings/word_embeddings")
    TFCheckpoint(copy).read("bert/pooler/dense/kernel")  # other variables are still readable


def test_corrupt_or_truncated_index_is_reported(copy):
    index = copy / "model.ckpt.index"
    good = index.read_bytes()
    index.write_bytes(good[:30] + bytes([good[30] ^ 0xFF]) + good[31:])
    with pytest.raises(CheckpointError, match="checksum mismatch in the data block"):
        TFCheckpoint(copy)
    index.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="not a TensorFlow checkpoint index"):
        TFCheckpoint(copy)
    index.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated"):
        TFCheckpoint(copy)
