"""ONNX export of a model directory, checked against PyTorch, with optional int8 dynamic quantisation.

The graph has dynamic batch and sequence axes, takes ``input_ids``, ``attention_mask`` and ``token_type_ids``
(int64) and returns the outputs named as the PyTorch class names them (``logits``; ``start_logits``/``end_logits``;
``last_hidden_state``/``pooler_output``). Our forward has no einsum, so the graph is plain MatMul/Softmax/
LayerNormalization that every runtime runs. Position ids are computed inside the graph from the input's shape, and
the attention mask is always applied (the eager model skips an all-ones mask; a traced graph must not).

int8: ALBERT's shared layer is one set of weights used by every layer; the TorchScript exporter feeds layers 2..L
through ``Identity`` nodes, and onnxruntime's ``quantize_dynamic`` does not follow those, leaving most MatMuls in
fp32 (shared/reference/cpu-performance.md). We point every such use at the initializer itself before quantising.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from albert.engines import OnnxForward, TorchForward, pad_batch
from albert.errors import AlbertError
from albert.hub import HubOptions
from albert.infer import Predictor

FP32_TOLERANCE = 1e-4
# int8 changes the numbers by design; what must survive is the decision and the direction of every output vector.
# Below these on the check texts the export is refused (measured on the test models: agreement 1.0, cosine > 0.99).
INT8_MIN_AGREEMENT = 0.9  # share of argmax decisions (labels, tags, span starts/ends) equal to PyTorch's
INT8_MIN_COSINE = 0.98  # smallest cosine between an int8 output row and PyTorch's
# Texts of different lengths (so the check batch has padding), English and Chinese.
CHECK_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "这个手机很好用，电池也耐用。",
    "A much longer sentence, with commas, numbers like 1,234 and 56.7, and several clauses, to make a longer row.",
    "短",
    "Mixed 中文 and English text.",
]


class _Graph(torch.nn.Module):
    """What is exported: the model with position ids derived from the input, outputs as a tuple."""

    def __init__(self, model: torch.nn.Module, outputs: tuple[str, ...]):
        super().__init__()
        self.model, self.outputs = model, outputs

    def forward(self, input_ids, attention_mask, token_type_ids):
        position_ids = torch.cumsum(torch.ones_like(input_ids), dim=1) - 1  # dynamic, unlike a traced arange(T)
        out = self.model(input_ids, attention_mask, token_type_ids, position_ids)
        return tuple(getattr(out, name) for name in self.outputs)


def _unshare_identities(graph) -> int:
    """Replace uses of Identity(initializer) by the initializer; returns how many nodes were removed."""
    initializers = {init.name for init in graph.initializer}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.input[0] in initializers}
    outputs = {o.name for o in graph.output}
    alias = {k: v for k, v in alias.items() if k not in outputs}
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in alias:
                node.input[k] = alias[name]
    keep = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    removed = len(graph.node) - len(keep)
    del graph.node[:]
    graph.node.extend(keep)
    return removed


def export_onnx(
    model_dir: str | Path,
    out: str | Path,
    int8: bool = False,
    opset: int = 17,
    check_texts: list[str] | None = None,
    hub_options: HubOptions | None = None,
    overwrite: bool = False,
    task: str | None = None,
) -> dict[str, Any]:
    """Export ``model_dir`` to ``out``; returns a report with the max abs difference from PyTorch on check texts.
    ``out`` follows the output-file policy (albert/outputs.py): an existing file that is not an earlier export is
    replaced only when ``overwrite``. ``task``: another task the directory can do than its own (a masked LM's
    "embedding": the encoder's outputs instead of the MLM logits)."""
    from albert.outputs import ONNX, check_output_file

    try:
        import onnx  # noqa: F401 - checked here so a missing extra is named before any work
    except ImportError:
        raise AlbertError("ONNX export needs onnx and onnxruntime: pip install 'albert-lite[onnx]'") from None
    out = check_output_file(out, "--onnx", ONNX, [model_dir], overwrite)
    predictor = Predictor(model_dir, hub_options=hub_options, model_flag="--model", task=task)
    if not predictor.family.exportable:
        raise AlbertError(f"{model_dir}: a {predictor.task} model is not exported to ONNX; it predicts with PyTorch")
    out.parent.mkdir(parents=True, exist_ok=True)  # a missing folder is created, as for every output
    torch_forward = predictor.forward
    proto, names, shared = _trace(torch_forward, predictor.tokenizer.pad_token_id or 0, out, opset)
    _add_fingerprints(proto, predictor.model_dir)  # before int8: the quantised file keeps the same fingerprint
    if int8:
        proto = _quantize(proto, out)
    report = _check_and_place(proto, out, torch_forward, predictor.tokenizer, check_texts or CHECK_TEXTS, int8)
    report.update(
        path=str(out),
        size_mb=round(out.stat().st_size / 2**20, 2),
        model_class=torch_forward.kind,
        outputs=list(names),
        int8=int8,
        shared_weight_uses_repointed=shared,
        quantized_matmuls=sum(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in proto.graph.node),
    )
    return report


def _trace(torch_forward: TorchForward, pad_id: int, out: Path, opset: int):
    """The model as an ONNX graph with dynamic batch and length axes, the shared layer's weights used directly, and
    the model class and config in its metadata. Returns (proto, output names, re-pointed shared weight uses)."""
    import onnx

    model = torch_forward.model
    example = pad_batch([[2, 10, 11, 12, 3], [2, 13, 3]], None, pad_id)
    names = tuple(torch_forward(example))  # the outputs this model has (an encoder may lack a trained pooler)
    graph_module = _Graph(model, names).eval()
    inputs = tuple(torch.from_numpy(example[k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    axes = {name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask", "token_type_ids")}
    axes.update(
        {name: {0: "batch", 1: "sequence"} if name in torch_forward.token_outputs else {0: "batch"} for name in names}
    )
    tmp = out.with_name(out.name + ".fp32.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes about Python branches on shapes we handle above
        torch.onnx.export(
            graph_module,
            inputs,
            str(tmp),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=list(names),
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load(str(tmp))
    tmp.unlink()
    shared = _unshare_identities(proto.graph)
    if any(n.op_type == "Einsum" for n in proto.graph.node):
        raise AlbertError("the exported graph contains Einsum; this should not happen with albert-lite's model")
    meta = {"albert_class": torch_forward.kind, "albert_config": json.dumps(model.config.to_dict())}
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    return proto, names, shared


def _add_fingerprints(proto, model_dir: Path) -> None:
    """Record which directory's weights, head and tokenizer the graph was made from (albert/checkpoint.py
    ``fingerprint``): a prediction refuses the file with any other directory, even one of the same shape; the
    second fingerprint, without the weights, checks a directory deployed without its weight files."""
    from albert.checkpoint import fingerprint

    proto.metadata_props.add(key="albert_fingerprint", value=fingerprint(model_dir))
    proto.metadata_props.add(key="albert_fingerprint_without_weights", value=fingerprint(model_dir, weights=False))


def _quantize(proto, out: Path):
    """onnxruntime's dynamic int8 quantisation of every MatMul (weights int8, activations scaled per batch)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto.metadata_props.add(key="int8", value="True")
    fp32_path = out.with_name(out.name + ".prequant.tmp")
    onnx.save(proto, str(fp32_path))
    quant_path = out.with_name(out.name + ".int8.tmp")
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.ERROR)  # onnxruntime warns on the root logger that it would like a pre-processing pass
    try:
        quantize_dynamic(str(fp32_path), str(quant_path), weight_type=QuantType.QInt8)
        return onnx.load(str(quant_path))
    finally:
        root.setLevel(level)
        fp32_path.unlink(missing_ok=True)
        quant_path.unlink(missing_ok=True)


def _check_and_place(proto, out: Path, torch_forward, tokenizer, texts: list[str], int8: bool) -> dict[str, Any]:
    """Compare onnxruntime with PyTorch on ``texts`` before the file takes its name: a refused export leaves no file
    behind. fp32 must agree within FP32_TOLERANCE; int8 must keep the decisions and the direction of the outputs."""
    import onnx

    staged = out.with_name(f".{out.name}.check.tmp")
    onnx.save(proto, str(staged))
    try:
        report = check_against_torch(staged, torch_forward, tokenizer, texts)
        problem = None
        if not int8 and report["max_abs_diff"] > FP32_TOLERANCE:
            problem = f"onnxruntime differs from PyTorch by {report['max_abs_diff']:.2e} (> {FP32_TOLERANCE})"
        if int8 and report["label_agreement"] is not None and report["label_agreement"] < INT8_MIN_AGREEMENT:
            problem = (
                f"int8 decisions agree with PyTorch's on only {report['label_agreement']:.1%} of the check texts "
                f"(< {INT8_MIN_AGREEMENT:.0%}); export without --int8"
            )
        if int8 and report["min_cosine"] < INT8_MIN_COSINE:
            problem = f"an int8 output's cosine to PyTorch's is {report['min_cosine']:.4f} (< {INT8_MIN_COSINE})"
        if problem:
            raise AlbertError(f"{out}: {problem}")
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    return report


def check_against_torch(onnx_path, torch_forward: TorchForward, tokenizer, texts: list[str]) -> dict[str, Any]:
    """onnxruntime against PyTorch on ``texts`` (one padded batch; padding positions ignored): the max abs
    difference, the smallest cosine between output rows (a text's vector or scores, a token's vector), and the share
    of decisions (argmax of logits: labels, tags, span starts and ends) that agree."""
    limit = min(128, torch_forward.model.config.max_position_embeddings)
    enc = tokenizer(texts, max_length=limit, truncation=True)
    batch = pad_batch(enc["input_ids"], enc["token_type_ids"], tokenizer.pad_token_id or 0)
    ort_out, torch_out = OnnxForward(onnx_path)(batch), torch_forward(batch)
    real = batch["attention_mask"].astype(bool)
    worst, cosines, same, decisions = 0.0, [], 0, 0
    for name, reference in torch_out.items():
        got = ort_out[name]
        if name in torch_forward.token_outputs and reference.ndim == 2:  # (B, T) scores: a row per text
            rows = [(got[b][real[b]], reference[b][real[b]]) for b in range(len(reference))]
            choices = [(x.argmax(), y.argmax()) for x, y in rows]
        elif name in torch_forward.token_outputs:  # (B, T, D): a row per real token
            rows = list(zip(got[real], reference[real], strict=True))
            choices = [(x.argmax(), y.argmax()) for x, y in rows]
        else:  # (B, D) a row per text; a single score per text (B,) is compared by its difference only
            rows = list(zip(got, reference, strict=True)) if reference.ndim > 1 else [(got, reference)]
            choices = [(x.argmax(), y.argmax()) for x, y in rows] if reference.ndim > 1 else []
        for x, y in rows:
            worst = max(worst, float(np.abs(x - y).max()))
            if x.size > 1:
                cosines.append(float(np.dot(x, y) / max(np.linalg.norm(x) * np.linalg.norm(y), 1e-12)))
        if name in DECISIONS:
            same += sum(int(a == b) for a, b in choices)
            decisions += len(choices)
    return {
        "max_abs_diff": worst,
        "min_cosine": min(cosines, default=1.0),
        "label_agreement": same / decisions if decisions else None,
        "check_rows": len(texts),
    }


# Outputs whose argmax is the model's decision (a class, a tag, a span boundary).
DECISIONS = ("logits", "start_logits", "end_logits")
