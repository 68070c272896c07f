"""Release archives opened as published (Google's tarballs, brightmart's zips, TF-Hub tarballs), and extraction that
refuses what a hostile or damaged archive holds.

The archives are laid out like the real releases (member names, config and vocabulary names, a brightmart
``checkpoint`` file holding its author's absolute path, macOS litter) around checkpoints written by TensorFlow 1.15
(tests/fixtures/tf1); a converted archive must equal the same checkpoint converted from a directory, which
test_import.py checks against TensorFlow's own outputs.
"""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from safetensors.torch import load_file

from albert import archives, cli
from albert.errors import CheckpointError

TF1 = ROOT / "tests" / "fixtures" / "tf1"


@pytest.fixture(scope="module")
def spm_model(realdata, tmp_path_factory):
    """A real SentencePiece model small enough for the fixtures' 64-row embeddings (stands in for 30k-clean.model)."""
    from albert import spm

    corpus = tmp_path_factory.mktemp("c") / "brown.txt"
    corpus.write_text("\n".join(realdata.brown_lines()[:2000]), encoding="utf-8")
    tok = spm.train([corpus], tmp_path_factory.mktemp("tok"), vocab_size=60, progress=False)
    return Path(tok.model_file)


def _ckpt_files(src: Path, prefix: str) -> dict[str, bytes]:
    """A fixture's checkpoint files renamed to ``prefix`` (the index does not record its own name)."""
    return {prefix + f.name[len("model.ckpt") :]: f.read_bytes() for f in sorted(src.glob("model.ckpt.*"))}


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def google_tarball(tmp_path: Path, spm_model: Path, with_hub_module: bool = False) -> Path:
    """albert_base_v2.tar.gz: ``albert_base/`` with model.ckpt-best.*, albert_config.json, 30k-clean.model/.vocab."""
    src = TF1 / "google_pretrain"
    members = {f"albert_base/{k}": v for k, v in _ckpt_files(src, "model.ckpt-best").items()}
    members["albert_base/model.ckpt-best.meta"] = b"\x0a\x00graph-def-not-needed"
    members["albert_base/albert_config.json"] = (src / "albert_config.json").read_bytes()
    members["albert_base/30k-clean.model"] = spm_model.read_bytes()
    members["albert_base/30k-clean.vocab"] = b"<pad>\t0\n"
    if with_hub_module:  # the TF-Hub export of the same weights next to the raw checkpoint
        members.update({f"albert_base/variables/{k}": v for k, v in _ckpt_files(src, "variables").items()})
    return _tar(tmp_path / "albert_base_v2.tar.gz", members)


def brightmart_zip(tmp_path: Path) -> Path:
    """albert_tiny_zh.zip: albert_model.ckpt.*, albert_config_tiny.json, vocab.txt, a ``checkpoint`` file naming the
    author's own absolute path, and the __MACOSX folder a Mac adds."""
    src = TF1 / "brightmart_tiny_snappy"
    members = {f"albert_tiny_zh/{k}": v for k, v in _ckpt_files(src, "albert_model.ckpt").items()}
    members["albert_tiny_zh/albert_model.ckpt.meta"] = b"meta"
    members["albert_tiny_zh/albert_config_tiny.json"] = (src / "albert_config.json").read_bytes()
    members["albert_tiny_zh/vocab.txt"] = (TF1 / "google_zh_squad" / "vocab.txt").read_bytes()
    members["albert_tiny_zh/checkpoint"] = (
        b'model_checkpoint_path: "/home/brightmart/albert_zh/albert_tiny/albert_model.ckpt"\n'
        b'all_model_checkpoint_paths: "/home/brightmart/albert_zh/albert_tiny/albert_model.ckpt"\n'
    )
    members["__MACOSX/albert_tiny_zh/._vocab.txt"] = b"\x00\x05\x16\x07resource fork"
    return _zip(tmp_path / "albert_tiny_zh.zip", members)


def hub_tarball(tmp_path: Path, spm_model: Path) -> Path:
    """A TF-Hub module tarball: saved_model.pb, tfhub_module.pb, variables/, assets/ (config and vocabulary)."""
    src = TF1 / "google_pretrain"
    members = {f"variables/{k}": v for k, v in _ckpt_files(src, "variables").items()}
    members["saved_model.pb"] = b"saved-model"
    members["tfhub_module.pb"] = b"\x08\x03"
    members["assets/albert_config.json"] = (src / "albert_config.json").read_bytes()
    members["assets/30k-clean.model"] = spm_model.read_bytes()
    return _tar(tmp_path / "albert_base_3.tar.gz", members)


def _same_weights(a: Path, b: Path) -> None:
    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), key


def _direct(tmp_path: Path, src: Path, *extra: str) -> Path:
    out = tmp_path / f"direct-{src.name}"
    assert cli.main(["convert", str(src), "--out", str(out), *extra]) == 0
    return out


# ----------------------------------------------------------------------------------------------------------------
# The three release layouts
# ----------------------------------------------------------------------------------------------------------------
def test_google_tarball_converts_like_its_checkpoint(tmp_path, spm_model, capsys):
    archive = google_tarball(tmp_path, spm_model)
    out = tmp_path / "out" / "albert-base"
    assert cli.main(["convert", str(archive), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{archive}: converted albert_base/model.ckpt-best" in text
    assert f"source: {archive}:albert_base/model.ckpt-best" in text and ".albert-extract-" not in text
    assert f"config read from {archive}:albert_base/albert_config.json" in text
    assert f"tokenizer read from {archive}:albert_base/30k-clean.model" in text
    _same_weights(out, _direct(tmp_path, TF1 / "google_pretrain"))
    assert (out / "spiece.model").read_bytes() == spm_model.read_bytes()
    assert not list((tmp_path / "out").glob(".albert-extract-*"))  # the extracted copy is gone


def test_brightmart_zip_with_a_foreign_checkpoint_path_and_mac_litter(tmp_path, capsys):
    archive = brightmart_zip(tmp_path)
    out = tmp_path / "tiny"
    assert cli.main(["convert", str(archive), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "converted albert_tiny_zh/albert_model.ckpt" in text and "albert_config_tiny.json" in text
    _same_weights(out, _direct(tmp_path, TF1 / "brightmart_tiny"))
    assert (out / "vocab.txt").read_bytes() == (TF1 / "google_zh_squad" / "vocab.txt").read_bytes()
    assert not list(tmp_path.glob(".albert-extract-*"))


def test_tf_hub_tarball_finds_variables_and_assets(tmp_path, spm_model, capsys):
    out = tmp_path / "hub"
    assert cli.main(["convert", str(hub_tarball(tmp_path, spm_model)), "--out", str(out)]) == 0
    assert "converted variables/variables" in capsys.readouterr().out
    _same_weights(out, _direct(tmp_path, TF1 / "google_pretrain"))
    assert (out / "spiece.model").is_file()


def test_raw_checkpoint_is_preferred_to_the_hub_copy_and_the_highest_step_wins(tmp_path, spm_model, capsys):
    out = tmp_path / "both"
    assert cli.main(["convert", str(google_tarball(tmp_path, spm_model, True)), "--out", str(out)]) == 0
    assert "converted albert_base/model.ckpt-best" in capsys.readouterr().out
    steps = {}
    for step in (900, 12000, 5000):
        steps.update({f"run/{k}": v for k, v in _ckpt_files(TF1 / "brightmart_tiny", f"model.ckpt-{step}").items()})
    root = tmp_path / "steps"
    archives.extract(_tar(tmp_path / "steps.tar", steps, "w"), root)
    assert archives.find_checkpoint(root, "steps.tar").name == "model.ckpt-12000"


def test_inspect_reads_an_archive(tmp_path, capsys):
    archive = brightmart_zip(tmp_path)
    assert cli.main(["inspect", str(archive)]) == 0
    text = capsys.readouterr().out
    assert f"path:   {archive}:albert_tiny_zh/albert_model.ckpt" in text and "layout: brightmart" in text


# ----------------------------------------------------------------------------------------------------------------
# What extraction refuses
# ----------------------------------------------------------------------------------------------------------------
def _refused(tmp_path, archive: Path, message: str) -> None:
    dest = tmp_path / "x" / "dest"
    with pytest.raises(CheckpointError, match=message):
        archives.extract(archive, dest)
    assert not (tmp_path / "x" / "evil.txt").exists() and not Path("/tmp/albert-evil.txt").exists()


def test_paths_outside_the_target_are_refused(tmp_path):
    _refused(tmp_path, _tar(tmp_path / "a.tar.gz", {"ok/a": b"1", "../evil.txt": b"x"}), r"'\.\./evil\.txt'.*'\.\.'")
    _refused(tmp_path, _tar(tmp_path / "b.tgz", {"/tmp/albert-evil.txt": b"x"}), "absolute path")
    _refused(tmp_path, _zip(tmp_path / "c.zip", {"d/../../evil.txt": b"x"}), r"points outside")
    _refused(tmp_path, _zip(tmp_path / "d.zip", {"C:/evil.txt": b"x"}), "absolute path")


def test_links_and_devices_are_refused(tmp_path):
    for kind, name in ((tarfile.SYMTYPE, "sym"), (tarfile.LNKTYPE, "hard")):
        path = tmp_path / f"{name}.tar"
        with tarfile.open(path, "w") as tar:
            info = tarfile.TarInfo("albert/model.ckpt.index")
            info.type, info.linkname = kind, "/etc/passwd"
            tar.addfile(info)
        _refused(tmp_path, path, "is a link")
    path = tmp_path / "fifo.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("albert/pipe")
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
    _refused(tmp_path, path, "device or pipe")
    path = tmp_path / "sym.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("albert/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    _refused(tmp_path, path, "is a link")


def test_size_bound_counts_the_bytes_written(tmp_path):
    archive = _zip(tmp_path / "big.zip", {"a/zeros.bin": bytes(3 << 20)})  # compresses to a few KB
    assert archive.stat().st_size < 50_000
    with pytest.raises(CheckpointError, match=r"unpacks to more than 1,000,000 bytes \(at 'a/zeros\.bin'\)"):
        archives.extract(archive, tmp_path / "dest", max_bytes=1_000_000)
    assert archives.extract(archive, tmp_path / "dest2", max_bytes=4 << 20) == ["a/zeros.bin"]


def test_damaged_archives_are_named(tmp_path, spm_model):
    good = google_tarball(tmp_path, spm_model).read_bytes()
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(good[: len(good) // 2])
    _refused(tmp_path, truncated, r"cut\.tar\.gz: damaged or unreadable archive")
    zipped = bytearray(brightmart_zip(tmp_path).read_bytes())
    zipped[200] ^= 0xFF  # inside the first member's compressed bytes
    (tmp_path / "flipped.zip").write_bytes(bytes(zipped))
    _refused(tmp_path, tmp_path / "flipped.zip", r"flipped\.zip: damaged or unreadable archive")
    (tmp_path / "notes.zip").write_text("not a zip at all")
    _refused(tmp_path, tmp_path / "notes.zip", r"notes\.zip: damaged or unreadable archive")
    assert cli.main(["convert", str(tmp_path / "missing.zip"), "--out", str(tmp_path / "o")]) == 2
    assert cli.main(["convert", str(truncated), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".albert-extract-*"))


def test_archive_without_a_checkpoint_or_with_two_says_so(tmp_path, capsys):
    archive = _tar(tmp_path / "docs.tar.gz", {"README.md": b"hello", "data/train.csv": b"text,label\n"})
    assert cli.main(["convert", str(archive), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no TensorFlow checkpoint (*.index) or transformers config.json inside" in err and "README.md" in err
    two = {}
    for run in ("a", "b"):
        two.update({f"{run}/{k}": v for k, v in _ckpt_files(TF1 / "brightmart_tiny", "model.ckpt").items()})
    assert cli.main(["convert", str(_tar(tmp_path / "two.tar.gz", two)), "--out", str(tmp_path / "o")]) == 2
    assert "several checkpoints (a/model.ckpt, b/model.ckpt)" in capsys.readouterr().err


def test_nothing_is_left_behind_when_conversion_fails(tmp_path, capsys):
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"hidden_size": 48, "embedding_size": 16, "num_attention_heads": 4}')
    out = tmp_path / "o" / "model"
    assert cli.main(["convert", str(brightmart_zip(tmp_path)), "--config", str(wrong), "--out", str(out)]) == 2
    assert "wrong.json" in capsys.readouterr().err
    assert not out.exists() and not list((tmp_path / "o").iterdir())
