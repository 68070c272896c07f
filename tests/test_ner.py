"""Token classification (NER) on People's Daily: reading, alignment, entity metrics, training, prediction."""

from __future__ import annotations

import collections
import json
import subprocess
import sys

import pytest
from conftest import cli_evaluate, write_small_model

import albert
from albert.estimators import EntityTagger
from albert.finetune import FinetuneConfig, train
from albert.tasks import ner
from albert.tasks.classification import TaskDataError


def _write_conll(path, sentences):
    with open(path, "w", encoding="utf-8") as f:
        for tokens, tags in sentences:
            f.writelines(f"{t} {g}\n" for t, g in zip(tokens, tags, strict=True))
            f.write("\n")


@pytest.fixture(scope="module")
def peoples_daily(realdata, tmp_path_factory):
    root = tmp_path_factory.mktemp("ner")
    sentences = [(c[:64], t[:64]) for c, t in realdata.peoples_daily_ner()[:3000] if any(x != "O" for x in t)]
    _write_conll(root / "train.txt", sentences[:1500])
    _write_conll(root / "dev.txt", sentences[1500:1700])
    albert.AlbertTokenizer.from_pretrained(realdata.chinese_vocab()).save_pretrained(root / "tok")
    write_small_model(root / "model.json", vocab_size=21128)
    return root


def test_people_s_daily_bio_conversion(realdata):
    chars, tags = realdata.peoples_daily_ner()[1]
    text = "".join(chars)
    assert text.startswith("中共中央总书记、国家主席江泽民")
    assert tags[:4] == ["B-ORG", "I-ORG", "I-ORG", "I-ORG"]
    person = text.index("江泽民")  # 江/nr 泽民/nr: surname and given name merge into one person
    assert tags[person : person + 3] == ["B-PER", "I-PER", "I-PER"]
    assert ner.spans(chars, tags)[:2] == [
        {"type": "ORG", "start": 0, "end": 4, "text": "中共中央"},
        {"type": "PER", "start": person, "end": person + 3, "text": "江泽民"},
    ]


def test_labels_sit_on_the_first_piece_of_each_word(brown_tokenizer):
    sentence = ner.Sentence(["Fulton", "County", "grand", "jury", "."], ["B-LOC", "I-LOC", "O", "O", "O"], 1)
    labels = ["O", "B-LOC", "I-LOC"]
    data = ner.EncodedTokens(brown_tokenizer, [sentence], labels, max_length=32)
    pieces = [brown_tokenizer.encode_batch([w])[0][0] for w in sentence.tokens]
    assert data.ids[0] == [brown_tokenizer.cls_token_id, *sum(pieces, []), brown_tokenizer.sep_token_id]
    expected = [-100]
    for word, tag in zip(pieces, sentence.tags, strict=True):
        expected += [labels.index(tag)] + [-100] * (len(word) - 1)
    assert data.targets[0] == expected + [-100]
    short = ner.EncodedTokens(brown_tokenizer, [sentence], labels, max_length=1 + len(pieces[0]) + len(pieces[1]) + 1)
    assert short.truncated == 1 and [w for w in short.word_of[0] if w >= 0] == [0, 1]


def test_seqeval_metrics_on_a_handmade_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "O"]]
    m = ner.metrics(gold, pred)
    assert m["precision"] == 1.0 and m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(0.8)


def test_bad_ner_files(tmp_path):
    (tmp_path / "a.txt").write_text("中 B-PER\n国\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"a\.txt:2: expected 'token label'"):
        ner.read_sentences(tmp_path / "a.txt")
    (tmp_path / "b.txt").write_text("中 PER\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"b\.txt:1: tag 'PER' is not BIO"):
        ner.read_sentences(tmp_path / "b.txt")
    (tmp_path / "c.jsonl").write_text('{"tokens": ["a", "b"], "tags": ["O"]}\n', encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"c\.jsonl:1: 'tags' must list one tag per token"):
        ner.read_sentences(tmp_path / "c.jsonl")


def character_tagger_f1(train_path, dev_path) -> float:
    """Entity F1 on dev of the context-free baseline: each character gets its most frequent tag in training."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for sentence in ner.read_sentences(train_path):
        for token, tag in zip(sentence.tokens, sentence.tags, strict=True):
            counts[token][tag] += 1
    dev = ner.read_sentences(dev_path)
    guess = [[counts[t].most_common(1)[0][0] if t in counts else "O" for t in s.tokens] for s in dev]
    return ner.metrics([s.tags for s in dev], guess)["f1"]


def test_ner_trains_and_predicts_spans(peoples_daily, tmp_path):
    out = tmp_path / "ner"
    result = train(
        FinetuneConfig(
            task="ner",
            train=str(peoples_daily / "train.txt"),
            eval=str(peoples_daily / "dev.txt"),
            init="random:" + str(peoples_daily / "model.json"),
            tokenizer=str(peoples_daily / "tok"),
            out=str(out),
            epochs=6,
            batch_size=16,
            learning_rate=3e-3,
            max_seq_length=66,
            progress=False,
        )
    )
    rows = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "step" in r]
    assert sum(r["loss"] for r in rows[-10:]) < sum(r["loss"] for r in rows[:10])
    # Tagging everything O scores entity F1 0 (and ~0.88 token accuracy, which is why token accuracy proves nothing
    # here); tagging each character with its most frequent training tag, no context, ~0.10. This random-init 2-layer
    # model after 6 short epochs finds about a fifth of the entities exactly: it reads the characters around.
    baseline = character_tagger_f1(peoples_daily / "train.txt", peoples_daily / "dev.txt")
    assert result["f1"] > baseline + 0.05 and result["precision"] > 0.1 and result["recall"] > 0.1, (result, baseline)
    # `albert evaluate` on the dev file scores the saved (best) model exactly as training's evaluation did
    assert cli_evaluate(out, peoples_daily / "dev.txt")["f1"] == pytest.approx(result["f1"], abs=1e-4)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["AlbertForTokenClassification"] and "B-PER" in config["label2id"]
    tagger = EntityTagger.from_pretrained(out)
    text = "国家主席江泽民在北京会见了新华社记者。"
    entities = tagger.predict([text])[0]
    assert all(text[e["start"] : e["end"]] == e["text"] and e["type"] in {"PER", "LOC", "ORG"} for e in entities)
    cli = subprocess.run(
        [sys.executable, "-m", "albert", "predict", "--model", str(out), text],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(cli.stdout) == {"text": text, "prediction": entities}
