"""A user's files survive every way a command can end: killed (SIGKILL, SIGTERM) at any moment, replaced with
--overwrite, resumed from another folder, its stdout closed early (albert/outputs.py).

The kill tests run the real command in a subprocess and kill it at points observed on disk (the staging directory
appears, its first checkpoint, its model), then check that the old model is byte for byte what it was, or that the
new one is complete; a resumed run then finishes and takes the old one's place.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import folder_hashes, write_small_model

import albert
from albert import cli, outputs

TF_CHECKPOINT = Path(__file__).parent / "fixtures" / "tf" / "google_pretrain"  # written by TensorFlow itself


@pytest.fixture(scope="module")
def work(tmp_path_factory, brown_tokenizer, realdata):
    """A folder with a tokenizer, a model config, a training CSV of real sentences and an old fine-tuned model."""
    root = tmp_path_factory.mktemp("outputs")
    brown_tokenizer.save_pretrained(root / "tok")
    write_small_model(root / "model.json", brown_tokenizer.vocab_size)
    lines = [line.replace(",", " ").replace('"', "") for line in realdata.brown_lines()[:400]]
    rows = ["text,label"] + [f"{line},{'long' if len(line) > 120 else 'short'}" for line in lines]
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert cli.main([*_finetune(root / "old"), "--max-steps", "2"]) == 0
    finally:
        os.chdir(cwd)
    return root


def _finetune(out: Path) -> list[str]:
    return [
        "finetune",
        "--train",
        "train.csv",
        "--init",
        "random:model.json",
        "--tokenizer",
        "tok",
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--max-seq-length",
        "32",
        "--no-progress",
    ]


def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "albert", *argv],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(process: subprocess.Popen, ready, timeout: float = 120.0) -> bool:
    """Poll until ``ready()`` (True) or the process ends (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    process.kill()
    raise AssertionError("the command neither reached the point nor ended")


def _old_model(work: Path, name: str) -> tuple[Path, dict[str, str]]:
    target = work / name
    if target.exists():
        import shutil

        shutil.rmtree(target)
    import shutil

    shutil.copytree(work / "old", target)
    return target, folder_hashes(target)


STAGING_POINTS = {
    "config written": lambda staging: (staging / "finetune_config.json").is_file(),
    "first checkpoint": lambda staging: any((staging / "checkpoints").glob("step-*/trainer.pt")),
    "step 17 logged": lambda staging: (  # past the checkpoint of step 15
        (staging / "log.jsonl").is_file() and len((staging / "log.jsonl").read_text().splitlines()) > 17
    ),
}


@pytest.mark.parametrize("point", list(STAGING_POINTS))
def test_overwrite_killed_at_any_point_keeps_the_old_model_and_resume_replaces_it(work, point, tmp_path):
    target, before = _old_model(work, f"sigkill-{point.replace(' ', '-')}")
    folder_before = sorted(os.listdir(work))
    staging = outputs.staging_directory(target)
    argv = [*_finetune(target), "--overwrite", "--max-steps", "30", "--save-every", "15"]
    process = _start(argv, work)
    reached = _wait_for(process, lambda: STAGING_POINTS[point](staging))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert reached, process.stderr.read()
    checkpointed = any((staging / "checkpoints").glob("step-*/trainer.pt"))  # what the kill left to resume from
    assert folder_hashes(target) == before  # the old model, byte for byte
    albert.AlbertForSequenceClassification.from_pretrained(target)  # and it loads
    assert (staging / outputs.INCOMPLETE).is_file()

    # continued from another folder: the run config recorded absolute paths
    done = subprocess.run(
        [sys.executable, "-m", "albert", "finetune", "--resume", str(target)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    starting_over = "starting over from step 0" in done.stderr
    assert starting_over == (not checkpointed), done.stderr  # killed before its first checkpoint: it says so
    assert checkpointed == (point != "config written")  # (15 steps between the config and the first checkpoint)
    assert not staging.exists()
    assert not (target / outputs.INCOMPLETE).exists()
    assert folder_hashes(target) != before and (target / "model.safetensors").is_file()
    saved = json.loads((target / "finetune_config.json").read_text())
    assert Path(saved["train"]).is_absolute() and Path(saved["tokenizer"]).is_absolute()
    assert json.loads((target / "log.jsonl").read_text().splitlines()[-1])["step"] == 30
    assert sorted(os.listdir(work)) == folder_before  # nothing left beside it
    assert sorted(os.listdir(tmp_path)) == []  # nor in the folder the run was resumed from


def test_a_finished_overwrite_replaces_the_whole_directory(work, monkeypatch):
    monkeypatch.chdir(work)
    target, before = _old_model(work, "replaced")
    (target / "stale-file.txt").write_text("left by the old run")
    assert cli.main([*_finetune(target), "--overwrite", "--max-steps", "3"]) == 0
    after = folder_hashes(target)
    assert "stale-file.txt" not in after and after["model.safetensors"] != before["model.safetensors"]
    assert not outputs.staging_directory(target).exists() and not (target / outputs.INCOMPLETE).exists()


def test_sigterm_mid_run_keeps_the_old_model(work):
    target, before = _old_model(work, "sigterm")
    staging = outputs.staging_directory(target)
    process = _start([*_finetune(target), "--overwrite", "--max-steps", "400", "--save-every", "5"], work)
    assert _wait_for(process, lambda: any((staging / "checkpoints").glob("step-*/trainer.pt")))
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert f"continue with `albert finetune --resume {target}`" in err
    assert folder_hashes(target) == before


# Every command that writes a directory, with --overwrite over an old output, stopped just before the new one
# takes its place (the last moment a kill can come): the old output is intact; run again, it is replaced.
@pytest.fixture(scope="module")
def prepared(work):
    (work / "corpus.txt").write_text("\n".join(["A first document line.", "And its second line.", ""] * 30))
    assert (
        cli.main(
            [
                "prepare",
                "--input",
                str(work / "corpus.txt"),
                "--tokenizer",
                str(work / "tok"),
                "--out",
                str(work / "data"),
            ]
        )
        == 0
    )
    return work / "data"


# (argv for an output directory, a file the finished output holds)
DIRECTORY_COMMANDS = {
    "finetune": (lambda out: [*_finetune(out), "--max-steps", "1"], "model.safetensors"),
    "pretrain": (
        lambda out: [
            *("pretrain", "--data", "data", "--out", str(out), "--model", "model.json", "--max-steps", "2"),
            *("--batch-size", "2", "--max-seq-length", "32", "--eval-fraction", "0", "--no-progress"),
        ],
        "run_config.json",
    ),
    "prepare": (
        lambda out: ["prepare", "--input", "corpus.txt", "--tokenizer", "tok", "--out", str(out)],
        "manifest.json",
    ),
    "tokenizer train": (
        lambda out: ["tokenizer", "train", "--input", "train.csv", "--out", str(out), "--vocab-size", "300"],
        "spiece.model",
    ),
    "convert": (lambda out: ["convert", str(TF_CHECKPOINT), "--from", "tf", "--out", str(out)], "model.safetensors"),
}


@pytest.mark.parametrize("command", list(DIRECTORY_COMMANDS))
def test_every_directory_command_replaces_only_a_complete_output(work, prepared, command, monkeypatch, capsys):
    monkeypatch.chdir(work)
    target = work / f"replace-{command.replace(' ', '-')}"
    make_argv, product = DIRECTORY_COMMANDS[command]
    argv = make_argv(target)
    assert cli.main(argv) == 0, capsys.readouterr().err
    (target / "from-the-old-run.txt").write_text("a file the new output does not have")
    before = folder_hashes(target)

    def killed(out, work_dir=None):
        raise KeyboardInterrupt  # as if the process died the moment before the swap

    with monkeypatch.context() as patched:
        for module in ("finetune", "pretrain", "data", "spm", "importers"):
            patched.setattr(f"albert.{module}.finish_directory", killed)
        assert cli.main([*argv, "--overwrite"]) == 130
    assert folder_hashes(target) == before
    assert (outputs.staging_directory(target) / outputs.INCOMPLETE).is_file()
    assert cli.main([*argv, "--overwrite"]) == 0  # the leftover staging directory is replaced by a new run
    after = folder_hashes(target)
    assert product in after and "from-the-old-run.txt" not in after
    assert not outputs.staging_directory(target).exists() and outputs.INCOMPLETE not in after


def test_check_output_file_names_what_it_refuses(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "model" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(albert.AlbertError, match="lies inside"):
        outputs.check_output_file(tmp_path / "model" / "sub" / "p.jsonl", "--output", outputs.PREDICTIONS)
    (tmp_path / "mine.jsonl").write_text('{"text": "a", "prediction": {"label": "x", "probabilities": {"x": 1.0}}}\n')
    assert outputs.check_output_file(tmp_path / "mine.jsonl", "--output", outputs.PREDICTIONS)  # our own output
    (tmp_path / "data.jsonl").write_text('{"text": "a", "label": "x"}\n')
    with pytest.raises(albert.AlbertError, match="exists and is not predictions"):
        outputs.check_output_file(tmp_path / "data.jsonl", "--output", outputs.PREDICTIONS)
    assert outputs.check_output_file(tmp_path / "data.jsonl", "--output", outputs.PREDICTIONS, overwrite=True)
    (tmp_path / "labelled.jsonl").write_text('{"text": "a", "label": "x", "probabilities": {"x": 1.0}}\n')
    with pytest.raises(albert.AlbertError, match="exists and is not predictions"):  # looks like one, has no prediction
        outputs.check_output_file(tmp_path / "labelled.jsonl", "--output", outputs.PREDICTIONS)
    (tmp_path / "summaries.jsonl").write_text('{"document": "A. B.", "sentences": ["A.", "B."], "summary": "A."}\n')
    with pytest.raises(albert.AlbertError, match="exists and is not predictions"):  # a summarisation data set
        outputs.check_output_file(tmp_path / "summaries.jsonl", "--output", outputs.PREDICTIONS)
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))  # a picture, not a figure we drew
    with pytest.raises(albert.AlbertError, match="exists and is not a PNG figure drawn by albert-lite"):
        outputs.check_output_file(tmp_path / "photo.png", "--confusion-png", outputs.PNG)
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "data.jsonl")
    with pytest.raises(albert.AlbertError, match="is this command's input"):  # the same file under another name
        outputs.check_output_file(link, "--output", outputs.PREDICTIONS, [tmp_path / "data.jsonl"], overwrite=True)


def test_file_mode_reads_the_umask_without_changing_it(monkeypatch):
    mask = os.umask(0o027)  # whatever the runner's umask is, this one is known
    try:
        calls = []
        monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or 0o022)
        assert outputs.file_mode() == 0o640
        assert calls == []  # read from /proc/self/status, not by setting it (which races with other threads)
    finally:
        monkeypatch.undo()
        os.umask(mask)


# ------------------------------------------------------------------------------------------------------------------
# albert predict: a closed stdout, SIGTERM and SIGKILL
# ------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def many_texts(work):
    path = work / "many.txt"
    path.write_text("\n".join(f"line {i} of a long file to predict" for i in range(30000)) + "\n")
    return path


def test_a_closed_stdout_ends_predict_quietly(work, many_texts):
    pipeline = subprocess.run(
        f"set -o pipefail; {sys.executable} -m albert predict --model old --input many.txt | head -1",
        shell=True,
        cwd=work,
        capture_output=True,
        text=True,
        executable="/bin/bash",
    )
    assert json.loads(pipeline.stdout)["text"] == "line 0 of a long file to predict"
    assert pipeline.returncode == 141  # albert's status: what a shell reports for a command ended by SIGPIPE
    assert pipeline.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored" note


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_predict_stopped_midway_leaves_the_old_output_and_nothing_else(work, many_texts, how, tmp_path):
    out_dir = tmp_path / "predictions"
    out_dir.mkdir()
    target = out_dir / "p.jsonl"
    target.write_text('{"text": "old", "prediction": {"label": "short"}}\n')
    before = folder_hashes(out_dir)
    process = _start(["predict", "--model", "old", "--input", "many.txt", "--output", str(target)], work)
    assert _wait_for(process, lambda: "rows" in _peek(process), timeout=120), process.stderr.read()
    process.send_signal(how)
    _, err = process.communicate(timeout=60)
    assert process.returncode == (130 if how == signal.SIGTERM else -signal.SIGKILL), err
    assert "Traceback" not in err
    assert folder_hashes(out_dir) == before  # the old file, and no temporary file beside it


def _peek(process: subprocess.Popen) -> str:
    """What the process has written to stderr so far (non-blocking)."""
    import fcntl

    fd = process.stderr.fileno()
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
    try:
        chunk = os.read(fd, 65536).decode(errors="replace")
    except BlockingIOError:
        chunk = ""
    process.seen = getattr(process, "seen", "") + chunk
    return process.seen


def test_predict_progress_moves_with_each_model_call_not_each_chunk():
    import io

    import numpy as np
    from tqdm import tqdm

    from albert.infer import RowProgress

    bar = tqdm(file=io.StringIO(), disable=False)
    progress = RowProgress(lambda inputs: {"logits": np.zeros((len(inputs["input_ids"]), 2))}, bar, True)
    seen = []
    for rows in (64, 64, 17):  # three model calls of one chunk, before any of its records is written
        progress({"input_ids": np.zeros((rows, 8), dtype=np.int64)})
        seen.append(bar.n)
    assert seen == [64, 128, 145]
    progress.wrote()
    assert bar.n == 145  # writing the chunk's records does not count them twice
    windows = RowProgress(lambda inputs: {}, tqdm(file=io.StringIO()), rows_are_records=False)  # QA windows
    windows({"input_ids": np.zeros((5, 8), dtype=np.int64)})
    assert windows.bar.n == 0
    windows.wrote()
    assert windows.bar.n == 1


def test_pretrain_resumes_from_another_folder(work, prepared, tmp_path, monkeypatch):
    monkeypatch.chdir(work)
    argv = [
        *("pretrain", "--data", "data", "--out", "resumable", "--model", "model.json", "--max-steps", "2"),
        *("--batch-size", "2", "--max-seq-length", "32", "--eval-fraction", "0", "--save-every", "1"),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    saved = json.loads((work / "resumable" / "run_config.json").read_text())
    assert saved["data"] == str(work / "data") and saved["model"] == str(work / "model.json")
    monkeypatch.chdir(tmp_path)
    (work / "resumable" / outputs.INCOMPLETE).write_text("")  # as if it had been stopped: continue to step 3
    assert cli.main(["pretrain", "--resume", str(work / "resumable"), "--max-steps", "3", "--no-progress"]) == 0
    assert json.loads((work / "resumable" / "log.jsonl").read_text().splitlines()[-1])["step"] == 3


def test_overwrite_refuses_what_it_cannot_replace_by_a_rename(tmp_path):
    real = tmp_path / "real-run"
    real.mkdir()
    (real / "model.safetensors").write_text("weights")
    link = tmp_path / "run-link"
    link.symlink_to(real)
    with pytest.raises(albert.AlbertError, match="is a symbolic link; --overwrite replaces directories"):
        outputs.check_directory(link, overwrite=True)
    (tmp_path / "real-run.incoming").mkdir()
    (tmp_path / "real-run.incoming" / "mine.txt").write_text("a user's folder that happens to have this name")
    with pytest.raises(albert.AlbertError, match="real-run.incoming first, which holds something else"):
        outputs.check_directory(real, overwrite=True)
    assert (real / "model.safetensors").read_text() == "weights"


def test_pretrain_overwrite_killed_keeps_the_old_run_and_resume_replaces_it(work, prepared, tmp_path):
    argv = [
        *("pretrain", "--data", str(prepared), "--model", str(work / "model.json"), "--batch-size", "2"),
        *("--max-seq-length", "32", "--eval-fraction", "0", "--save-every", "3", "--no-progress"),
    ]
    target = work / "pretrain-killed"
    assert (
        subprocess.run([sys.executable, "-m", "albert", *argv, "--out", str(target), "--max-steps", "2"]).returncode
        == 0
    )
    before = folder_hashes(target)
    staging = outputs.staging_directory(target)
    process = _start([*argv, "--out", str(target), "--max-steps", "200", "--overwrite"], work)
    reached = _wait_for(process, lambda: any((staging / "checkpoints").glob("step-*/trainer.pt")))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert reached, process.stderr.read()
    assert folder_hashes(target) == before
    done = subprocess.run(
        [sys.executable, "-m", "albert", "pretrain", "--resume", str(target), "--max-steps", "9"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert not staging.exists() and not (target / outputs.INCOMPLETE).exists()
    assert json.loads((target / "log.jsonl").read_text().splitlines()[-1])["step"] == 9
