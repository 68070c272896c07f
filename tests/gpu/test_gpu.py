"""CUDA checks (``pytest -m gpu tests/gpu``): parity on the GPU and bf16 autocast agreement. Skipped without CUDA."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import make_batch  # noqa: E402

import albert  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _base_model(cls=albert.AlbertForPreTraining):
    torch.manual_seed(0)
    cfg = albert.AlbertConfig.from_name("albert-base-v2", num_labels=2)
    return cls(cfg).eval(), cfg


def test_cuda_matches_cpu_fp32():
    model, cfg = _base_model()
    batch = make_batch(cfg, batch=4, length=128)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad():
        cpu = model(**batch)
        gpu = model.cuda()(**{k: v.cuda() for k, v in batch.items()})
    torch.testing.assert_close(gpu.prediction_logits.cpu(), cpu.prediction_logits, rtol=0, atol=1e-4)
    torch.testing.assert_close(gpu.sop_logits.cpu(), cpu.sop_logits, rtol=0, atol=1e-4)


def test_cuda_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    model, cfg = _base_model()
    model.save_pretrained(tmp_path)
    theirs = transformers.AlbertForPreTraining.from_pretrained(tmp_path).cuda().eval()
    batch = {k: v.cuda() for k, v in make_batch(cfg, batch=4, length=128).items()}
    with torch.no_grad():
        a, b = model.cuda()(**batch), theirs(**batch)
    torch.testing.assert_close(a.prediction_logits, b.prediction_logits, rtol=0, atol=1e-4)


def test_bf16_autocast_agrees_with_fp32():
    model, cfg = _base_model(albert.AlbertForSequenceClassification)
    model = model.cuda()
    batch = {k: v.cuda() for k, v in make_batch(cfg, batch=8, length=128).items()}
    with torch.no_grad():
        full = model(**batch)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = model(**batch)
    hidden = model.albert(**batch).last_hidden_state
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        hidden_bf16 = model.albert(**batch).last_hidden_state.float()
    cos = torch.nn.functional.cosine_similarity(hidden.flatten(0, 1), hidden_bf16.flatten(0, 1), dim=-1)
    assert cos.min() > 0.99, f"bf16 hidden states drift: min cosine {cos.min():.4f}"
    assert (half.logits.float() - full.logits).abs().max() < 0.05
    # A training step under autocast gives finite gradients for every parameter.
    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(**batch, labels=torch.zeros(8, dtype=torch.long, device="cuda")).loss
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_gradient_checkpointing_cuts_peak_memory_at_512_tokens_on_albert_large():
    """One training step of albert-large at 8 × 512 tokens: peak CUDA memory with and without recomputation."""
    peaks = {}
    for checkpointing in (False, True):
        torch.manual_seed(0)
        cfg = albert.AlbertConfig.from_name("albert-large-v2", num_labels=2)
        model = albert.AlbertForSequenceClassification(cfg).cuda().train()
        model.albert.gradient_checkpointing = checkpointing
        batch = {k: v.cuda() for k, v in make_batch(cfg, batch=8, length=512).items()}
        torch.cuda.reset_peak_memory_stats()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch, labels=torch.zeros(8, dtype=torch.long, device="cuda")).loss
        loss.backward()
        peaks[checkpointing] = torch.cuda.max_memory_allocated()
        del model, batch, loss
        torch.cuda.empty_cache()
    print(f"peak GiB without / with gradient checkpointing: {peaks[False] / 2**30:.2f} / {peaks[True] / 2**30:.2f}")
    assert peaks[True] < 0.5 * peaks[False]


def test_finetune_with_bf16_autocast_learns_on_cuda(tmp_path):
    """`albert finetune` on CUDA (bf16 autocast by default): a separable toy task is learned."""
    from conftest import write_small_model

    from albert.finetune import FinetuneConfig, train

    words = ["good", "great", "fine", "bad", "awful", "poor"]
    rows = ["text,label"] + [
        f"{words[i % 6]} {words[(i * 7) % 3 + 3 * (i % 6 >= 3)]},{'pos' if i % 6 < 3 else 'neg'}" for i in range(600)
    ]
    (tmp_path / "train.csv").write_text("\n".join(rows[:481]) + "\n")
    (tmp_path / "dev.csv").write_text("\n".join([rows[0], *rows[481:]]) + "\n")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "vocab.txt").write_text("\n".join(vocab) + "\n")
    write_small_model(tmp_path / "model.json", vocab_size=len(vocab))
    result = train(
        FinetuneConfig(
            train=str(tmp_path / "train.csv"),
            eval=str(tmp_path / "dev.csv"),
            init=f"random:{tmp_path / 'model.json'}",
            tokenizer=str(tmp_path / "tok"),
            out=str(tmp_path / "out"),
            epochs=3,
            batch_size=16,
            learning_rate=1e-3,  # a rate this toy task learns at in 90 steps (the small-model default is 3e-4)
            device="cuda",
            progress=False,
        )
    )
    assert result["accuracy"] > 0.9, result
