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
TF1 = ROOT / "tests" / "fixtures" / "tf1"  # the same graphs written by TensorFlow 1.15, plus snappy-index copies
ALL = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
ALL_TF1 = sorted(p.name for p in TF1.iterdir() if p.is_dir())


def _tf_bytes(array: np.ndarray, dtype: str) -> bytes:
    """The bytes TensorFlow held: bfloat16 is read back widened to float32, so take its top halves."""
    if dtype == "bfloat16":
        array = (array.view(np.uint32) >> 16).astype(np.uint16)
    return np.ascontiguousarray(array).tobytes()


@pytest.mark.parametrize(
    "src", [FIXTURES / n for n in ALL] + [TF1 / n for n in ALL_TF1], ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_every_variable_matches_what_tensorflow_wrote(src):
    ckpt = TFCheckpoint(src)
    expected = json.loads((src / "checksums.json").read_text())
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


def _block_types(index_path) -> list[int]:
    """The compression byte of every block the index's footer and index block point at (0 raw, 1 snappy)."""
    from albert.tfcheckpoint import _block_entries, _read_block, _varint

    data = index_path.read_bytes()
    footer = data[-48:]
    pos, types = 0, []
    _, pos = _varint(footer, pos)  # metaindex handle
    _, pos = _varint(footer, pos)
    offset, pos = _varint(footer, pos)
    size, pos = _varint(footer, pos)
    types.append(data[offset + size])
    for _, handle in _block_entries(_read_block(data, offset, size, index_path, "index")):
        block_offset, p = _varint(handle, 0)
        block_size, _ = _varint(handle, p)
        types.append(data[block_offset + block_size])
    return types


@pytest.mark.parametrize("name", ["google_zh_squad", "brightmart_tiny"])
def test_snappy_compressed_index_reads_like_the_raw_one(name):
    raw, packed = TF1 / name / "model.ckpt.index", TF1 / f"{name}_snappy" / "model.ckpt.index"
    assert set(_block_types(raw)) == {0}
    # the data blocks are compressed; a block snappy cannot shrink by 1/8 stays raw, as TensorFlow's builder does
    assert _block_types(packed).count(1) >= 2
    assert packed.stat().st_size < raw.stat().st_size
    a, b = TFCheckpoint(TF1 / name), TFCheckpoint(TF1 / f"{name}_snappy")
    assert a.entries == b.entries and a.num_shards == b.num_shards


def test_snappy_block_with_a_flipped_byte_fails_its_checksum(tmp_path):
    shutil.copytree(TF1 / "brightmart_tiny_snappy", tmp_path / "ckpt")
    index = tmp_path / "ckpt" / "model.ckpt.index"
    good = index.read_bytes()
    index.write_bytes(good[:20] + bytes([good[20] ^ 0x01]) + good[21:])
    with pytest.raises(CheckpointError, match="checksum mismatch in the data block"):
        TFCheckpoint(tmp_path / "ckpt")
