"""Batched prediction and ONNX export: the same answers from every path (Python API, `albert predict`, ONNX)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import LABELS, tiny_config

import albert
from albert import cli, infer
from albert.errors import AlbertError
from albert.estimators import EntityTagger, TextClassifier
from albert.tasks.classification import classification_logits


@pytest.mark.parametrize("plan", [infer.plan_batches, infer.plan_passes], ids=["greedy", "passes"])
def test_batches_cover_every_row_once_within_the_budget(plan):
    rng = np.random.default_rng(0)
    for n in (500, 40):  # blocks of rows past batching.MAX_EXACT, row by row below it
        lengths = rng.integers(1, 120, size=n).tolist()
        batches = plan(lengths, max_tokens=1000, max_batch=32)
        rows = [r for b in batches for r in b]
        assert sorted(rows) == list(range(n))
        assert [lengths[r] for r in rows] == sorted(lengths)  # length-sorted: little padding
        for b in batches:
            assert len(b) <= 32 and (len(b) == 1 or len(b) * max(lengths[r] for r in b) <= 1000)
    assert plan([500], max_tokens=100) == [[0]]  # a row over budget still runs, alone


def test_prediction_passes_cut_where_padding_costs_more_than_a_pass():
    """Eight short texts and two long ones (one server call's worth): cutting at the budget alone pads the short
    ones to the long ones' length; the planner cuts between them, as a pass costs less than that padding."""
    from albert.engines import PASS_OVERHEAD

    lengths = [100, 10, 10, 10, 100, 10, 10, 10, 10, 10]
    assert infer.plan_batches(lengths, max_tokens=1024) == [[1, 2, 3, 5, 6, 7, 8, 9, 0, 4]]  # 10 × 100 tokens
    passes = infer.plan_passes(lengths, max_tokens=1024)
    assert passes == [[1, 2, 3, 5, 6, 7, 8, 9], [0, 4]]  # 8 × 10 + 2 × 100 tokens and one more pass
    assert 8 * 10 + 2 * 100 + 2 * PASS_OVERHEAD * 1024 < 10 * 100 + PASS_OVERHEAD * 1024
    assert infer.plan_passes([10] * 8, max_tokens=1024) == [list(range(8))]  # equal lengths: nothing to save


def test_batched_prediction_equals_one_text_at_a_time(models, brown_texts):
    """Sorting, budgets and padding change nothing: each text alone, unpadded, gives the same logits."""
    predictor = infer.Predictor(models["clf"], max_tokens=2000, max_batch=16)
    batched = classification_logits(predictor.forward, predictor.tokenizer, brown_texts, max_length=128)
    model = predictor.forward.model
    for k in range(0, len(brown_texts), 7):
        enc = predictor.tokenizer(brown_texts[k], max_length=128, truncation=True, return_tensors="pt")
        with torch.no_grad():
            alone = model(**enc).logits[0].numpy()
        np.testing.assert_allclose(batched[k], alone, rtol=0, atol=1e-5)


def test_python_api_cli_and_streaming_agree(models, brown_texts, tmp_path):
    predictor = infer.Predictor(models["clf"])
    expected = predictor.classify(brown_texts)
    api = TextClassifier.from_pretrained(models["clf"]).predict_proba(brown_texts)
    for record, probs in zip(expected, api, strict=True):  # batch shapes differ: equal up to float rounding
        np.testing.assert_allclose([record["probabilities"][LABELS[i]] for i in range(3)], probs, rtol=0, atol=2e-6)
    source = tmp_path / "in.csv"
    source.write_text(
        "id,review\n" + "".join(f'{n},"{t.replace(chr(34), chr(39))}"\n' for n, t in enumerate(brown_texts))
    )
    for chunk in ("4096", "7"):  # streaming in chunks of 7 keeps the order
        out = tmp_path / f"out{chunk}.jsonl"
        args = ["predict", "--model", str(models["clf"]), "--input", str(source), "--text-column", "review"]
        assert cli.main([*args, "--output", str(out), "--chunk", chunk, "--quiet"]) == 0
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        # each CSV row as given (its id and review), its prediction beside them
        assert [(r["id"], r["review"]) for r in rows] == [
            (str(n), t.replace('"', "'")) for n, t in enumerate(brown_texts)
        ]
        want = predictor.classify([r["review"] for r in rows])  # other batches: equal up to float rounding
        assert [r["prediction"]["label"] for r in rows] == [w["label"] for w in want]
        for r, w in zip(rows, want, strict=True):
            np.testing.assert_allclose(
                list(r["prediction"]["probabilities"].values()), list(w["probabilities"].values()), atol=2e-6
            )


def test_tagger_and_answers(models, brown_texts):
    predictor = infer.Predictor(models["ner"])
    assert predictor.tag(brown_texts[:20]) == EntityTagger.from_pretrained(models["ner"]).predict(brown_texts[:20])
    for text, entities in zip(brown_texts[:20], predictor.tag(brown_texts[:20]), strict=True):
        for e in entities:
            assert text[e["start"] : e["end"]] == e["text"] and e["type"] in ("PER", "LOC")
    qa = infer.Predictor(models["qa"])
    contexts = [" ".join(brown_texts[i : i + 6]) for i in range(0, 30, 6)]
    for answer, context in zip(qa.answer(["who was there?"] * 5, contexts), contexts, strict=True):
        assert answer["answer"] and context[answer["start"] : answer["end"]] == answer["answer"]
    with pytest.raises(AlbertError, match="cannot serve 'predict'"):
        qa.classify(["x"])


def test_input_errors_name_the_file_and_line(models, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": 3}\n')
    assert cli.main(["predict", "--model", str(models["clf"]), "--input", str(bad)]) == 2
    assert f"{bad}:2: field 'text' must be a string, found int" in capsys.readouterr().err
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("body\nhello\n")
    assert cli.main(["predict", "--model", str(models["clf"]), "--input", str(csv_file)]) == 2
    assert f"{csv_file}:2: no field 'text' (fields: body)" in capsys.readouterr().err
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    assert cli.main(["predict", "--model", str(models["clf"]), "--input", str(latin)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------
# ONNX
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["clf", "ner", "qa", "encoder"])
def test_onnx_export_matches_pytorch(models, brown_texts, tmp_path, name):
    import onnx

    path = tmp_path / f"{name}.onnx"
    assert cli.main(["export", "--model", str(models[name]), "--onnx", str(path)]) == 0
    graph = onnx.load(str(path)).graph
    assert not any(n.op_type == "Einsum" for n in graph.node)
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", "sequence"]
    torch_side, onnx_side = infer.Predictor(models[name]), infer.Predictor(models[name], onnx=path)
    enc = torch_side.tokenizer(brown_texts, max_length=128, truncation=True)
    ids, types = enc["input_ids"], enc["token_type_ids"]
    a = infer.run_rows(torch_side.forward, ids, types, 0, max_tokens=3000)
    b = infer.run_rows(onnx_side.forward, ids, types, 0, max_tokens=3000)  # many batch shapes: dynamic axes
    assert a.keys() == b.keys()
    for key in a:
        worst = max(float(np.abs(x - y).max()) for x, y in zip(a[key], b[key], strict=True))
        assert worst <= 1e-4, (key, worst)


def test_int8_export_quantises_the_shared_layer_everywhere(models, brown_texts, tmp_path):
    from albert.export import export_onnx

    report = export_onnx(models["clf"], tmp_path / "q.onnx", int8=True)
    layers = tiny_config().num_hidden_layers
    assert report["shared_weight_uses_repointed"] > 0
    # 6 MatMuls per layer application (q, k, v, out, ffn in, ffn out) are weights: all of them quantised.
    assert report["quantized_matmuls"] >= 6 * layers
    fp32 = infer.Predictor(models["clf"]).classify(brown_texts)
    int8 = infer.Predictor(models["clf"], onnx=tmp_path / "q.onnx").classify(brown_texts)
    agree = np.mean([a["label"] == b["label"] for a, b in zip(fp32, int8, strict=True)])
    assert agree >= 0.9, agree
    # measured and bounded at export time, on the check texts
    assert report["label_agreement"] >= 0.9 and report["min_cosine"] >= 0.98 and report["max_abs_diff"] > 0


def test_int8_export_below_its_bounds_is_refused_and_leaves_no_file(models, tmp_path, monkeypatch):
    from albert import export

    fp32 = export.export_onnx(models["ner"], tmp_path / "ner.onnx")
    assert fp32["label_agreement"] == 1.0 and fp32["min_cosine"] > 0.9999
    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 1.01)  # stricter than any int8 model can be
    with pytest.raises(albert.AlbertError, match=r"int8 decisions agree with PyTorch's on only .*export without"):
        export.export_onnx(models["ner"], tmp_path / "q.onnx", int8=True)
    assert not (tmp_path / "q.onnx").exists() and not list(tmp_path.glob(".q.onnx*"))
    monkeypatch.setattr(export, "INT8_MIN_AGREEMENT", 0.9)
    monkeypatch.setattr(export, "INT8_MIN_COSINE", 1.0001)
    with pytest.raises(albert.AlbertError, match="cosine to PyTorch's"):
        export.export_onnx(models["qa"], tmp_path / "q.onnx", int8=True)


def test_onnx_file_from_another_model_class_is_refused(models, tmp_path):
    from albert.export import export_onnx

    export_onnx(models["ner"], tmp_path / "ner.onnx")
    with pytest.raises(albert.CheckpointError, match="was exported from a AlbertForTokenClassification"):
        infer.Predictor(models["clf"], onnx=tmp_path / "ner.onnx")


def test_a_masked_lm_directory_embeds_by_mean_pooling_not_an_untrained_pooler(brown_tokenizer, brown_texts, tmp_path):
    """transformers' AlbertForMaskedLM has no pooler: a random one must not produce the embeddings."""
    model = albert.AlbertForMaskedLM(tiny_config(vocab_size=brown_tokenizer.vocab_size, max_position_embeddings=128))
    model.save_pretrained(tmp_path / "mlm")
    brown_tokenizer.save_pretrained(tmp_path / "mlm")
    first, second = (infer.Predictor(tmp_path / "mlm", task="embedding") for _ in range(2))
    a, b = first.embed(brown_texts[:5]), second.embed(brown_texts[:5])
    np.testing.assert_array_equal(a, b)
    enc = first.tokenizer(brown_texts[0], return_tensors="pt")
    with torch.no_grad():
        mean = model.albert(**enc).last_hidden_state[0].mean(0).numpy()
    np.testing.assert_allclose(a[0], mean, rtol=0, atol=1e-5)
    from albert.export import export_onnx

    assert export_onnx(tmp_path / "mlm", tmp_path / "mlm.onnx")["outputs"] == ["logits"]  # its default: fill-mask


def test_a_masked_lm_directory_embeds_by_mean_pooling_not_by_an_untrained_pooler(
    brown_tokenizer, brown_texts, tmp_path
):
    """A masked-LM checkpoint written by transformers has no pooler: its embeddings are the mean of the real tokens'
    last hidden states (what embedding.py promises), never a pooler initialised at load time."""
    transformers = pytest.importorskip("transformers")
    import torch

    config = transformers.AlbertConfig(
        vocab_size=brown_tokenizer.vocab_size,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
    )
    torch.manual_seed(0)
    reference = transformers.AlbertForMaskedLM(config).eval()
    reference.save_pretrained(tmp_path)
    brown_tokenizer.save_pretrained(tmp_path)
    texts = brown_texts[:6]
    vectors = infer.Predictor(tmp_path, task="embedding").embed(texts)
    batch = brown_tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = reference.albert(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
