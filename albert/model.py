"""The whole ALBERT forward pass, read top to bottom.

embeddings (V→E) → projection (E→H) → layers that share weights by group → pooler → MLM and SOP heads.

Shapes use fixed letters: B batch, T tokens, V vocab, E embedding, H hidden, nh heads, hs head size, F FFN width,
P masked positions. Sources: google-research/albert modeling.py (the official TF graph) and transformers'
modeling_albert.py (the PyTorch layout whose checkpoints we read and write; see convert.py for the name table).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from albert import checkpoint, convert, hub
from albert.config import AlbertConfig
from albert.errors import CheckpointError
from albert.outputs import warn_if_incomplete

log = logging.getLogger("albert")


# The official TF `gelu` is the tanh approximation; F.gelu(approximate="tanh") computes it in one fused kernel
# (transformers' gelu_new spends eight elementwise passes on it, ~30% of its CPU forward time). The rest follow
# transformers' ACT2FN formulas (activations.py), so any config it accepts runs the same here.
def _tanh_gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


_ACTIVATIONS = {
    "gelu_new": _tanh_gelu,
    "gelu_pytorch_tanh": _tanh_gelu,
    "gelu_python_tanh": _tanh_gelu,
    "gelu_accurate": _tanh_gelu,  # the same formula with sqrt(2/π) written out
    "gelu_fast": _tanh_gelu,  # the same with sqrt(2/π) rounded to 0.7978845608 (3e-12 apart)
    "gelu": F.gelu,
    "gelu_python": F.gelu,
    "gelu_10": lambda x: F.gelu(x).clamp(-10, 10),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": F.relu,
    "relu2": lambda x: F.relu(x).square(),
    "relu6": F.relu6,
    "leaky_relu": F.leaky_relu,  # slope 0.01, nn.LeakyReLU's default
    "silu": F.silu,
    "swish": F.silu,
    "mish": F.mish,
    "hardswish": F.hardswish,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "laplace": lambda x: 0.5 * (1.0 + torch.erf((x - 0.707107) / (0.282095 * math.sqrt(2.0)))),
    "sqrtsoftplus": lambda x: F.softplus(x).sqrt(),
    "linear": lambda x: x,
}


# ----------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class AlbertOutput:
    last_hidden_state: torch.Tensor  # (B, T, H)
    pooler_output: torch.Tensor | None = None  # (B, H): tanh(Dense(h[:, 0]))


@dataclass
class PreTrainingOutput:
    prediction_logits: torch.Tensor  # (B, T, V), or (B, P, V) when masked_positions is given
    sop_logits: torch.Tensor  # (B, 2): 0 = segments in order, 1 = swapped
    loss: torch.Tensor | None = None  # mlm_loss + sop_loss
    mlm_loss: torch.Tensor | None = None
    sop_loss: torch.Tensor | None = None


@dataclass
class MaskedLMOutput:
    logits: torch.Tensor  # (B, T, V)
    loss: torch.Tensor | None = None


# ----------------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------------
class Embeddings(nn.Module):
    """Word + position + token-type embeddings, all E wide (the factorised part), then LayerNorm.

    With ``embedding_layout="brightmart"`` the word vectors are first projected E→H by a bias-free matrix
    (``word_embeddings_2``), and position/token-type embeddings and the LayerNorm are H wide; the encoder then
    has no projection of its own. The output width is ``self.width``.
    """

    def __init__(self, cfg: AlbertConfig):
        super().__init__()
        brightmart = cfg.embedding_layout == "brightmart"
        self.width = cfg.hidden_size if brightmart else cfg.embedding_size
        self.word = nn.Embedding(cfg.vocab_size, cfg.embedding_size)
        self.word_projection = nn.Linear(cfg.embedding_size, cfg.hidden_size, bias=False) if brightmart else None
        self.position = nn.Embedding(cfg.max_position_embeddings, self.width)
        self.token_type = nn.Embedding(cfg.type_vocab_size, self.width)
        self.norm = nn.LayerNorm(self.width, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None, position_ids=None) -> torch.Tensor:
        B, T = input_ids.shape
        if T > self.position.num_embeddings:
            raise ValueError(
                f"input has {T} tokens but the model has {self.position.num_embeddings} position embeddings "
                "(max_position_embeddings); truncate the input"
            )
        x = self.word(input_ids)  # (B, T, E)
        if self.word_projection is not None:
            x = self.word_projection(x)  # (B, T, H)
        x = x + (self.position.weight[:T] if position_ids is None else self.position(position_ids))
        x = x + (self.token_type.weight[0] if token_type_ids is None else self.token_type(token_type_ids))
        return self.dropout(self.norm(x))


class Layer(nn.Module):
    """One post-LN transformer layer: x = LN(x + Attn(x)); x = LN(x + W2·act(W1·x)).

    With ``ln_type="preln"`` (brightmart's variant) the norms come first: x = x + Attn(LN(x)); x = x + FFN(LN(x)),
    and, as in brightmart's code, nothing normalises the last layer's output.
    """

    def __init__(self, cfg: AlbertConfig):
        super().__init__()
        H = cfg.hidden_size
        self.nh, self.hs = cfg.num_attention_heads, cfg.head_size
        self.query, self.key, self.value = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H)
        self.attention_out = nn.Linear(H, H)
        self.attention_norm = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(H, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, H)
        self.ffn_norm = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.act = _ACTIVATIONS[cfg.hidden_act]
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)
        self.attention_dropout = cfg.attention_probs_dropout_prob
        self.pre_ln = cfg.ln_type == "preln"

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, first_only: bool = False) -> torch.Tensor:
        """(B, T, H) → (B, T, H); with ``first_only``, (B, 1, H): the first position's output alone, which attends
        to every position as before (every key and value is still computed) but skips the other rows' query,
        output projection and FFN, which nothing reads when only the pooled [CLS] vector is used."""
        if self.pre_ln:
            h = self.attention_norm(x)  # keys and values need every row
            rows, x = (h[:, :1], x[:, :1]) if first_only else (h, x)
            x = x + self.dropout(self.attention_out(self.attend(h, mask, rows)))
            return x + self.dropout(self.ffn_out(self.act(self.ffn_in(self.ffn_norm(x)))))
        rows = x[:, :1] if first_only else x
        x = self.attention_norm(rows + self.dropout(self.attention_out(self.attend(x, mask, rows))))
        return self.ffn_norm(x + self.dropout(self.ffn_out(self.act(self.ffn_in(x)))))

    def attend(self, x: torch.Tensor, mask: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
        """Multi-head attention of ``rows`` (B, Tq, H) over ``x`` (B, T, H), before the output projection:
        → (B, Tq, H). Self-attention is rows = x."""
        B, T, H = x.shape
        Tq = rows.shape[1]
        q = self.query(rows).view(B, Tq, self.nh, self.hs).transpose(1, 2)  # (B, nh, Tq, hs)
        k = self.key(x).view(B, T, self.nh, self.hs).transpose(1, 2)  # (B, nh, T, hs)
        v = self.value(x).view(B, T, self.nh, self.hs).transpose(1, 2)
        p = self.attention_dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, nh, Tq, hs)
        return a.transpose(1, 2).reshape(B, Tq, H)


def attention_bias(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, T) 1/0 mask → (B, 1, 1, T) additive bias: 0 where attended, the dtype's minimum at padding.

    Returns None when nothing is masked, so attention takes its unmasked fast path. The official code adds -10000;
    any value that underflows exp() gives the same result, and the minimum also works in fp16/bf16.
    """
    if attention_mask is None or (not torch.jit.is_tracing() and bool(attention_mask.all())):
        return None  # (an ONNX export traces one graph for every input, so it always keeps the mask)
    bias = torch.zeros(attention_mask.shape, dtype=dtype, device=attention_mask.device)
    bias.masked_fill_(attention_mask == 0, torch.finfo(dtype).min)
    return bias[:, None, None, :]


# ----------------------------------------------------------------------------------------------------------------
# Loading and saving (shared by every model class)
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What from_pretrained did not take one-to-one: new parameters it initialised and checkpoint keys it ignored."""

    initialised: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


class AlbertPreTrainedModel(nn.Module):
    """Weight init, from_pretrained and save_pretrained. Subclasses set the transformers class name they mirror
    and which of their parameters may be missing from a checkpoint (new heads, initialised at load)."""

    hf_class_name = "AlbertModel"
    optional_prefixes: tuple[str, ...] = ()  # parameters a checkpoint may lack (a new head)

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.config = config

    @property
    def _encoder_prefixed(self) -> bool:
        return not isinstance(self, AlbertModel)

    def init_weights(self, *modules: nn.Module) -> None:
        """Truncated normal (±2σ) like the official TF initializer; LayerNorm to identity; biases to zero.
        Called by each class on the modules it creates (the encoder initialises itself once)."""
        std = self.config.initializer_range
        for module in (m for root in (modules or (self,)) for m in root.modules()):
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @property
    def _untied_decoder(self) -> bool:
        mlm = getattr(self, "mlm", None)
        return mlm is not None and mlm.decoder is not None

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        params = {id(p): p for n, p in self.named_parameters() if not (exclude_embeddings and "embeddings." in n)}
        return sum(p.numel() for p in params.values())

    # -- saving ----------------------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        """Write config.json and model.safetensors in transformers' layout; each file is replaced atomically."""
        directory = Path(directory)
        cfg = self.config
        cfg.architectures = [self.hf_class_name]
        state = convert.ours_to_hf(self.state_dict(), with_prefix=self._encoder_prefixed)
        if self._untied_decoder:
            state["predictions.decoder.bias"] = state["predictions.bias"].clone()
        checkpoint.save_weights(directory, state)
        checkpoint.write_text(directory / "config.json", cfg.to_json_string())

    def push_to_hub(
        self,
        repo_id: str,
        private: bool = False,
        revision: str | None = None,
        commit_message: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """save_pretrained into a temporary directory and push it to ``repo_id`` in one commit (created if missing;
        ``revision`` is a branch, created from main if missing); returns the commit's hash and URL (albert/push.py)."""
        from albert.push import push_saved

        options = dict(private=private, revision=revision, commit_message=commit_message, token=token)
        return push_saved(self, repo_id, "model", **options)

    # -- loading ---------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        revision: str | None = None,
        cache_dir: str | None = None,
        token: str | bool | None = None,
        local_files_only: bool = False,
        **config_overrides: Any,
    ):
        """Load a checkpoint directory written by transformers or by us, or a hub id (``albert/albert-base-v2``;
        ``revision``, ``cache_dir``, ``token`` and ``local_files_only`` as in transformers, see albert/hub.py).

        ``config_overrides`` replace config fields, e.g. ``num_labels=3`` or ``id2label={0: "neg", 1: "pos"}`` for
        a new classification head. Parameters the checkpoint lacks but the class may add (a head, the pooler) are
        initialised and listed in ``model.load_report.initialised``; checkpoint keys the class has no use for are
        listed in ``model.load_report.unused``. Any other missing key or a wrong shape raises CheckpointError.
        """
        options = hub.HubOptions(revision, cache_dir, token, local_files_only)
        directory = hub.local_or_hub(path, "model", options)
        if not directory.is_dir():
            raise CheckpointError(f"{path}: not a checkpoint directory (expected config.json + model.safetensors)")
        warn_if_incomplete(directory)  # a fine-tune that was killed leaves its best-so-far weights: say so
        data = checkpoint.read_config_dict(directory)
        if data.get("model_type") not in (None, "albert"):
            raise CheckpointError(
                f"{path} holds a {data['model_type']!r} model, not ALBERT"
                + (": convert it first with `albert convert --from bert`" if data["model_type"] == "bert" else "")
            )
        if "num_labels" in config_overrides and "id2label" not in config_overrides:
            if len(data.get("id2label") or {}) != config_overrides["num_labels"]:
                data.pop("id2label", None)
        config = AlbertConfig.from_dict({**data, **config_overrides}, source=str(directory / "config.json"))
        model = cls(config)
        model.load_report = model.load_hf_state_dict(checkpoint.read_weights(directory), source=str(directory))
        return model.eval()  # as transformers returns it: dropout off until the caller trains

    def load_hf_state_dict(self, hf_state: dict[str, torch.Tensor], source: str = "state dict") -> LoadReport:
        """Load tensors named as transformers names them; see from_pretrained for what is checked."""
        prefixed = self._encoder_prefixed
        own = self.state_dict()
        if self._untied_decoder and "predictions.decoder.bias" in hf_state:
            # transformers 5 unties the decoder's bias too when tie_word_embeddings=False, and its forward adds
            # that one (4.x kept the two tied, so they are equal there)
            hf_state = {**hf_state, "predictions.bias": hf_state["predictions.decoder.bias"]}
        names = convert.hf_names_to_ours(hf_state, with_prefix=prefixed)
        unused = [key for key, ours in names.items() if ours not in own and ours not in convert.TIED_IF_ABSENT]
        state = {ours: hf_state[key] for key, ours in names.items() if ours in own}
        for ours, expected in own.items():
            if ours in state and tuple(state[ours].shape) != tuple(expected.shape):
                raise CheckpointError(
                    f"{source}: '{convert.our_name_in_hf(ours, prefixed)}' has shape {tuple(state[ours].shape)}, "
                    f"the model expects {tuple(expected.shape)} (does config.json match the weights?)"
                )
        hf_name = {ours: convert.our_name_in_hf(ours, prefixed) for ours in own}
        missing = [k for k in own if k not in state]
        required = [k for k in missing if not k.startswith(self.optional_prefixes)]
        if required:
            listed = ", ".join(hf_name[k] for k in required[:5]) + (" …" if len(required) > 5 else "")
            raise CheckpointError(
                f"{source}: {len(required)} required parameter(s) missing from the checkpoint: {listed}"
            )
        self.load_state_dict(state, strict=False)
        report = LoadReport(initialised=[hf_name[k] for k in missing], unused=unused)
        if report.initialised:
            log.warning("%s: newly initialised (not in the checkpoint): %s", source, ", ".join(report.initialised))
        if report.unused:
            log.warning("%s: checkpoint keys not used by %s: %s", source, type(self).__name__, ", ".join(unused))
        return report


# ----------------------------------------------------------------------------------------------------------------
# The encoder
# ----------------------------------------------------------------------------------------------------------------
class AlbertModel(AlbertPreTrainedModel):
    """Embeddings → E→H projection → num_hidden_layers applications of shared layers → optional pooler."""

    hf_class_name = "AlbertModel"
    optional_prefixes = ("pooler.",)

    def __init__(self, config: AlbertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        cfg = config
        self.embeddings = Embeddings(cfg)
        # transformers always has this projection, so we keep it even when E == H (the TF graph skips it then;
        # a converted checkpoint gets the identity). brightmart's graph projects inside the embeddings instead.
        brightmart = cfg.embedding_layout == "brightmart"
        self.projection = None if brightmart else nn.Linear(cfg.embedding_size, cfg.hidden_size)
        # num_hidden_groups groups of inner_group_num distinct layers each: the only weights the encoder has.
        self.groups = nn.ModuleList(
            nn.ModuleList(Layer(cfg) for _ in range(cfg.inner_group_num)) for _ in range(cfg.num_hidden_groups)
        )
        self.pooler = nn.Linear(cfg.hidden_size, cfg.hidden_size) if add_pooling_layer else None
        self.gradient_checkpointing = False  # set by fine-tuning's --gradient-checkpointing
        self.init_weights()

    def group_of_layer(self, i: int) -> int:
        """Layer i uses group int(i / (L / G)), in floating point exactly as transformers computes it: for a few
        (L, G) that G does not divide, floating point rounds it below the exact ⌊i·G / L⌋ (importers.py notes where
        Google's TF formula differs)."""
        return int(i / (self.config.num_hidden_layers / self.config.num_hidden_groups))

    def forward(
        self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, pooled_only: bool = False
    ) -> AlbertOutput:
        """pooled_only: for callers that read only ``pooler_output`` (sequence classification, multiple choice).
        The last layer then computes the [CLS] row alone (every layer before it, and the last one's keys and
        values, still see every token), so ``last_hidden_state`` is (B, 1, H) and the pooled vector is the same
        (up to float rounding) for most of one layer's work less (what that buys per training step:
        benchmarks/classifier_step.py, quoted in docs/performance.md)."""
        x = self.embeddings(input_ids, token_type_ids, position_ids)  # (B, T, E), or (B, T, H) for brightmart
        if self.projection is not None:
            x = self.projection(x)  # (B, T, H)
        mask = attention_bias(attention_mask, x.dtype)
        L, last = self.config.num_hidden_layers, self.config.inner_group_num - 1
        for i in range(L):
            for j, layer in enumerate(self.groups[self.group_of_layer(i)]):
                first_only = pooled_only and i == L - 1 and j == last
                if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                    # keep only each layer's input; recompute its activations in backward (long sequences, large
                    # presets: activation memory falls from O(layers) to O(1) layers for one more forward pass)
                    x = torch.utils.checkpoint.checkpoint(layer, x, mask, first_only, use_reentrant=False)
                else:
                    x = layer(x, mask, first_only)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None
        return AlbertOutput(last_hidden_state=x, pooler_output=pooled)


# ----------------------------------------------------------------------------------------------------------------
# Pretraining heads: masked LM (decoder tied to the word embeddings) and sentence-order prediction
# ----------------------------------------------------------------------------------------------------------------
class MLMHead(nn.Module):
    """Dense(H→E) → act → LayerNorm(E) → logits against the tied word-embedding table + own bias.

    brightmart's head stays H wide (Dense(H→H), LayerNorm(H)) and returns to E through the tied word projection.
    """

    def __init__(self, cfg: AlbertConfig):
        super().__init__()
        width = cfg.hidden_size if cfg.embedding_layout == "brightmart" else cfg.embedding_size
        self.dense = nn.Linear(cfg.hidden_size, width)
        self.norm = nn.LayerNorm(width, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        # tie_word_embeddings=False (transformers accepts it): the decoder has its own table, initialised like one
        self.decoder = None
        if not cfg.tie_word_embeddings:
            std = cfg.initializer_range
            self.decoder = nn.Parameter(nn.init.trunc_normal_(torch.empty(cfg.vocab_size, width), std=std))
        self.act = _ACTIVATIONS[cfg.hidden_act]

    def forward(self, h: torch.Tensor, embeddings: Embeddings) -> torch.Tensor:
        h = self.norm(self.act(self.dense(h)))
        if embeddings.word_projection is not None:
            h = h @ embeddings.word_projection.weight  # (..., H) @ (H, E): the projection's transpose
        table = embeddings.word.weight if self.decoder is None else self.decoder
        return F.linear(h, table, self.bias)  # (..., V)


def gather_positions(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(B, T, H) and (B, P) indices → (B, P, H): the official code computes MLM logits only where masked."""
    return torch.gather(x, 1, positions.unsqueeze(-1).expand(-1, -1, x.size(-1)))


class AlbertForPreTraining(AlbertPreTrainedModel):
    hf_class_name = "AlbertForPreTraining"
    optional_prefixes = ("sop.", "albert.pooler.")  # hub checkpoints are AlbertForMaskedLM: no SOP, no pooler

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config)
        self.mlm = MLMHead(config)
        # Two outputs (in order / swapped); sized by num_labels as transformers sizes it, so its checkpoints load.
        # Dropout before it as transformers has it (the official code has none; classifier_dropout_prob 0 is that):
        # on benchmarks/pretrain_learning.py's Python docs it took held-out SOP from 0.56-0.58 to 0.64-0.66 at 300
        # steps (two seeds), and changed nothing on Brown, where SOP is still at chance then.
        self.sop_dropout = nn.Dropout(config.classifier_dropout_prob)
        self.sop = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights(self.mlm, self.sop)

    def forward(
        self,
        input_ids,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        labels=None,
        sentence_order_label=None,
        masked_positions=None,
    ) -> PreTrainingOutput:
        """``labels``: (B, T) token ids with -100 where no prediction is wanted, or (B, P) if ``masked_positions``
        (B, P) is given, in which case logits are computed at those positions only."""
        out = self.albert(input_ids, attention_mask, token_type_ids, position_ids)
        h = (
            out.last_hidden_state
            if masked_positions is None
            else gather_positions(out.last_hidden_state, masked_positions)
        )
        logits = self.mlm(h, self.albert.embeddings)
        sop_logits = self.sop(self.sop_dropout(out.pooler_output))
        result = PreTrainingOutput(prediction_logits=logits, sop_logits=sop_logits)
        if labels is not None:
            result.mlm_loss = F.cross_entropy(logits.flatten(0, -2), labels.flatten(), ignore_index=-100)
        if sentence_order_label is not None:
            result.sop_loss = F.cross_entropy(sop_logits, sentence_order_label.view(-1))
        if result.mlm_loss is not None and result.sop_loss is not None:
            result.loss = result.mlm_loss + result.sop_loss
        return result


class AlbertForMaskedLM(AlbertPreTrainedModel):
    hf_class_name = "AlbertForMaskedLM"

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.mlm = MLMHead(config)
        self.init_weights(self.mlm)

    def forward(
        self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None, labels=None
    ) -> MaskedLMOutput:
        h = self.albert(input_ids, attention_mask, token_type_ids, position_ids).last_hidden_state
        logits = self.mlm(h, self.albert.embeddings)  # (B, T, V)
        loss = None if labels is None else F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return MaskedLMOutput(logits=logits, loss=loss)
