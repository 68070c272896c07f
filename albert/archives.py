"""Open the release archives people download (Google's ``albert_base_v2.tar.gz``, brightmart's ``albert_tiny_zh.zip``,
TF-Hub module tarballs) and find the checkpoint, config and vocabulary inside.

Extraction is defensive because an archive is someone else's file: every member must land inside the target
directory (no absolute paths, no drive letters, no ``..``), links and device files are refused, and the bytes written
are counted against a bound (a lying header cannot get past it, since we count what we write, not what is declared).
A truncated or corrupt archive is reported as such, naming it. macOS resource-fork litter (``__MACOSX/``, ``._*``),
common in zips made on a Mac, is skipped.
"""

from __future__ import annotations

import contextlib
import lzma
import re
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from albert.errors import CheckpointError

SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")
MAX_BYTES = 32 << 30  # albert_xxlarge's release is under 1 GiB; a bound far above any real checkpoint
MAX_MEMBERS = 100_000
_CHUNK = 1 << 20


def is_archive(path: str | Path) -> bool:
    """Named like an archive (whether or not it exists: a missing one is then reported as missing)."""
    return str(path).lower().endswith(SUFFIXES) and not Path(path).is_dir()


def _skipped(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and (parts[0] == "__MACOSX" or parts[-1].startswith("._") or parts[-1] == ".DS_Store")


def _safe_target(archive: Path, name: str, dest: Path) -> Path:
    """Where member ``name`` may be written, or an error saying why it may not."""
    normal = name.replace("\\", "/")
    parts = PurePosixPath(normal).parts
    if normal.startswith("/") or re.match(r"^[A-Za-z]:", normal):
        raise CheckpointError(f"{archive}: member {name!r} has an absolute path; refusing to extract it")
    if ".." in parts:
        raise CheckpointError(f"{archive}: member {name!r} points outside the archive ('..'); refusing to extract it")
    target = dest.joinpath(*[p for p in parts if p not in ("", ".")])
    if not target.resolve().is_relative_to(dest.resolve()):
        raise CheckpointError(f"{archive}: member {name!r} resolves outside the target; refusing to extract it")
    return target


class _Budget:
    def __init__(self, archive: Path, max_bytes: int):
        self.archive, self.left, self.max_bytes, self.members = archive, max_bytes, max_bytes, 0

    def member(self, name: str) -> None:
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise CheckpointError(f"{self.archive}: more than {MAX_MEMBERS:,} members; not a checkpoint archive")

    def copy(self, source, target: Path, name: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            while chunk := source.read(_CHUNK):
                self.left -= len(chunk)
                if self.left < 0:
                    raise CheckpointError(
                        f"{self.archive}: unpacks to more than {self.max_bytes:,} bytes (at {name!r}); "
                        "refusing to fill the disk"
                    )
                out.write(chunk)


def extract(archive: str | Path, dest: str | Path, max_bytes: int = MAX_BYTES) -> list[str]:
    """Extract ``archive`` (tar, tar.gz/bz2/xz or zip) into ``dest``; returns the member files written."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise CheckpointError(f"{archive}: no such file")
    dest.mkdir(parents=True, exist_ok=True)
    budget, written = _Budget(archive, max_bytes), []
    try:
        if str(archive).lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    budget.member(info.filename)
                    if _skipped(info.filename):
                        continue
                    target = _safe_target(archive, info.filename, dest)
                    mode = info.external_attr >> 16
                    if stat.S_ISLNK(mode):
                        raise CheckpointError(f"{archive}: member {info.filename!r} is a link; refusing to extract it")
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    with zf.open(info) as source:  # zipfile checks each member's CRC-32 as it is read
                        budget.copy(source, target, info.filename)
                    written.append(info.filename)
        else:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:  # streamed: a truncated archive fails where it breaks, not before
                    budget.member(member.name)
                    if _skipped(member.name):
                        continue
                    target = _safe_target(archive, member.name, dest)
                    if member.issym() or member.islnk():
                        raise CheckpointError(f"{archive}: member {member.name!r} is a link; refusing to extract it")
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                    elif member.isfile():
                        source = tar.extractfile(member)
                        budget.copy(source, target, member.name)
                        written.append(member.name)
                    else:
                        raise CheckpointError(
                            f"{archive}: member {member.name!r} is a device or pipe; refusing to extract it"
                        )
    except CheckpointError:
        raise
    except tarfile.ReadError:  # tarfile lists every compression it tried, over several lines
        why = "not a readable tar, gzip, bzip2 or xz"
        raise CheckpointError(f"{archive}: damaged or unreadable archive ({why})") from None
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, RuntimeError) as err:
        # RuntimeError: an encrypted zip member; OSError covers gzip.BadGzipFile and a truncated stream
        raise CheckpointError(f"{archive}: damaged or unreadable archive ({err})") from None
    if not written:
        raise CheckpointError(f"{archive}: the archive holds no files")
    return written


# ----------------------------------------------------------------------------------------------------------------
# What inside an extracted release is the checkpoint
# ----------------------------------------------------------------------------------------------------------------
def _checkpoint_prefixes(root: Path) -> list[Path]:
    return sorted(Path(str(p)[: -len(".index")]) for p in root.rglob("*.index") if p.is_file())


def _rank(prefix: Path) -> tuple:
    """Which of several checkpoints a release means: the one its ``checkpoint`` file names, else ``*-best`` (Google's
    releases), else the highest step, else a raw checkpoint over a TF-Hub module's copy of the same weights."""
    state = prefix.parent / "checkpoint"
    named = False
    if state.is_file():
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"', state.read_text(errors="replace"), re.M)
        named = bool(match) and PurePosixPath(match.group(1).replace("\\", "/")).name == prefix.name
    step = re.search(r"-(\d+)$", prefix.name)
    return (named, prefix.name.endswith("-best"), int(step.group(1)) if step else -1, prefix.name != "variables")


def find_checkpoint(root: str | Path, archive: str | Path) -> Path:
    """The TensorFlow checkpoint prefix, or transformers directory, inside an extracted archive."""
    root = Path(root)
    prefixes = _checkpoint_prefixes(root)
    if prefixes:
        ranked = sorted(prefixes, key=_rank, reverse=True)
        if len(ranked) > 1 and _rank(ranked[0]) == _rank(ranked[1]):
            names = ", ".join(str(p.relative_to(root)) for p in ranked[:5])
            raise CheckpointError(
                f"{archive}: several checkpoints ({names}) and nothing says which; extract it and pass one"
            )
        return ranked[0]
    configs = sorted(p.parent for p in root.rglob("config.json") if p.is_file())
    if configs:
        return configs[0]
    listing = ", ".join(sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())[:8])
    raise CheckpointError(
        f"{archive}: no TensorFlow checkpoint (*.index) or transformers config.json inside (it holds: {listing})"
    )


@contextlib.contextmanager
def opened(
    archive: str | Path, near: str | Path | None = None, max_bytes: int = MAX_BYTES
) -> Iterator[tuple[Path, Path]]:
    """Extract ``archive`` into a temporary directory (next to ``near`` when given, so a multi-GB release lands on
    the output's disk rather than in /tmp) and yield (that directory, the checkpoint found in it); the directory is
    removed afterwards."""
    parent = None
    if near is not None:
        parent = Path(near).resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".albert-extract-", dir=parent) as tmp:
        extract(archive, tmp, max_bytes)
        yield Path(tmp), find_checkpoint(tmp, archive)
