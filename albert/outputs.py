"""Where commands write: one policy for every output directory and file, so that no command loses a user's work.

Directories (prepare, pretrain, finetune, convert, tokenizer train), ``claim_directory`` / ``finish_directory``:

- A missing or empty directory is written in place. A non-empty one is refused unless the command may resume it or
  the user passed ``--overwrite``; a directory that holds (or is) one of the command's own inputs is refused even
  then (``--out`` = ``--init`` would destroy the pretrained weights before they were read).
- ``--overwrite`` never leaves the user with nothing: the new run writes into ``NAME.incoming`` beside the old
  directory, and ``finish_directory`` swaps the two in one atomic rename (Linux ``renameat2(RENAME_EXCHANGE)``)
  once the new one is complete, then deletes the old. Killed at any moment, ``NAME`` holds either the old model or
  the complete new one; a killed ``--overwrite`` run is continued by ``--resume NAME`` (it finds ``NAME.incoming``)
  and replaced by the next ``--overwrite``.
- While a command runs, its directory holds an ``INCOMPLETE`` marker, removed when it finishes; loading a model
  from such a directory warns that it is from a run that did not finish (``warn_if_incomplete``).

Files (predict --output, export --onnx, evaluate --confusion-png), ``check_output_file`` before any work:

- refused when the path is a directory, has another suffix than the command writes, is one of the command's
  inputs, or lies inside a model, run or data directory (one holding a config and weights, a run's config, an
  INCOMPLETE marker or a prepared corpus): a file written there would be taken for part of the model;
- an existing file is replaced only when it is the command's own kind of output (predictions, an ONNX graph that
  `albert export` wrote, a PNG) or the user passed ``--overwrite``;
- ``atomic_output`` writes the file under no name at all (Linux ``O_TMPFILE``; elsewhere a temporary name beside
  it) and gives it its name only when everything succeeded: a bad input line, Ctrl-C or SIGTERM leaves the old
  file as it was and nothing else behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from albert.errors import AlbertError

log = logging.getLogger("albert")

INCOMPLETE = "INCOMPLETE"
STAGING_SUFFIX = ".incoming"  # where an --overwrite run writes until it replaces the old directory


def file_mode() -> int:
    """The mode open() gives a new file (0666 less the umask); mkstemp's 0600 would keep other accounts (a service
    running `albert serve`) from reading a model one user trained."""
    return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux says it without changing it (since 4.7); setting it to read it races with other threads
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only portable way to read the umask is to set it; put it straight back
    os.umask(mask)
    return mask


def absolute_if_local(value: str | None, prefix: str = "", always: bool = False) -> str | None:
    """``value`` with its local path made absolute (after ``prefix``, e.g. "random:"), so a run config read from
    another working folder names the same files; hub ids, presets and missing paths are kept as given unless
    ``always`` (an output that does not exist yet)."""
    if not value or not value.startswith(prefix):
        return value
    path = Path(value.removeprefix(prefix)).expanduser()
    return prefix + str(path.resolve()) if always or path.exists() else value


def strict_json(value, **dumps_options) -> str:
    """JSON text that every parser reads: a NaN or infinite number (a metric of constant predictions, a range
    test's last loss) is written as null, never as the bare NaN / Infinity Python's json module allows."""
    return json.dumps(_finite(value), allow_nan=False, **dumps_options)


def _finite(value):
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy or torch scalar
        return _finite(value.item())
    return value


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


# ------------------------------------------------------------------------------------------------------------------
# Output directories
# ------------------------------------------------------------------------------------------------------------------
def staging_directory(out: str | Path) -> Path:
    """Where a run that replaces ``out`` writes until it is complete."""
    out = Path(out).expanduser()
    return out.with_name(out.name + STAGING_SUFFIX)


def _contents(directory: Path) -> list[str]:
    names = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    return [name for name in names if name != INCOMPLETE]


def check_directory(
    out: str | Path,
    flag: str = "--out",
    overwrite: bool = False,
    inputs: Iterable[str | Path | None] = (),
    resumable: bool = False,
) -> list[str]:
    """Refuse ``out`` (AlbertError) where the policy above says so, changing nothing; returns what it holds.
    ``inputs`` are the command's own input paths (files or directories; hub ids and preset names are skipped);
    ``resumable``: the caller continues the run that ``out`` holds, so its contents are kept."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise AlbertError(f"{flag} {out}: is a file; expected a directory (missing or empty)")
    if out.name.endswith(STAGING_SUFFIX):
        raise AlbertError(f"{flag} {out}: names a run's staging directory; pass {out.name[: -len(STAGING_SUFFIX)]}")
    resolved = out.resolve()
    for given in inputs:
        if given and Path(given).expanduser().exists() and _inside(Path(given).expanduser().resolve(), resolved):
            raise AlbertError(f"{flag} {out}: holds this command's input {given}; writing there would destroy it")
    contents = _contents(out)
    if contents and not resumable:
        if not overwrite:
            shown = ", ".join(contents[:4]) + (f" and {len(contents) - 4} more" if len(contents) > 4 else "")
            raise AlbertError(
                f"{flag} {out}: is not empty (holds {shown}); choose a new directory, or pass --overwrite to replace it"
            )
        if resolved in (Path.home().resolve(), Path(resolved.anchor), Path.cwd().resolve()):
            raise AlbertError(f"{flag} {out}: --overwrite would replace the home, root or current folder; name another")
        _check_replaceable(out, flag)
    return contents


def _check_replaceable(out: Path, flag: str) -> None:
    """What --overwrite needs to replace ``out`` by a directory written beside it: a plain directory (not a link or
    a mount point) in a folder this process may write, and a free staging name."""
    if out.is_symlink():
        raise AlbertError(f"{flag} {out}: is a symbolic link; --overwrite replaces directories: name {out.resolve()}")
    if os.path.ismount(out):
        raise AlbertError(f"{flag} {out}: is a mount point, which --overwrite cannot replace; name a folder inside it")
    if not os.access(out.resolve().parent, os.W_OK | os.X_OK):
        raise AlbertError(f"{flag} {out}: --overwrite writes the new run beside it, and {out.parent} is not writable")
    staging = staging_directory(out)
    if staging.exists() and not (staging.is_dir() and (not _contents(staging) or (staging / INCOMPLETE).exists())):
        raise AlbertError(
            f"{flag} {out}: --overwrite writes the new run into {staging} first, which holds something else "
            "(a finished run that was not swapped in, if a command was killed at its very end); move it away"
        )


def working_directory(out: str | Path, overwrite: bool = False, resumable: bool = False) -> Path:
    """Where a command that claims ``out`` writes: ``out`` itself, or its staging directory when the command
    replaces a non-empty ``out`` (``--overwrite``) or resumes a killed ``--overwrite`` run. Decide it before any
    process writes (every rank of a distributed run must agree; rank 0 broadcasts it)."""
    out = Path(out).expanduser()
    staging = staging_directory(out)
    if resumable:
        return staging if (staging / INCOMPLETE).is_file() else out
    return staging if overwrite and _contents(out) else out


def claim_directory(
    out: str | Path,
    flag: str = "--out",
    overwrite: bool = False,
    inputs: Iterable[str | Path | None] = (),
    resumable: bool = False,
    work: Path | None = None,
) -> Path:
    """``check_directory``, then make the working directory (``working_directory``, or ``work`` as the caller
    decided it) ready to write into, marked INCOMPLETE until ``finish_directory``; returns it. The old ``out`` is
    not touched."""
    out = Path(out).expanduser()
    check_directory(out, flag, overwrite, inputs, resumable)
    work = work or working_directory(out, overwrite, resumable)
    staging = staging_directory(out)
    if not resumable and (staging / INCOMPLETE).is_file():  # a killed --overwrite run's leftovers: a new run starts
        shutil.rmtree(staging)
    elif work == staging and not resumable and staging.exists():  # empty (checked as ours above)
        shutil.rmtree(staging)
    work.mkdir(parents=True, exist_ok=True)
    (work / INCOMPLETE).write_text("written by a command that has not finished (or was interrupted)\n")
    return work


def finish_directory(out: str | Path, work: str | Path | None = None) -> None:
    """The command wrote everything into ``work``: mark it complete and, where it is a staging directory, put it in
    ``out``'s place in one step and delete the old directory."""
    out = Path(out).expanduser()
    work = Path(work).expanduser() if work is not None else out
    mark_complete(work)
    if work == out:
        return
    try:
        replace_directory(work, out)
    except OSError as err:
        raise AlbertError(
            f"the new run is complete in {work} but could not take the place of {out} ({err.strerror}); move it there "
            "yourself"
        ) from None
    log.info("replaced %s with the new run", out)


def replace_directory(new: Path, old: Path) -> None:
    """Put directory ``new`` at ``old``'s path in one step (a reader sees the old directory or the new one, never
    none) and delete the old one."""
    if not old.exists():
        os.replace(new, old)
    elif _exchange(new, old):
        shutil.rmtree(new)  # now the old directory
    else:  # no atomic exchange here (not Linux, or a filesystem without it): the shortest window two renames allow
        aside = Path(tempfile.mkdtemp(prefix=f".{old.name}.replaced-", dir=old.parent))
        os.replace(old, aside / old.name)
        os.replace(new, old)
        shutil.rmtree(aside)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(a))


def mark_complete(out: str | Path) -> None:
    (Path(out) / INCOMPLETE).unlink(missing_ok=True)


def warn_if_incomplete(directory: str | Path) -> bool:
    """Log a warning when ``directory`` was written by a run that did not finish; True if so."""
    if (Path(directory) / INCOMPLETE).is_file():
        log.warning(
            "%s is from a run that did not finish (it holds %s): its weights are whatever was saved last",
            directory,
            INCOMPLETE,
        )
        return True
    return False


# ------------------------------------------------------------------------------------------------------------------
# Output files
# ------------------------------------------------------------------------------------------------------------------
# Files that make a folder a model directory (with a config.json), a run or a prepared corpus.
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_TOKENIZER = ("spiece.model", "vocab.txt")
_RUN_FILES = (INCOMPLETE, "finetune_config.json", "run_config.json", "log.jsonl", "manifest.json")


def protected_directory(folder: Path) -> Path | None:
    """The nearest of ``folder`` and its parents that is a model, tokenizer, run or data directory, if any."""
    for candidate in (folder, *folder.parents):
        if any((candidate / name).is_file() for name in _RUN_FILES):
            return candidate
        if (candidate / "config.json").is_file() and any((candidate / n).is_file() for n in _WEIGHTS + _TOKENIZER):
            return candidate
        if (candidate / "spiece.model").is_file():
            return candidate
    return None


def _is_png(path: Path) -> bool:
    """A PNG that matplotlib drew (it names itself in a tEXt chunk near the start), not any picture."""
    with open(path, "rb") as f:
        head = f.read(512)
    return head.startswith(b"\x89PNG\r\n\x1a\n") and b"Matplotlib" in head


def _is_albert_onnx(path: Path) -> bool:
    try:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX at all (onnx raises protobuf's DecodeError, among others)
        return False
    return any(p.key == "albert_class" for p in proto.metadata_props)


def _is_predictions(path: Path) -> bool:
    """The first record is one `albert predict` wrote: an object with a "prediction" field (albert/infer.py:
    PREDICTION; a record that already has one is refused as input, so no input file looks like this)."""
    if path.stat().st_size == 0:
        return True
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "prediction" in record


@dataclass(frozen=True)
class FileKind:
    what: str  # "predictions", "an ONNX graph", "a PNG image"
    suffixes: tuple[str, ...]  # what the file may be called (the first is suggested)
    ours: object  # Path -> bool: whether an existing file is this kind of output (so replacing it loses nothing)


PREDICTIONS = FileKind("predictions (JSONL)", (".jsonl", ".ndjson", ".json", ".txt"), _is_predictions)
ONNX = FileKind("an ONNX graph written by `albert export`", (".onnx",), _is_albert_onnx)
PNG = FileKind("a PNG figure drawn by albert-lite (matplotlib)", (".png",), _is_png)


def check_output_file(
    path: str | Path,
    flag: str,
    kind: FileKind,
    inputs: Iterable[str | Path | None] = (),
    overwrite: bool = False,
) -> Path:
    """Refuse (AlbertError naming ``flag``) an output file the policy above forbids; returns the path. Call it before
    any work, with every path the command reads in ``inputs`` (files or directories; hub ids are skipped)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise AlbertError(f"{flag} {path}: is a directory; expected a file name (e.g. out{kind.suffixes[0]})")
    resolved = path.resolve()
    for given in inputs:
        if not given or not Path(given).expanduser().exists():
            continue
        source = Path(given).expanduser().resolve()
        same = path.exists() and source.is_file() and os.path.samefile(path, source)
        if same or _inside(resolved, source):
            raise AlbertError(f"{flag} {path}: is this command's input {given}; writing there would destroy it")
    protected = protected_directory(resolved.parent)
    if protected is not None:
        levels = len(resolved.relative_to(protected).parts)  # name it as the user did, where the path says it
        if levels < len(path.parts):
            protected = Path(*path.parts[: len(path.parts) - levels])
        raise AlbertError(
            f"{flag} {path}: lies inside {protected}, a model, run or data directory; write it somewhere else"
        )
    if path.suffix.lower() not in kind.suffixes:
        wanted = " or ".join(kind.suffixes)
        raise AlbertError(f"{flag} {path}: the file is {kind.what}; its name must end in {wanted}")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise AlbertError(f"{flag} {path}: exists and is not a regular file")
        if not overwrite and not kind.ours(path):
            raise AlbertError(
                f"{flag} {path}: exists and is not {kind.what}; pass --overwrite to replace it, or name another file"
            )
    return path


@contextlib.contextmanager
def atomic_output(path: str | Path, flag: str = "--output") -> Iterator[IO[str]]:
    """A text file open for writing; it takes the name ``path`` only when the block ends without an error. On Linux
    it has no name until then (O_TMPFILE), so even SIGKILL leaves nothing behind; elsewhere it is a temporary file
    beside ``path``, deleted on an error, Ctrl-C or SIGTERM (see ``terminate_as_interrupt``). A missing parent folder
    is created."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise AlbertError(f"{flag} {path}: is a directory; expected a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AlbertError(f"{flag} {path}: cannot create its folder ({err.strerror})") from None
    fd = _unnamed_file(path.parent)
    if fd is not None:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            _link_into_place(f.fileno(), path)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unnamed_file(folder: Path) -> int | None:
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not Path("/proc/self/fd").is_dir():
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, file_mode())
    except OSError:  # a filesystem without it (EOPNOTSUPP, EISDIR on old kernels)
        return None


def _link_into_place(fd: int, path: Path) -> None:
    """Give the unnamed file ``fd`` a temporary name beside ``path`` (linkat through /proc), then rename it over
    ``path``: the rename is atomic, so readers see the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    at_fdcwd, at_symlink_follow = -100, 0x400  # os.link calls link(), which would link the /proc symlink itself
    linkat = ctypes.CDLL(None, use_errno=True).linkat
    if linkat(at_fdcwd, os.fsencode(f"/proc/self/fd/{fd}"), at_fdcwd, os.fsencode(tmp), at_symlink_follow) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(path))
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt inside the block (as Ctrl-C does), so ``atomic_output`` and ``finally``
    clauses clean up before the process ends; the previous handler comes back afterwards."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
