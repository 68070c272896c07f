"""Extractive QA: SQuAD reading, windows and labels, decoding, the official EM/F1, training on QA derived from Brown."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import cli_evaluate, write_small_model

from albert.finetune import FinetuneConfig, train
from albert.tasks import qa
from albert.tasks.classification import TaskDataError


def _squad(records) -> dict:
    return {"version": "v2.0", "data": [{"title": "t", "paragraphs": records}]}


NUMBER = re.compile(r"(?<![\w.,$])\d+(?![\w.,]\d)(?!\w)")  # a whole number, not part of 1.5, $3 or 3rd
QUOTATION = re.compile(r"``([^`']{3,60})''")  # Brown marks quotations as ``...''
KINDS = (("Which number is mentioned?", NUMBER, 0), ("What is quoted?", QUOTATION, 1))


@pytest.fixture(scope="module")
def derived(realdata, tmp_path_factory):
    """No QA data set is available here, so questions are derived from real Brown text: the context is four
    consecutive sentences; "Which number is mentioned?" is answered by the context's only number and "What is
    quoted?" by its only quotation; asked of a context with none, either question is unanswerable (v2.0 style).
    Contexts with both kinds make the model read the question. A 2-layer model learns this from scratch in seconds,
    so the learning tests check the whole pipeline (windows, labels, decoding, null threshold), not comprehension."""
    root = tmp_path_factory.mktemp("qa")
    rng = np.random.default_rng(0)
    paragraphs, n = [], 0
    for doc in realdata.brown_documents()[:400]:
        sentences = doc["sentences"]
        for start in range(0, len(sentences) - 4, 4):
            context = " ".join(sentences[start : start + 4])
            qas = []
            for question, pattern, group in KINDS:
                found = list(pattern.finditer(context))
                if len(found) == 1:
                    m = found[0]
                    answers = [{"text": m.group(group), "answer_start": m.start(group)}]
                elif not found and rng.random() < 0.12:  # about 40 % of questions end up unanswerable
                    answers = []
                else:
                    continue
                qas.append({"id": f"q{n}", "question": question, "answers": answers, "is_impossible": not answers})
                n += 1
            if qas:
                paragraphs.append({"context": context, "qas": qas})
    rng.shuffle(paragraphs)
    (root / "train.json").write_text(json.dumps(_squad(paragraphs[:-200])))
    (root / "dev.json").write_text(json.dumps(_squad(paragraphs[-200:])))
    return root


def no_answer_f1(path) -> float:
    """The trivial baseline: F1 of answering nothing, i.e. the share of unanswerable questions (in %)."""
    examples = qa.read_squad(path)
    return qa.squad_metrics(examples, {e.id: "" for e in examples})["f1"]


def test_windows_cover_the_answer_and_decode_back_to_it(brown_tokenizer, derived):
    examples = [e for e in qa.read_squad(derived / "train.json") if e.answers][:200]
    features = qa.QAFeatures(brown_tokenizer, examples, max_length=64, doc_stride=24, max_query_length=24)
    assert len(features) > len(examples)  # long contexts need several windows
    found = set()
    for r in range(len(features)):
        start, end = features.starts[r], features.ends[r]
        if start == 0:
            continue
        n = features.example_of[r]
        shift = features.spans[r][2]
        offsets = features.offsets[n]
        text = examples[n].context[offsets[start - shift][0] : offsets[end - shift][1]]
        assert text == examples[n].answers[0][0]  # the labelled tokens are exactly the answer
        found.add(n)
    assert len(found) == len(examples)  # every answer lies inside at least one window


def test_official_em_and_f1():
    assert qa.exact_match("the Cat.", "cat") == 1.0
    assert qa.f1_score("a big red dog", "the red dog barked") == pytest.approx(2 * (2 / 3) * (2 / 3) / (4 / 3))
    assert qa.f1_score("", "") == 1.0 and qa.f1_score("x", "") == 0.0
    examples = [
        qa.QAExample("1", "q", "ctx", [("Denver Broncos", 0), ("Broncos", 7)]),
        qa.QAExample("2", "q", "ctx", [], True),
    ]
    assert qa.squad_metrics(examples, {"1": "Broncos", "2": ""}) == {"exact_match": 100.0, "f1": 100.0}
    scored = {"1": ("Broncos", 2.0), "2": ("something", -1.0)}
    result = qa.evaluate(examples, scored)
    # answer "1" (score 2.0), not "2" (-1.0): the threshold lies midway, so neither score is on the edge
    assert result["f1"] == 50.0 and result["best_f1"] == 100.0 and result["f1_threshold"] == 0.5
    nothing = qa.evaluate(examples, {"1": ("wrong", 2.0), "2": ("something", -1.0)})  # best: answer nothing
    assert nothing["best_f1"] == 50.0 and nothing["f1_threshold"] > 2.0  # finite, above every score


def test_bad_squad_files(tmp_path):
    (tmp_path / "a.json").write_text('{"version": "1.1"}')
    with pytest.raises(TaskDataError, match=r"a\.json: not SQuAD JSON"):
        qa.read_squad(tmp_path / "a.json")
    bad = _squad(
        [{"context": "abc def", "qas": [{"id": "x", "question": "q", "answers": [{"text": "def", "answer_start": 1}]}]}]
    )
    (tmp_path / "b.json").write_text(json.dumps(bad))
    with pytest.raises(TaskDataError, match=r"question x: answer 'def' is not at 1 in its context"):
        qa.read_squad(tmp_path / "b.json")


@pytest.fixture(scope="module")
def span_qa(brown_tokenizer, derived, tmp_path_factory):
    """A span QA model trained from scratch on the derived questions: (its directory, training's result)."""
    root = tmp_path_factory.mktemp("span-qa")
    brown_tokenizer.save_pretrained(root / "tok")
    write_small_model(root / "model.json", vocab_size=brown_tokenizer.vocab_size, max_positions=256)
    result = train(
        FinetuneConfig(
            task="qa",
            train=str(derived / "train.json"),
            eval=str(derived / "dev.json"),
            init="random:" + str(root / "model.json"),
            tokenizer=str(root / "tok"),
            out=str(root / "out"),
            epochs=3,
            batch_size=16,
            learning_rate=2e-3,
            max_seq_length=192,
            doc_stride=64,
            progress=False,
        )
    )
    return root / "out", result


def test_qa_trains_and_decodes(span_qa, derived):
    out, result = span_qa
    rows = [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if "step" in r]
    assert np.mean([r["loss"] for r in rows[-10:]]) < np.mean([r["loss"] for r in rows[:10]]) - 0.5
    assert {"f1", "exact_match", "best_f1", "f1_threshold"} <= set(result)
    # answering nothing scores ~41; the model finds numbers and quotations and knows when a context has none (~65)
    assert result["best_f1"] > no_answer_f1(derived / "dev.json") + 15
    again = cli_evaluate(out, derived / "dev.json")  # `albert evaluate`: the same model, the same F1
    assert again["f1"] == pytest.approx(result["f1"], abs=1e-4) and again["best_f1"] == pytest.approx(
        result["best_f1"], abs=1e-4
    )


def test_answerability_batches_label_windows_without_their_answer(brown_tokenizer, derived):
    examples = qa.read_squad(derived / "train.json")[:200]
    features = qa.QAFeatures(
        brown_tokenizer, examples, max_length=64, doc_stride=24, max_query_length=24, answerability=True
    )
    batch = features.batch(list(range(len(features))))
    # From the characters, not from the labels the features chose: a window answers its question exactly when the
    # whole first answer lies within the characters of the context tokens it holds.
    _, offsets = brown_tokenizer.encode_batch([e.context for e in examples], offsets=True)
    expected = []
    for r, (first, last, _) in enumerate(features.spans):
        example = examples[features.example_of[r]]
        chars = offsets[features.example_of[r]]
        if example.is_impossible or not example.answers:
            expected.append(1.0)
            continue
        text, begin = example.answers[0]
        expected.append(float(not (chars[first][0] <= begin and begin + len(text) <= chars[last - 1][1])))
    assert batch["is_impossible"].tolist() == expected and 0 < sum(expected) < len(expected)
    assert "is_impossible" not in qa.QAFeatures(brown_tokenizer, examples[:5], max_length=64).batch([0])


def predicted_f1(model_dir, dev_path, tmp_path) -> tuple[float, list[dict]]:
    """`albert predict` on the dev questions (as a user would feed them), scored with the official v2.0 formulas."""
    from albert import cli

    examples = qa.read_squad(dev_path)
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(json.dumps({"question": e.question, "context": e.context}) + "\n" for e in examples))
    out = tmp_path / "answers.jsonl"
    assert cli.main(["predict", "--model", str(model_dir), "--input", str(questions), "--output", str(out)]) == 0
    answers = [json.loads(line)["prediction"] for line in out.read_text().splitlines()]
    predictions = {e.id: a["answer"] for e, a in zip(examples, answers, strict=True)}
    return qa.squad_metrics(examples, predictions)["f1"], answers


def test_predict_gives_the_f1_evaluate_reports(span_qa, derived, tmp_path):
    """What `albert evaluate` reports for a SQuAD 2.0 model (best_f1, at the null threshold tuned on dev) is what
    `albert predict`'s answers score: fine-tuning saved the threshold with the model (decoding.json) and predict
    windows questions as the model was trained (finetune_config.json)."""
    out, _ = span_qa
    threshold = json.loads((out / "decoding.json").read_text())["null_threshold"]
    reported = cli_evaluate(out, derived / "dev.json")
    f1, answers = predicted_f1(out, derived / "dev.json", tmp_path)
    assert abs(f1 - reported["best_f1"]) < 1e-3, (f1, reported)
    assert abs(f1 - reported["f1"]) > 1  # answering every question would score another F1
    abstained = [a for a in answers if a["answer"] == ""]
    assert abstained and all(a["start"] == a["end"] == -1 and a["score"] < threshold for a in abstained)
    json.dumps(answers, allow_nan=False)  # strict JSON: no Infinity anywhere


def test_evaluate_tune_saves_another_threshold(span_qa, derived, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(span_qa[0], model)
    (model / "decoding.json").write_text('{"null_threshold": 1000.0}')  # abstains on everything
    assert predicted_f1(model, derived / "dev.json", tmp_path)[0] == pytest.approx(no_answer_f1(derived / "dev.json"))
    reported = cli_evaluate(model, derived / "dev.json", "--tune")
    assert json.loads((model / "decoding.json").read_text())["tuned_on"] == str((derived / "dev.json").resolve())
    assert abs(predicted_f1(model, derived / "dev.json", tmp_path)[0] - reported["best_f1"]) < 1e-3


def test_answerability_classifier(span_qa, derived, tmp_path):
    """The official SQuAD 2.0 model's answerability head, added to a span model and fine-tuned (as it is used, on an
    encoder that already reads the questions), decides no-answer on its own, and saves and loads. Windows outnumber
    examples, so most "no answer here" labels are windows of answerable examples: the classifier's logits sit
    above 0 and the swept threshold (best_f1, as the official v2.0 evaluation reports) is the measure."""
    import albert

    def answerability(out: str, **schedule) -> dict:
        """The answerability head fine-tuned on the span model, for this schedule."""
        data = dict(train=str(derived / "train.json"), eval=str(derived / "dev.json"), init=str(span_qa[0]))
        shape = dict(batch_size=16, max_seq_length=192, doc_stride=64, progress=False)
        return train(
            FinetuneConfig(task="qa", answerability=True, out=str(tmp_path / out), **data, **shape, **schedule)
        )

    result = answerability("out", epochs=2, learning_rate=1e-3)
    baseline = no_answer_f1(derived / "dev.json")
    # the classifier alone decides, and what it learned is measured against the same model with its head untrained
    # (one step at a negligible rate): an untrained head's noise scored anywhere from the no-answer F1 to ~54
    untrained = answerability("untrained", max_steps=1, learning_rate=1e-12)
    print(f"best F1 {result['best_f1']:.1f}, untrained head {untrained['best_f1']:.1f}, no answer {baseline:.1f}")
    assert result["best_f1"] > max(baseline + 15, untrained["best_f1"] + 8)
    f1, _ = predicted_f1(tmp_path / "out", derived / "dev.json", tmp_path)  # the classifier's threshold, applied
    assert abs(f1 - cli_evaluate(tmp_path / "out", derived / "dev.json")["best_f1"]) < 1e-3
    # as a model fine-tuned elsewhere (no finetune_config.json, no tuned threshold): evaluate keeps the answerability
    # head and takes the windows predict takes, so predict (answering every question) scores evaluate's f1; tuned on
    # the dev file with --tune, it scores best_f1
    import shutil

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "out", elsewhere)
    (elsewhere / "finetune_config.json").unlink()
    (elsewhere / "decoding.json").unlink()
    reported = cli_evaluate(elsewhere, derived / "dev.json")
    assert abs(predicted_f1(elsewhere, derived / "dev.json", tmp_path)[0] - reported["f1"]) < 1e-3
    tuned = cli_evaluate(elsewhere, derived / "dev.json", "--tune")
    assert abs(predicted_f1(elsewhere, derived / "dev.json", tmp_path)[0] - tuned["best_f1"]) < 1e-3
    assert tuned["best_f1"] > baseline + 15
    config = json.loads((elsewhere / "config.json").read_text())
    assert qa.ExtractiveQA().untrained_settings(config)["answerability"]  # evaluated with its classifier
    model = albert.AlbertForQuestionAnsweringWithAnswerability.from_pretrained(tmp_path / "out")
    assert model.load_report.initialised == []
    transformers = pytest.importorskip("transformers")
    span_only = transformers.AlbertForQuestionAnswering.from_pretrained(tmp_path / "out")  # encoder + qa_outputs
    assert span_only.qa_outputs.weight.shape == (2, 64)


def test_every_context_token_is_in_some_window(realdata, brown_tokenizer):
    """For any question length, window size and stride (wider than the window included): the windows cover the
    whole context, and each answer lies in at least one window where it is labelled."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    words = " ".join(realdata.brown_lines()[:200]).split()

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(
        q_words=st.integers(1, 40),
        c_words=st.integers(1, 400),
        max_length=st.integers(24, 200),
        stride=st.integers(1, 300),
        max_query=st.integers(1, 64),
    )
    def check(q_words, c_words, max_length, stride, max_query):
        context = " ".join(words[100 : 100 + c_words])
        answer = words[100 + c_words // 2]
        start = len(" ".join(words[100 : 100 + c_words // 2])) + (1 if c_words // 2 else 0)
        example = qa.QAExample("x", " ".join(words[:q_words]), context, [(answer, start)])
        try:
            features = qa.QAFeatures(brown_tokenizer, [example], max_length, stride, max_query)
        except TaskDataError as err:  # refused only when the question really leaves no room
            q_tokens = len(brown_tokenizer.encode_batch([example.question])[0][0])
            assert "leaves no room for context" in str(err) and max_length - min(max_query, q_tokens) - 3 < 1
            return
        n_context = len(brown_tokenizer.encode_batch([context])[0][0])
        covered = set()
        for first, last, _ in features.spans:
            covered.update(range(first, last))
        assert covered == set(range(n_context))
        assert any(s > 0 for s in features.starts)  # the answer is labelled in some window

    check()


def test_impossible_window_settings_are_refused(brown_tokenizer):
    example = qa.QAExample("x", "what is this question about at all", "a context", [])
    with pytest.raises(TaskDataError, match="leaves no room for context"):
        qa.QAFeatures(brown_tokenizer, [example], max_length=8, doc_stride=4, max_query_length=64)
    with pytest.raises(TaskDataError, match="doc_stride must be at least 1"):
        qa.QAFeatures(brown_tokenizer, [example], max_length=64, doc_stride=0)


def test_answerability_head_follows_the_official_formulas():
    """squad_utils.create_v2_model + v2_model_fn_builder, written out here: p_mask hides the question, separators and
    padding from the start distribution; Dense(2H→H, tanh) then Dense(H→1) without bias; the loss is the mean of the
    span cross-entropies plus half the answerability sigmoid cross-entropy."""
    import torch
    from conftest import tiny_config

    import albert

    torch.manual_seed(0)
    model = albert.AlbertForQuestionAnsweringWithAnswerability(tiny_config()).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    assert model.answer_out.bias is None
    ids = torch.tensor([[2, 11, 12, 3, 21, 22, 23, 24, 3, 0, 0], [2, 13, 3, 25, 26, 27, 28, 29, 30, 3, 0]])
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0]])
    mask = torch.tensor([[1] * 9 + [0] * 2, [1] * 10 + [0]])
    p_mask = torch.tensor([[0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1], [0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1]]).float()
    starts, ends, impossible = torch.tensor([5, 0]), torch.tensor([6, 0]), torch.tensor([0, 1])
    with torch.no_grad():
        out = model(ids, mask, types, start_positions=starts, end_positions=ends, is_impossible=impossible)
        h = model.albert(ids, mask, types).last_hidden_state
        start, end = (h @ model.qa_outputs.weight.T + model.qa_outputs.bias).unbind(-1)
        start_masked = start * (1 - p_mask) - 1e30 * p_mask
        start_feature = torch.einsum("bt,bth->bh", torch.softmax(start_masked, -1), h)
        hidden = torch.tanh(
            torch.cat([start_feature, h[:, 0]], -1) @ model.answer_dense.weight.T + model.answer_dense.bias
        )
        cls_logits = (hidden @ model.answer_out.weight.T).squeeze(-1)
        nll = lambda log_probs, at: -log_probs.gather(1, at[:, None]).mean()  # noqa: E731
        span = (nll(torch.log_softmax(start_masked, -1), starts) + nll(torch.log_softmax(end, -1), ends)) * 0.5
        bce = torch.nn.functional.binary_cross_entropy_with_logits(cls_logits, impossible.float())
    torch.testing.assert_close(out.answerability_logits, cls_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.loss, span + 0.5 * bce, rtol=0, atol=1e-5)
    assert (out.start_logits[p_mask.bool()] < -1e29).all()  # no answer may start in the question or padding


def test_decoding_starts_answers_only_where_the_window_is_most_central():
    """run_squad's _check_is_max_context: a token in two windows counts in the one where it has more context."""
    assert [m.tolist() for m in qa._max_context([(0, 6), (3, 9)])] == [
        [True, True, True, True, True, False],  # token 4: min(4, 1) = 1 here, min(1, 4) = 1 there: the first wins
        [False, False, True, True, True, True],
    ]

    class Tok:
        pad_token_id, cls_token_id, sep_token_id = 0, 2, 3

        def encode_batch(self, texts, offsets=False):
            words = [t.split() for t in texts]
            ids = [[10 + i for i in range(len(w))] for w in words]
            spans = [[(t.index(x), t.index(x) + len(x)) for x in w] for t, w in zip(texts, words, strict=True)]
            return ids, (spans if offsets else None)

    context = "a0 b1 c2 d3 e4 f5 g6 h7 i8"
    features = qa.QAFeatures(Tok(), [qa.QAExample("x", "q", context, [])], max_length=10, doc_stride=3)
    assert [s[:2] for s in features.spans] == [(0, 6), (3, 9)]

    def forward(batch):  # "f5" alone scores best in window 0, but f5 is central only in window 1
        T = batch["input_ids"].shape[1]
        start, end = np.full((len(batch["input_ids"]), T), -5.0), np.full((len(batch["input_ids"]), T), -5.0)
        for b in range(len(start)):
            shift = features.spans[b][2]
            start[b, 5 + shift] = 20.0 if b == 0 else 9.0
            end[b, (5 if b == 0 else 6) + shift] = 5.0
        return {"start_logits": start, "end_logits": end}

    forward.token_outputs = ("start_logits", "end_logits")
    text, _, char_start = qa.best_answers(forward, features)["x"]
    assert (text, char_start) == ("f5 g6", context.index("f5"))
    assert features.max_context[1][5 - 3] and not features.max_context[0][5]
