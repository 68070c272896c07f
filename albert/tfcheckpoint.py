"""Read TensorFlow checkpoints (the V2 "tensor bundle" format) with Python and NumPy only; no TensorFlow needed.

A checkpoint ``PREFIX`` is ``PREFIX.index`` plus ``PREFIX.data-00000-of-0000N``. The index is a LevelDB-style
sorted table: data blocks of prefix-compressed ``key → value`` entries, an index block pointing at them and a fixed
48-byte footer; a block is stored raw or snappy-compressed (LevelDB's default, which TensorFlow builds with snappy
use when merging sharded bundles; decompressed with cramjam). The empty key holds a ``BundleHeaderProto`` (number of
shards, byte order); every other key is a variable name whose value is a ``BundleEntryProto`` (dtype, shape, shard,
offset, size, masked CRC32C). The tensor's bytes sit at that offset in that shard, raw and little-endian.

Every block and every tensor carries a CRC32C, and both are checked, so a corrupt or truncated file is reported as
such, naming the file and the variable, instead of producing wrong weights.
(Format: tensorflow/core/util/tensor_bundle/tensor_bundle.{h,cc,proto} and tensorflow/core/lib/io/table*.)
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from albert.errors import CheckpointError
from albert.extras import require

_FOOTER_SIZE = 48
_TABLE_MAGIC = 0xDB4775248B80FB57
_BLOCK_TRAILER = 5  # compression type byte + masked CRC32C (over the stored, possibly compressed, bytes + type)
_SNAPPY = 1  # tensorflow/core/lib/io/table_options.h: kNoCompression = 0, kSnappyCompression = 1

# TensorFlow DataType enum → NumPy dtype (bfloat16 is read as uint16 bits and widened to float32, losslessly).
_DTYPES: dict[int, tuple[str, np.dtype]] = {
    1: ("float32", np.dtype("<f4")),
    2: ("float64", np.dtype("<f8")),
    3: ("int32", np.dtype("<i4")),
    4: ("uint8", np.dtype("u1")),
    5: ("int16", np.dtype("<i2")),
    6: ("int8", np.dtype("i1")),
    9: ("int64", np.dtype("<i8")),
    10: ("bool", np.dtype("?")),
    14: ("bfloat16", np.dtype("<u2")),
    17: ("uint16", np.dtype("<u2")),
    19: ("float16", np.dtype("<f2")),
    22: ("uint32", np.dtype("<u4")),
    23: ("uint64", np.dtype("<u8")),
}
_NUMPY_DTYPE = {name: np_dtype for name, np_dtype in _DTYPES.values()}  # TensorFlow's name → NumPy dtype
_DTYPE_NAMES = {7: "string", 8: "complex64", 18: "complex128", 20: "resource", 21: "variant"}


# ----------------------------------------------------------------------------------------------------------------
# CRC32C (Castagnoli) as LevelDB/TensorFlow store it: "masked" so that a CRC of data containing CRCs stays strong
# ----------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _crc32c_module():
    return require("google_crc32c", "reading TensorFlow checkpoints (CRC32C checksums)")


def _crc32c(data: bytes | memoryview) -> int:
    return _crc32c_module().value(bytes(data))


def _unmask(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------------------------
# Protocol-buffer wire format: just enough to read BundleHeaderProto and BundleEntryProto
# ----------------------------------------------------------------------------------------------------------------
def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end of its buffer")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes | memoryview) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varint/fixed fields, bytes for length-delimited ones."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos : pos + length]), pos + length
            if pos > len(buf):
                raise ValueError("length-delimited field runs past the end of its buffer")
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


@dataclass(frozen=True)
class TensorEntry:
    """Where one variable's bytes are and what they are."""

    name: str
    dtype: str  # "float32", "bfloat16", ... (TensorFlow's names)
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None  # masked, as stored
    sliced: bool = False  # a partitioned variable (its parts are stored under other keys)


def _parse_entry(name: str, value: bytes) -> TensorEntry:
    dtype_id, shape, shard, offset, size, crc, sliced = 0, (), 0, 0, 0, None, False
    for number, field in _fields(value):
        if number == 1:
            dtype_id = field
        elif number == 2:
            dims = []
            for dim_number, dim in _fields(field):
                if dim_number == 2:
                    size_field = [v for n, v in _fields(dim) if n == 1]
                    dims.append(size_field[0] if size_field else 0)
            shape = tuple(dims)
        elif number == 3:
            shard = field
        elif number == 4:
            offset = field
        elif number == 5:
            size = field
        elif number == 6:
            crc = field
        elif number == 7:
            sliced = True
    dtype = _DTYPES[dtype_id][0] if dtype_id in _DTYPES else _DTYPE_NAMES.get(dtype_id, f"dtype#{dtype_id}")
    return TensorEntry(name, dtype, tuple(int(d) for d in shape), shard, offset, size, crc, sliced)


# ----------------------------------------------------------------------------------------------------------------
# The sorted table (.index)
# ----------------------------------------------------------------------------------------------------------------
def _read_block(data: bytes, offset: int, size: int, path: Path, what: str) -> memoryview:
    end = offset + size + _BLOCK_TRAILER
    if end > len(data):
        raise CheckpointError(f"{path}: truncated ({what} ends at byte {end}, the file has {len(data)})")
    block = memoryview(data)[offset : offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    if _unmask(stored) != _crc32c(data[offset : offset + size + 1]):
        raise CheckpointError(f"{path}: checksum mismatch in {what} (the index file is corrupt)")
    if kind == _SNAPPY:  # TF 1.x's merged bundles (Estimator/TPU checkpoints) compress index blocks with snappy
        try:
            import cramjam
        except ImportError:
            raise CheckpointError(
                f"{path}: {what} is snappy-compressed; reading it needs cramjam: pip install 'albert-lite[tf]'"
            ) from None
        try:
            return memoryview(bytes(cramjam.snappy.decompress_raw(bytes(block))))
        except Exception as err:  # cramjam reports bad input as DecompressionError
            raise CheckpointError(f"{path}: {what} does not decompress ({err}); the index file is corrupt") from None
    if kind != 0:
        raise CheckpointError(f"{path}: {what} uses compression type {kind}; TensorFlow writes 0 (none) or 1 (snappy)")
    return block


def _block_entries(block: memoryview) -> list[tuple[bytes, memoryview]]:
    """Decode one block: entries share a key prefix with the previous entry; a restart array ends the block."""
    if len(block) < 4:
        raise ValueError("block shorter than its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise ValueError("restart array larger than the block")
    entries, key, pos = [], b"", 0
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise ValueError("entry runs past the end of its block")
        key = key[:shared] + bytes(block[pos : pos + unshared])
        pos += unshared
        entries.append((key, block[pos : pos + value_len]))
        pos += value_len
    return entries


def _read_table(path: Path) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    if len(data) < _FOOTER_SIZE:
        raise CheckpointError(f"{path}: truncated ({len(data)} bytes, shorter than the table footer)")
    footer = data[-_FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, _FOOTER_SIZE - 8)
    if magic != _TABLE_MAGIC:
        raise CheckpointError(f"{path}: not a TensorFlow checkpoint index (bad magic number; truncated or wrong file)")
    try:
        _, pos = _varint(footer, 0)  # metaindex handle: unused
        _, pos = _varint(footer, pos)
        index_offset, pos = _varint(footer, pos)
        index_size, pos = _varint(footer, pos)
        entries: list[tuple[bytes, bytes]] = []
        for _, handle in _block_entries(_read_block(data, index_offset, index_size, path, "the index block")):
            offset, hpos = _varint(handle, 0)
            size, _ = _varint(handle, hpos)
            block = _read_block(data, offset, size, path, f"the data block at byte {offset}")
            entries.extend((key, bytes(value)) for key, value in _block_entries(block))
    except CheckpointError:
        raise
    except ValueError as err:
        raise CheckpointError(f"{path}: corrupt index ({err})") from None
    return entries


# ----------------------------------------------------------------------------------------------------------------
# Finding the checkpoint a user means
# ----------------------------------------------------------------------------------------------------------------
def resolve_prefix(path: str | Path) -> Path:
    """The checkpoint prefix for what a user may pass: the prefix itself (``model.ckpt-best``), its ``.index`` or a
    ``.data-…`` file, a directory with a ``checkpoint`` state file or a single ``*.index``, or a TF-Hub / SavedModel
    directory (``variables/variables.index``)."""
    path = Path(path)
    text = str(path)
    if text.endswith(".index"):
        return Path(text[: -len(".index")])
    if re.search(r"\.data-\d{5}-of-\d{5}$", text):
        return Path(re.sub(r"\.data-\d{5}-of-\d{5}$", "", text))
    if Path(text + ".index").is_file():
        return path
    if path.is_dir():
        if (path / "variables" / "variables.index").is_file():
            return path / "variables" / "variables"
        state = path / "checkpoint"
        if state.is_file():
            match = re.search(r'^model_checkpoint_path:\s*"(.*)"', state.read_text(errors="replace"), re.M)
            if match:
                # The state file often holds the absolute path of the machine that wrote it (brightmart's zips do):
                # fall back to the same name here, then to the only index present.
                target = Path(match.group(1))
                for candidate in (target if target.is_absolute() else path / target, path / target.name):
                    if Path(str(candidate) + ".index").is_file():
                        return candidate
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:
            return Path(str(indexes[0])[: -len(".index")])
        if indexes:
            names = ", ".join(p.name for p in indexes[:5])
            raise CheckpointError(f"{path}: several checkpoints ({names}); pass the one you want, e.g. {indexes[-1]}")
        raise CheckpointError(f"{path}: no TensorFlow checkpoint here (no *.index, no 'checkpoint' file)")
    raise CheckpointError(f"{path}: no such checkpoint (expected {path}.index and {path}.data-00000-of-…)")


def is_tf_checkpoint(path: str | Path) -> bool:
    try:
        prefix = resolve_prefix(path)
        return prefix.with_name(prefix.name + ".index").is_file()
    except CheckpointError:
        return False


# ----------------------------------------------------------------------------------------------------------------
# The reader
# ----------------------------------------------------------------------------------------------------------------
class TFCheckpoint:
    """``TFCheckpoint(path)``: list variables without reading them; ``read(name)`` returns one as a NumPy array."""

    def __init__(self, path: str | Path):
        self.prefix = resolve_prefix(path)
        self.index_path = Path(str(self.prefix) + ".index")
        if not self.index_path.is_file():
            raise CheckpointError(f"{self.index_path}: checkpoint index file is missing")
        self.num_shards = 1
        self.entries: dict[str, TensorEntry] = {}
        for key, value in _read_table(self.index_path):
            try:
                if key == b"":
                    header = dict(_fields(value))
                    self.num_shards = int(header.get(1, 1))
                    if header.get(2, 0) != 0:
                        raise CheckpointError(f"{self.index_path}: big-endian checkpoints are not supported")
                    continue
                name = key.decode("utf-8")
                self.entries[name] = _parse_entry(name, value)
            except (ValueError, UnicodeDecodeError) as err:
                raise CheckpointError(f"{self.index_path}: corrupt entry for {key[:80]!r} ({err})") from None
        self._shard_data: dict[int, memoryview] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def shard_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def _shard(self, shard: int) -> memoryview:
        if shard not in self._shard_data:
            path = self.shard_path(shard)
            if not path.is_file():
                raise CheckpointError(f"{path}: checkpoint data shard is missing")
            # Memory-mapped: an xxlarge checkpoint with optimizer slots is several GB and we read only some of it.
            size = path.stat().st_size
            self._shard_data[shard] = memoryview(np.memmap(path, dtype=np.uint8, mode="r") if size else b"")
        return self._shard_data[shard]

    def read(self, name: str, verify: bool = True) -> np.ndarray:
        """The variable's value. float32/16, bfloat16 (as float32) and integer dtypes are supported."""
        entry = self.entries.get(name)
        if entry is None:
            raise CheckpointError(f"{self.prefix}: no variable named {name!r}")
        if entry.sliced:
            raise CheckpointError(f"{self.prefix}: '{name}' is a partitioned variable, which is not supported")
        np_dtype = _NUMPY_DTYPE.get(entry.dtype)
        if np_dtype is None:
            raise CheckpointError(f"{self.prefix}: '{name}' has dtype {entry.dtype}, which cannot be read as an array")
        data = self._shard(entry.shard)
        if entry.offset + entry.size > len(data):
            raise CheckpointError(
                f"{self.shard_path(entry.shard)}: truncated ('{name}' needs bytes {entry.offset}…"
                f"{entry.offset + entry.size}, the file has {len(data)})"
            )
        raw = data[entry.offset : entry.offset + entry.size]
        if verify and entry.crc32c is not None and _unmask(entry.crc32c) != _crc32c(raw):
            raise CheckpointError(f"{self.shard_path(entry.shard)}: checksum mismatch for '{name}' (corrupt data)")
        count = int(np.prod(entry.shape, dtype=np.int64))
        if count * np_dtype.itemsize != entry.size:
            raise CheckpointError(
                f"{self.prefix}: '{name}' has {entry.size} bytes, expected {count * np_dtype.itemsize} for "
                f"{entry.dtype}{list(entry.shape)}"
            )
        array = np.frombuffer(raw, dtype=np_dtype).reshape(entry.shape).copy()
        if entry.dtype == "bfloat16":  # the top half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array
