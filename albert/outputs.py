"""Where commands write: one policy for output directories and files, so that no command loses a user's work.

- A command that writes a directory (prepare, pretrain, finetune, convert, tokenizer train) claims it first with
  ``claim_directory``: a missing or empty directory is fine; a non-empty one is refused unless the command may
  resume it (a pretraining run) or the user passed ``--overwrite``, which empties it first. A directory that holds
  (or is) one of the command's own inputs is refused even then: ``--out`` = ``--init`` would destroy the pretrained
  weights before they were read.
- While it runs, the directory holds an ``INCOMPLETE`` marker, removed when the command finishes; loading a model
  from such a directory warns that it is from a run that did not finish (``warn_if_incomplete``).
- A command that writes a file (predict --output) writes a temporary file beside it and renames it into place only
  when everything succeeded (``atomic_output``), so a bad input line leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from albert.errors import AlbertError

log = logging.getLogger("albert")

INCOMPLETE = "INCOMPLETE"


def file_mode() -> int:
    """The mode open() gives a new file (0666 less the umask); mkstemp's 0600 would keep other accounts (a service
    running `albert serve`) from reading a model one user trained."""
    mask = os.umask(0o022)  # the only portable way to read the umask is to set it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


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
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AlbertError(f"{flag} {out}: is a file; expected a directory (missing or empty)")
    resolved = out.resolve()
    for given in inputs:
        if given and Path(given).exists() and _inside(Path(given).resolve(), resolved):
            raise AlbertError(f"{flag} {out}: holds this command's input {given}; writing there would destroy it")
    contents = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    contents = [name for name in contents if name != INCOMPLETE]
    if contents and not resumable:
        if not overwrite:
            shown = ", ".join(contents[:4]) + (f" and {len(contents) - 4} more" if len(contents) > 4 else "")
            raise AlbertError(
                f"{flag} {out}: is not empty (holds {shown}); choose a new directory, or pass --overwrite to replace it"
            )
        if resolved in (Path.home().resolve(), Path(resolved.anchor), Path.cwd().resolve()):
            raise AlbertError(f"{flag} {out}: --overwrite would empty the home, root or current folder; name another")
    return contents


def claim_directory(
    out: str | Path,
    flag: str = "--out",
    overwrite: bool = False,
    inputs: Iterable[str | Path | None] = (),
    resumable: bool = False,
) -> Path:
    """``check_directory``, then make ``out`` ready to write into: emptied when overwriting, created, and marked
    INCOMPLETE until ``mark_complete``."""
    out = Path(out)
    contents = check_directory(out, flag, overwrite, inputs, resumable)
    if contents and not resumable:  # only reached with overwrite
        for name in contents:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / INCOMPLETE).write_text("written by a command that has not finished (or was interrupted)\n")
    return out


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


@contextlib.contextmanager
def atomic_output(path: str | Path, flag: str = "--output") -> Iterator[IO[str]]:
    """A text file open for writing under a temporary name beside ``path``; renamed to ``path`` when the block
    ends without an error, deleted otherwise. A missing parent folder is created."""
    path = Path(path)
    if path.is_dir():
        raise AlbertError(f"{flag} {path}: is a directory; expected a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AlbertError(f"{flag} {path}: cannot create its folder ({err.strerror})") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
