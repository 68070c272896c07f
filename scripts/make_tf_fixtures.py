"""Write the TensorFlow checkpoint fixtures in tests/fixtures/tf/ with TensorFlow's own saver.

Run it in a throwaway virtual environment that has TensorFlow (it is not a dependency of albert-lite):

    python3.11 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu
    /tmp/tfvenv/bin/python scripts/make_tf_fixtures.py tests/fixtures/tf
    /tmp/tfvenv/bin/python scripts/make_tf_fixtures.py --base /tmp/albert_base_tf   # for benchmarks/convert.py

and, for tests/fixtures/tf1/ (the same graphs as TensorFlow 1.15 writes them, which is what the 2019 releases are),
in a Python 3.7 environment:

    python3.7 -m venv /tmp/tf1venv
    /tmp/tf1venv/bin/pip install "tensorflow==1.15.5" "numpy<1.19" "protobuf<3.21" cramjam
    /tmp/tf1venv/bin/python scripts/make_tf_fixtures.py --tf1 tests/fixtures/tf1

pip's TF 1.15 builds store .index blocks raw, but builds with snappy (as some released Chinese checkpoints were
written) compress them; ``--tf1`` therefore also writes ``*_snappy`` copies whose index is re-encoded with
snappy-compressed blocks, entry for entry the same table.

Each fixture is a small model under the exact variable names of one real layout, saved by
``tf.compat.v1.train.Saver`` (the V2 bundle format every TF1 ALBERT/BERT checkpoint uses):

- google_pretrain: Google's ``bert/…`` names, E≠H, 2 groups × 2 inner groups, MLM + SOP heads, LAMB/Adam slots
  (``adam_m``/``adam_v``) and ``global_step``, written as two shards.
- hub_classifier: a TF-Hub fine-tuned classifier (``module/`` prefix, ``output_weights``/``output_bias``).
- google_zh_squad: Google's Chinese layout (ReLU, WordPiece vocab.txt) fine-tuned for SQuAD (``cls/squad/…``), plus
  variables no converter knows (``answer_class/…``) that must be listed, not dropped silently.
- brightmart_tiny / brightmart_preln: brightmart/albert_zh's own graph (``word_embeddings_2``, H-wide position and
  token-type embeddings, ``layer_shared``), post-LN and pre-LN.
- bert_tf: Google's BERT layout (``layer_N``, E = H, nothing shared).
- dtypes: one variable per dtype the reader supports (float32, float16, bfloat16, int64, int32).

Besides the checkpoint, each directory gets ``albert_config.json``, ``checksums.json`` (SHA-256 of every variable's
bytes as TensorFlow holds them) and ``reference.npz``: the outputs TensorFlow computes for fixed inputs with the
layout's own graph (the official modeling.py semantics: tanh GELU, post-LN, -10000 attention mask; brightmart's
factorised embedding and pre-LN), so tests can compare a converted model with TensorFlow itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1
tf1.disable_eager_execution()

INPUT_IDS = np.array([[2, 17, 9, 33, 41, 3, 25, 8, 3], [2, 5, 60, 12, 3, 44, 3, 0, 0]], dtype=np.int32)
INPUT_MASK = np.array([[1] * 9, [1] * 7 + [0] * 2], dtype=np.int32)
TOKEN_TYPES = np.array([[0] * 6 + [1] * 3, [0] * 5 + [1] * 2 + [0] * 2], dtype=np.int32)


def gelu(x):  # modeling.py's gelu: the tanh approximation
    return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))


def activation(name):
    return {"gelu": gelu, "relu": tf.nn.relu}[name]


def layer_norm(x, scope, eps=1e-12):  # tf.contrib.layers.layer_norm: epsilon 1e-12, statistics over the last axis
    mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) * tf.math.rsqrt(var + eps) * scope["gamma"] + scope["beta"]


class Vars:
    """Creates variables with a seeded truncated normal and remembers them by name."""

    def __init__(self, seed: int, scale: float = 0.3):
        self.rng = np.random.default_rng(seed)
        self.scale = scale  # large against the 0.02 init so that a misplaced tensor changes every output
        self.v: dict[str, tf1.Variable] = {}

    def make(self, name, shape, kind="normal", dtype=tf.float32):
        if kind == "normal":
            value = np.clip(self.rng.normal(0, self.scale, shape), -2 * self.scale, 2 * self.scale)
        elif kind == "gamma":
            value = 1.0 + self.rng.normal(0, 0.1, shape)
        else:  # bias / beta: small but non-zero so a swapped bias shows
            value = self.rng.normal(0, 0.1, shape)
        var = tf1.get_variable(name, initializer=tf.constant(value.astype(np.float32), dtype=dtype))
        self.v[name] = var
        return var

    def dense(self, scope, n_in, n_out):
        return {"kernel": self.make(f"{scope}/kernel", [n_in, n_out]), "bias": self.make(f"{scope}/bias", [n_out], "b")}

    def norm(self, scope, n):
        return {"gamma": self.make(f"{scope}/gamma", [n], "gamma"), "beta": self.make(f"{scope}/beta", [n], "b")}


def apply(d, x, act=None):
    y = tf.matmul(x, d["kernel"]) + d["bias"]
    return act(y) if act else y


def attention(block, x, mask_adder, heads):
    B, T, H = INPUT_IDS.shape[0], INPUT_IDS.shape[1], int(x.shape[-1])  # int(): a Dimension in TF 1.x
    hs = H // heads

    def split(t):
        return tf.transpose(tf.reshape(t, [B, T, heads, hs]), [0, 2, 1, 3])

    q, k, v = (split(apply(block[n], x)) for n in ("query", "key", "value"))
    scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(hs) + mask_adder
    ctx = tf.matmul(tf.nn.softmax(scores), v)
    return apply(block["attn_out"], tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [B, T, H]))


def run_block(block, x, mask_adder, cfg):
    act = activation(cfg["hidden_act"])
    if cfg.get("ln_type") == "preln":  # brightmart's prelln_transformer_model: no LayerNorm after the last layer
        x = x + attention(block, layer_norm(x, block["attn_norm"]), mask_adder, cfg["num_attention_heads"])
        return x + apply(block["ffn_out"], apply(block["ffn_in"], layer_norm(x, block["ffn_norm"]), act))
    x = layer_norm(x + attention(block, x, mask_adder, cfg["num_attention_heads"]), block["attn_norm"])
    return layer_norm(x + apply(block["ffn_out"], apply(block["ffn_in"], x, act)), block["ffn_norm"])


def make_block(vs, scope_of, H, F):
    """scope_of maps our part name to the variable scope the layout uses for it."""
    block = {n: vs.dense(scope_of[n], H, H) for n in ("query", "key", "value", "attn_out")}
    block["ffn_in"] = vs.dense(scope_of["ffn_in"], H, F)
    block["ffn_out"] = vs.dense(scope_of["ffn_out"], F, H)
    block["attn_norm"] = vs.norm(scope_of["attn_norm"], H)
    block["ffn_norm"] = vs.norm(scope_of["ffn_norm"], H)
    return block


GOOGLE_SCOPES = {
    "query": "attention_1/self/query",
    "key": "attention_1/self/key",
    "value": "attention_1/self/value",
    "attn_out": "attention_1/output/dense",
    "attn_norm": "LayerNorm",
    "ffn_in": "ffn_1/intermediate/dense",
    "ffn_out": "ffn_1/intermediate/output/dense",
    "ffn_norm": "LayerNorm_1",
}
BERT_SCOPES = {  # Google BERT and brightmart: layer_N or layer_shared
    "query": "attention/self/query",
    "key": "attention/self/key",
    "value": "attention/self/value",
    "attn_out": "attention/output/dense",
    "attn_norm": "attention/output/LayerNorm",
    "ffn_in": "intermediate/dense",
    "ffn_out": "output/dense",
    "ffn_norm": "output/LayerNorm",
}


def build(cfg, layout, vs, prefix="", heads=("mlm", "sop")):
    """Create the layout's variables and return TensorFlow's outputs for the fixed inputs."""
    V, E, H, F = cfg["vocab_size"], cfg["embedding_size"], cfg["hidden_size"], cfg["intermediate_size"]
    L, P = cfg["num_hidden_layers"], cfg["max_position_embeddings"]
    B, T = INPUT_IDS.shape
    b = prefix + "bert"
    word = vs.make(f"{b}/embeddings/word_embeddings", [V, E])
    x = tf.gather(word, INPUT_IDS)
    width = E
    if layout == "brightmart":  # projection inside the embedding; position/type embeddings are H wide
        word2 = vs.make(f"{b}/embeddings/word_embeddings_2", [E, H])
        x, width = tf.matmul(x, word2), H
    x = x + vs.make(f"{b}/embeddings/position_embeddings", [P, width])[:T]
    x = x + tf.gather(vs.make(f"{b}/embeddings/token_type_embeddings", [cfg["type_vocab_size"], width]), TOKEN_TYPES)
    x = layer_norm(x, vs.norm(f"{b}/embeddings/LayerNorm", width))
    mask_adder = (1.0 - tf.cast(INPUT_MASK[:, None, None, :], tf.float32)) * -10000.0
    if layout == "google":
        if E != H:
            x = apply(vs.dense(f"{b}/encoder/embedding_hidden_mapping_in", E, H), x)
        G, I = cfg["num_hidden_groups"], cfg["inner_group_num"]
        groups = [
            [
                make_block(
                    vs,
                    {n: f"{b}/encoder/transformer/group_{g}/inner_group_{i}/{s}" for n, s in GOOGLE_SCOPES.items()},
                    H,
                    F,
                )
                for i in range(I)
            ]
            for g in range(G)
        ]
        for layer in range(L):
            for block in groups[int(layer / L * G)]:
                x = run_block(block, x, mask_adder, cfg)
    else:  # brightmart (layer_shared) or BERT (layer_N)
        shared = layout == "brightmart"
        blocks = [
            make_block(
                vs,
                {n: f"{b}/encoder/{'layer_shared' if shared else f'layer_{n_}'}/{s}" for n, s in BERT_SCOPES.items()},
                H,
                F,
            )
            for n_ in range(1 if shared else L)
        ]
        for layer in range(L):
            x = run_block(blocks[0 if shared else layer], x, mask_adder, cfg)
    out = {"sequence_output": x}
    out["pooled_output"] = apply(vs.dense(f"{b}/pooler/dense", H, H), x[:, 0], tf.tanh)
    act = activation(cfg["hidden_act"])
    if "mlm" in heads:
        c = prefix + "cls/predictions"
        if layout == "brightmart":  # transform stays H wide, then back through word_embeddings_2 and the table
            h = layer_norm(
                apply(vs.dense(f"{c}/transform/dense", H, H), x, act), vs.norm(f"{c}/transform/LayerNorm", H)
            )
            h = tf.matmul(h, word2, transpose_b=True)
        else:
            h = layer_norm(
                apply(vs.dense(f"{c}/transform/dense", H, E), x, act), vs.norm(f"{c}/transform/LayerNorm", E)
            )
        out["mlm_logits"] = tf.matmul(h, word, transpose_b=True) + vs.make(f"{c}/output_bias", [V], "b")
    if "sop" in heads:
        w = vs.make(f"{prefix}cls/seq_relationship/output_weights", [2, H])
        out["sop_logits"] = tf.matmul(out["pooled_output"], w, transpose_b=True) + vs.make(
            f"{prefix}cls/seq_relationship/output_bias", [2], "b"
        )
    if "classifier" in heads:
        n = cfg["num_labels"]
        w, bias = vs.make("output_weights", [n, H]), vs.make("output_bias", [n], "b")
        out["classifier_logits"] = tf.matmul(out["pooled_output"], w, transpose_b=True) + bias
    if "squad" in heads:
        w, bias = vs.make("cls/squad/output_weights", [2, H]), vs.make("cls/squad/output_bias", [2], "b")
        logits = tf.einsum("bth,nh->bnt", x, w) + bias[None, :, None]
        out["start_logits"], out["end_logits"] = logits[:, 0], logits[:, 1]
    return out


def add_optimizer_slots(vs):
    for name in list(vs.v):
        for slot in ("adam_m", "adam_v"):
            shape = vs.v[name].shape.as_list()
            tf1.get_variable(f"{name}/{slot}", initializer=tf.zeros(shape))
    tf1.get_variable("global_step", initializer=tf.constant(1234, dtype=tf.int64))


def save_fixture(out_dir: Path, cfg: dict, make, sharded: bool = False):
    out_dir.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        outputs = make()
        saver = tf1.train.Saver(sharded=sharded)
        config = tf1.ConfigProto(device_count={"CPU": 2})
        with tf1.Session(graph=graph, config=config) as sess:
            sess.run(tf1.global_variables_initializer())
            saver.save(sess, str(out_dir / "model.ckpt"), write_meta_graph=False, write_state=True)
            values = {v.op.name: sess.run(v) for v in tf1.global_variables()}
            np.savez(out_dir / "reference.npz", **{k: sess.run(t) for k, t in outputs.items()})
    checksums = {
        name: {
            "sha256": hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest(),
            "dtype": str(v.dtype),
            "shape": list(v.shape),
        }
        for name, v in sorted(values.items())
    }
    (out_dir / "checksums.json").write_text(json.dumps(checksums, indent=1) + "\n")
    if cfg:
        (out_dir / "albert_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    # The state file TF writes holds absolute paths; rewrite it relative so the fixture can move.
    (out_dir / "checkpoint").write_text(
        'model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: "model.ckpt"\n'
    )
    print(out_dir, len(values), "variables")


def config(**kw):
    base = dict(
        vocab_size=64,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=4,
        num_hidden_groups=1,
        inner_group_num=1,
        num_attention_heads=4,
        intermediate_size=48,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=24,
        type_vocab_size=2,
        initializer_range=0.02,
    )
    return {**base, **kw}


def main(root: Path, only: tuple[str, ...] = ()) -> None:
    """Every fixture, or those named in ``only``."""
    cfg = config(num_hidden_groups=2, inner_group_num=2)

    def save(out_dir: Path, *args, **kwargs):
        if not only or out_dir.name in only:
            save_fixture(out_dir, *args, **kwargs)

    def google_pretrain():
        vs = Vars(1)
        with tf.device("/cpu:0"):
            out = build(cfg, "google", vs)
        with tf.device("/cpu:1"):
            add_optimizer_slots(vs)
        return out

    save(root / "google_pretrain", cfg, google_pretrain, sharded=True)

    hub_cfg = config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

    def hub_classifier():
        vs = Vars(2)
        out = build({**hub_cfg, "num_labels": 3}, "google", vs, prefix="module/", heads=("classifier",))
        add_optimizer_slots(vs)
        return out

    save(root / "hub_classifier", hub_cfg, hub_classifier)

    zh_cfg = config(hidden_act="relu", num_hidden_layers=3)

    def google_zh_squad():
        vs = Vars(3)
        out = build(zh_cfg, "google", vs, heads=("squad",))
        # SQuAD 2.0's XLNet-style answer-class layer: no converter maps it; it must be reported, not lost.
        tf1.get_variable("answer_class/dense/kernel", initializer=tf.ones([64, 32]))
        tf1.get_variable("answer_class/dense/bias", initializer=tf.zeros([32]))
        return out

    save(root / "google_zh_squad", zh_cfg, google_zh_squad)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    hanzi = [chr(c) for c in range(0x4E00, 0x4E00 + 40)]
    (root / "google_zh_squad" / "vocab.txt").write_text(
        "\n".join(specials + hanzi + ["##" + h for h in hanzi[:19]]) + "\n"
    )

    bm_cfg = config(
        embedding_size=16,
        num_hidden_layers=3,
        ln_type="postln",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    save(root / "brightmart_tiny", bm_cfg, lambda: build(bm_cfg, "brightmart", Vars(4)))
    pre_cfg = {**bm_cfg, "ln_type": "preln"}
    save(root / "brightmart_preln", pre_cfg, lambda: build(pre_cfg, "brightmart", Vars(5)))

    bert_cfg = config(embedding_size=32, num_hidden_layers=2)
    bert_cfg.pop("embedding_size")
    bert_cfg = {k: v for k, v in bert_cfg.items() if k not in ("num_hidden_groups", "inner_group_num")}
    save(root / "bert_tf", bert_cfg, lambda: build({**bert_cfg, "embedding_size": 32}, "bert", Vars(6)))

    def dtypes():
        tf1.get_variable("f32", initializer=tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3) / 4))
        tf1.get_variable("f16", initializer=tf.constant(np.arange(6, dtype=np.float16).reshape(3, 2) / 8))
        tf1.get_variable("bf16", initializer=tf.cast(tf.constant([[-1.5, 0.25, 3.0, 1e-3]]), tf.bfloat16))
        tf1.get_variable("i64", initializer=tf.constant([1 << 40, -7], dtype=tf.int64))
        tf1.get_variable("i32", initializer=tf.constant([[3, -4]], dtype=tf.int32))
        tf1.get_variable("scalar", initializer=tf.constant(2.5))
        return {}

    save(root / "dtypes", {}, dtypes)


def base_checkpoint(out_dir: Path) -> None:
    """An albert-base-v2-shaped pretraining checkpoint with Adam slots (~140 MB; for benchmarks/convert.py)."""
    cfg = config(
        vocab_size=30000,
        embedding_size=128,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )

    def make():
        vs = Vars(7, scale=0.05)  # 0.3 would saturate a 768-wide model
        out = build(cfg, "google", vs)
        add_optimizer_slots(vs)
        return out

    save_fixture(out_dir, cfg, make)


# ----------------------------------------------------------------------------------------------------------------
# TensorFlow 1.x: the same graphs written by TF 1.15, and copies whose .index blocks are snappy-compressed
# ----------------------------------------------------------------------------------------------------------------
TF1_FIXTURES = ("google_pretrain", "hub_classifier", "google_zh_squad", "brightmart_tiny")


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf: bytes, pos: int):
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _block_entries(block: bytes):
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit, pos, key, out = len(block) - 4 - 4 * restarts, 0, b"", []
    while pos < limit:
        shared, pos = _read_varint(block, pos)
        unshared, pos = _read_varint(block, pos)
        size, pos = _read_varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        out.append((key, block[pos + unshared : pos + unshared + size]))
        pos += unshared + size
    return out


def _read_index(path: Path):
    """The (key, value) entries of an uncompressed TF table (leveldb format), as TensorFlow wrote it."""
    data = path.read_bytes()
    footer = data[-48:]
    _, pos = _read_varint(footer, 0)
    _, pos = _read_varint(footer, pos)
    index_offset, pos = _read_varint(footer, pos)
    index_size, _ = _read_varint(footer, pos)
    entries = []
    for _, handle in _block_entries(data[index_offset : index_offset + index_size]):
        offset, pos = _read_varint(handle, 0)
        size, _ = _read_varint(handle, pos)
        assert data[offset + size] == 0, "expected TensorFlow's uncompressed blocks"
        entries += _block_entries(data[offset : offset + size])
    return entries


def _build_block(entries, restart_interval: int = 16) -> bytes:
    out, restarts, last = bytearray(), [], b""
    for n, (key, value) in enumerate(entries):
        shared = 0
        if n % restart_interval:
            while shared < min(len(key), len(last)) and key[shared] == last[shared]:
                shared += 1
        else:
            restarts.append(len(out))
        out += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        last = key
    for r in restarts:
        out += struct.pack("<I", r)
    return bytes(out + struct.pack("<I", len(restarts)))


def write_snappy_table(entries, path: Path, block_size: int = 1024) -> int:
    """Write a table as TensorFlow's table builder does with kSnappyCompression: a block is stored compressed (type
    1, CRC over the compressed bytes + type) when that saves at least 1/8, else raw. Returns the compressed count."""
    import cramjam

    out, compressed_blocks = bytearray(), 0

    def write_block(raw: bytes) -> bytes:
        nonlocal compressed_blocks
        packed = bytes(cramjam.snappy.compress_raw(raw))
        body, kind = (packed, b"\x01") if len(packed) < len(raw) - len(raw) // 8 else (raw, b"\x00")
        compressed_blocks += kind == b"\x01"
        handle = _varint(len(out)) + _varint(len(body))
        out.extend(body + kind + struct.pack("<I", _masked_crc(body + kind)))
        return handle

    index, pending, size = [], [], 0
    for key, value in entries:
        pending.append((key, value))
        size += len(key) + len(value)
        if size >= block_size:
            index.append((pending[-1][0], write_block(_build_block(pending))))
            pending, size = [], 0
    if pending:
        index.append((pending[-1][0], write_block(_build_block(pending))))
    meta_handle = write_block(_build_block([]))  # the empty metaindex block
    index_handle = write_block(_build_block(index, restart_interval=1))
    footer = (meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", 0xDB4775248B80FB57)
    path.write_bytes(bytes(out + footer))
    return compressed_blocks


def tf1_fixtures(root: Path) -> None:
    """TF 1.x's own files (run this in a TF 1.15 environment), plus snappy-index copies of the Chinese ones."""
    assert tf.__version__.startswith("1."), f"run under TensorFlow 1.x, found {tf.__version__}"
    main(root, TF1_FIXTURES)
    for name in ("google_zh_squad", "brightmart_tiny"):
        src, dst = root / name, root / f"{name}_snappy"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst)
        compressed = write_snappy_table(_read_index(src / "model.ckpt.index"), dst / "model.ckpt.index")
        assert compressed >= 2, compressed
        print(dst, f"index rewritten: {compressed} snappy-compressed blocks")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--base"]:
        base_checkpoint(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["--tf1"]:
        tf1_fixtures(Path(sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/tf1"))
    else:
        main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/tf"))
