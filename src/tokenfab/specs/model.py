"""ModelSpec: a model's architecture, read from a Hugging Face `config.json`.

Plain json + pydantic, no `transformers` import. Families: dense (Llama, Qwen, Mistral, GPT-J,
Gemma), GQA, MoE (Mixtral, Qwen3-MoE, GPT-OSS) and DeepSeek-V3 (MLA with its compressed KV cache,
shared + routed experts, first dense layers). Sliding-window layers where the config has them
(layer_types, Mistral's window, Gemma 2/3's alternating patterns). Beyond chat LLMs, optional
sections (`specs/families.py`): DeepSeek Sparse Attention (DeepSeek-V3.2), Gated DeltaNet hybrid
linear attention (Qwen3-Next), a ViT encoder (Qwen2.5-VL), diffusion transformers (Wan2.1) and
recommendation models (DLRM-v2, HSTU), plus user-defined operators (`specs/operator.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tokenfab.specs.base import Spec, SpecError, format_validation_error
from tokenfab.specs.families import (
    RECSYS_TYPES, DiffusionSpec, LinearAttentionSpec, RecsysSpec, SparseAttentionSpec, VisionSpec,
    is_wan_config, recsys_fields, wan_fields,
)
from tokenfab.specs.operator import OperatorSpec

ModelKind = Literal["llm", "diffusion", "recsys"]


class ModelSpec(Spec):
    """Architecture of a decoder-only Transformer, normalized across config families."""

    id: str
    """Catalog id or the config file's stem."""
    family: str
    """`model_type` from the config (llama, qwen3, mixtral, deepseek_v3, gpt_oss, gptj, ...)."""
    hidden_size: int = Field(gt=0, le=1_000_000)
    """Model (residual) width d_model."""
    num_layers: int = Field(gt=0, le=10_000)
    """Decoder layers (excluding DeepSeek's multi-token-prediction module)."""
    num_heads: int = Field(gt=0, le=100_000)
    """Query heads."""
    num_kv_heads: int = Field(gt=0, le=100_000)
    """Key/value heads (GQA); equal to num_heads for MHA; 1 latent 'head' for MLA."""
    head_dim: int = Field(gt=0, le=100_000)
    """Query/key head dimension (for MLA: nope + rope dims)."""
    v_head_dim: int = Field(gt=0, le=100_000)
    """Value head dimension."""
    intermediate_size: int = Field(gt=0, le=10_000_000)
    """Dense MLP hidden width."""
    gated_mlp: bool = True
    """SwiGLU-style MLP with gate, up and down projections (False: up + down only, e.g. GPT-J)."""
    vocab_size: int = Field(gt=0, le=1_000_000_000_000)
    """Vocabulary size."""
    tie_embeddings: bool = False
    """Input embedding and LM head share weights."""
    attention_bias: bool = False
    """QKV projections have biases (negligible FLOPs; counted in parameters)."""

    attention: Literal["gqa", "mla"] = "gqa"
    """`gqa` covers MHA/MQA/GQA; `mla` is DeepSeek's multi-head latent attention."""
    q_lora_rank: int | None = Field(default=None, gt=0)
    """MLA: query down-projection rank (None: full-rank query projection)."""
    kv_lora_rank: int | None = Field(default=None, gt=0)
    """MLA: compressed KV latent width (the cached vector, with the rope key)."""
    qk_rope_head_dim: int = Field(default=0, ge=0)
    """MLA: decoupled rope key dimension (cached once per token, shared by heads)."""

    num_experts: int = Field(default=0, ge=0)
    """Routed experts per MoE layer (0: dense model)."""
    experts_per_token: int = Field(default=0, ge=0)
    """Routed experts each token activates (top-k)."""
    moe_intermediate_size: int = Field(default=0, ge=0)
    """Hidden width of one routed expert."""
    num_shared_experts: int = Field(default=0, ge=0)
    """Always-active shared experts per MoE layer."""
    shared_intermediate_size: int = Field(default=0, ge=0)
    """Hidden width of one shared expert."""
    num_dense_layers: int = Field(default=0, ge=0)
    """Layers with a dense MLP in an MoE model (DeepSeek's first_k_dense_replace)."""

    sliding_window: int | None = Field(default=None, gt=0)
    """Window of sliding-window attention layers, tokens."""
    num_sliding_layers: int = Field(default=0, ge=0)
    """Layers that use the sliding window (the rest attend to the full context)."""
    max_context: int = Field(default=4096, gt=0)
    """Maximum context length the model supports, tokens."""
    source: str = ""
    """Where the config came from (Hugging Face repo id)."""

    kind: ModelKind = "llm"
    """Workload kind: `llm` (prefill/decode serving, including VLMs), `diffusion` (denoising
    generation), `recsys` (recommendation scoring). Non-LLM kinds have their own estimate."""
    attention_output_gate: bool = False
    """Full-attention layers gate their output with a sigmoid of a second query-sized projection
    (Qwen3-Next gated attention)."""
    fp8_weight_block: tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]] | None = None
    """Block of weights sharing one scale in the model's published FP8 checkpoint (`weight_block_size`
    of its `quantization_config`, e.g. (128, 128) for DeepSeek-V3, Kimi-K2, MiniMax-M2 and Qwen's FP8
    releases; activations then carry one scale per 1 x 128 group); None: per-tensor or per-channel
    scales, or no FP8 release. Served in FP8, its GEMMs run the block-scaled kernels
    (`Efficiency.for_block_scales`)."""
    mtp_layers: int = Field(default=0, ge=0)
    """Multi-token-prediction modules shipped with the model (DeepSeek num_nextn_predict_layers);
    the draft cost of speculative decoding uses one decoder layer per draft token either way."""
    sparse_attention: SparseAttentionSpec | None = None
    """DeepSeek Sparse Attention (indexer + top-k MLA)."""
    linear_attention: LinearAttentionSpec | None = None
    """Gated DeltaNet layers of a hybrid model (the rest are full attention)."""
    vision: VisionSpec | None = None
    """Vision encoder of a VLM (image/video tokens are added to prefill)."""
    diffusion: DiffusionSpec | None = None
    """Diffusion-transformer pipeline (kind `diffusion`); the transformer fields describe the DiT."""
    recsys: RecsysSpec | None = None
    """Recommendation model (kind `recsys`); the transformer fields are summaries (width = embedding dim)."""
    operators: tuple[OperatorSpec, ...] = ()
    """User-defined operators added to every step (from `_tokenfab.operators` in a config file)."""

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if self.num_experts:
            if not (0 < self.experts_per_token <= self.num_experts):
                raise ValueError("experts_per_token must be in 1..num_experts for an MoE model")
            if self.moe_intermediate_size <= 0:
                raise ValueError("moe_intermediate_size must be > 0 for an MoE model")
        if self.num_dense_layers > self.num_layers or self.num_sliding_layers > self.num_layers:
            raise ValueError("num_dense_layers and num_sliding_layers cannot exceed num_layers")
        if self.attention == "mla" and not self.kv_lora_rank:
            raise ValueError("mla attention needs kv_lora_rank")
        if self.attention == "gqa" and self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        if self.sparse_attention and self.attention != "mla":
            raise ValueError("sparse_attention (DSA) is modelled on MLA attention")
        if self.linear_attention and self.linear_attention.num_layers + self.num_sliding_layers > self.num_layers:
            raise ValueError("linear-attention layers cannot exceed num_layers")
        if self.kind == "diffusion" and self.diffusion is None:
            raise ValueError("a diffusion model needs its diffusion section")
        if self.kind == "recsys" and self.recsys is None:
            raise ValueError("a recsys model needs its recsys section")
        return self

    # ---- derived sizes (element counts; precision is applied by the engine) -------------
    @property
    def is_moe(self) -> bool:
        """True when the model has routed experts."""
        return self.num_experts > 0

    def check_expert_parallel(self, ep: int | None, copies: int = 1) -> None:
        """One line where `ep` ranks cannot hold this model's experts: a dense model has none to
        spread, and a MoE model at most `copies` per expert (serving may replicate each expert once:
        2; training spreads them: 1)."""
        if not ep or ep <= 1:
            return
        if not self.is_moe:
            raise SpecError(f"--ep {ep}: {self.id} is dense (no experts to spread)")
        if ep > self.num_experts * copies:
            extra = f" × {copies} (one redundant copy each)" if copies > 1 else ""
            raise SpecError(f"--ep {ep} exceeds {self.id}'s {self.num_experts} experts{extra}")

    @property
    def num_moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts."""
        return self.num_layers - self.num_dense_layers if self.is_moe else 0

    @property
    def num_linear_layers(self) -> int:
        """Linear-attention (recurrent-state) layers; 0 for plain Transformers."""
        return self.linear_attention.num_layers if self.linear_attention else 0

    @property
    def num_full_layers(self) -> int:
        """Layers that attend to the whole context (neither sliding nor linear)."""
        return self.num_layers - self.num_sliding_layers - self.num_linear_layers

    @property
    def kv_elements_per_token_layer(self) -> int:
        """Elements cached per token per layer (K and V; MLA: latent + rope key)."""
        if self.attention == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return self.num_kv_heads * (self.head_dim + self.v_head_dim)

    def attention_params(self) -> int:
        """Weights of one attention block. Hybrid models (linear + full attention layers) get the
        mean over layers, so `num_layers x attention_params()` is the model's attention total."""
        full = self._softmax_attention_params()
        if self.sparse_attention:
            full += self.sparse_attention.params(self.hidden_size, self.q_lora_rank)
        if self.attention_output_gate:
            full += self.hidden_size * self.num_heads * self.head_dim
        if self.linear_attention:
            lin = self.linear_attention.params(self.hidden_size)
            n_lin = self.num_linear_layers
            return round(((self.num_layers - n_lin) * full + n_lin * lin) / self.num_layers)
        return full

    def _softmax_attention_params(self) -> int:
        d, h = self.hidden_size, self.num_heads
        if self.attention == "mla":
            qk = self.head_dim  # nope + rope
            nope = qk - self.qk_rope_head_dim
            q = d * h * qk if not self.q_lora_rank else d * self.q_lora_rank + self.q_lora_rank * h * qk
            kv_down = d * (self.kv_lora_rank + self.qk_rope_head_dim)
            kv_up = self.kv_lora_rank * h * (nope + self.v_head_dim)
            return q + kv_down + kv_up + h * self.v_head_dim * d
        q = d * h * self.head_dim
        kv = d * self.num_kv_heads * (self.head_dim + self.v_head_dim)
        o = h * self.v_head_dim * d
        bias = (h * self.head_dim + self.num_kv_heads * (self.head_dim + self.v_head_dim)) if self.attention_bias else 0
        return q + kv + o + bias

    def mlp_params(self, width: int) -> int:
        """Weights of one MLP (or expert) of hidden width `width`."""
        return (3 if self.gated_mlp else 2) * self.hidden_size * width

    def embedding_params(self) -> int:
        """Input embedding plus LM head (counted once when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_embeddings else 2)

    def encoder_params(self) -> int:
        """Weights of a vision encoder (0 without one)."""
        return self.vision.params() if self.vision else 0

    def total_params(self) -> int:
        """All weights (routed experts included; a VLM's vision encoder included; a diffusion
        model's DiT only; a recommender's tables and MLPs)."""
        if self.kind == "diffusion":
            return self._dit_params()
        if self.kind == "recsys":
            return self.recsys.dense_params() + self.recsys.embedding_params()
        return self._llm_total_params() + self.encoder_params()

    def _dit_params(self, experts: bool = True) -> int:
        """The denoiser's weights by its block kind (`DiffusionSpec.dit_params`): Wan-style
        cross-attention DiT, MMDiT dual/single-stream blocks, joint blocks, or a UNet; every
        expert held in memory when `experts` (Wan2.2-A14B: two), one otherwise."""
        dz = self.diffusion
        one = dz.dit_params(self.hidden_size, self.intermediate_size, self.num_layers)
        return one * (dz.experts if experts else 1)

    def _llm_total_params(self) -> int:
        dense_mlp = self.mlp_params(self.intermediate_size)
        moe_mlp = (self.num_experts * self.mlp_params(self.moe_intermediate_size)
                   + self.num_shared_experts * self.mlp_params(self.shared_intermediate_size)
                   + self.hidden_size * self.num_experts)
        n_dense = self.num_layers - self.num_moe_layers
        return (self.num_layers * self.attention_params() + n_dense * dense_mlp
                + self.num_moe_layers * moe_mlp + self.embedding_params())

    def active_params(self) -> int:
        """Weights touched per token (top-k routed + shared experts; LM head, not input table).
        Diffusion and recommendation models: every weight but the embedding tables."""
        if self.kind == "diffusion":
            return self._dit_params(experts=False)
        if self.kind == "recsys":
            return self.recsys.dense_params()
        dense_mlp = self.mlp_params(self.intermediate_size)
        moe_mlp = (self.experts_per_token * self.mlp_params(self.moe_intermediate_size)
                   + self.num_shared_experts * self.mlp_params(self.shared_intermediate_size))
        n_dense = self.num_layers - self.num_moe_layers
        return (self.num_layers * self.attention_params() + n_dense * dense_mlp
                + self.num_moe_layers * moe_mlp + self.vocab_size * self.hidden_size)

    # ---- loading ------------------------------------------------------------------------
    @classmethod
    def from_hf_config(cls, config: dict[str, Any], model_id: str, source: str = "") -> "ModelSpec":
        """Normalize a Hugging Face config dict; errors name the config field path."""
        extra = _family_fields(config, model_id)
        if extra is not None:
            try:
                return cls.model_validate(dict(extra, id=model_id, source=source))
            except ValidationError as exc:
                raise SpecError(f"{model_id} config.json: {format_validation_error(exc)}") from None
        config = _flatten_text_config(config)
        try:
            raw = _HFConfig.model_validate(config)
        except ValidationError as exc:
            raise SpecError(f"{model_id} config.json: {format_validation_error(exc)}") from None
        try:
            return cls.model_validate(raw.normalize(model_id, source))
        except SpecError as exc:
            raise SpecError(f"{model_id} config.json: {exc}") from None
        except ValidationError as exc:
            raise SpecError(f"{model_id} config.json: {format_validation_error(exc)}") from None

    @classmethod
    def from_config_file(cls, path: str | Path, model_id: str | None = None) -> "ModelSpec":
        """Read a config.json (a file, or a folder holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
        if not isinstance(data, dict):
            raise SpecError(f"{path}: expected a JSON object")
        meta = data.pop("_tokenfab", {}) if isinstance(data.get("_tokenfab"), dict) else {}
        mid = model_id or meta.get("id") or (path.parent.name if path.name == "config.json" else path.stem)
        spec = cls.from_hf_config(data, mid, source=meta.get("source", str(path)))
        if meta.get("operators"):
            try:
                ops = tuple(OperatorSpec.model_validate(o) for o in meta["operators"])
            except ValidationError as exc:
                raise SpecError(f"{path}: _tokenfab.operators: {format_validation_error(exc)}") from None
            spec = spec.model_copy(update={"operators": ops})
        return spec


class _HFConfig(BaseModel):
    """The subset of Hugging Face config keys tokenfab reads (others are ignored)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    model_type: str = "llama"
    hidden_size: int | None = Field(default=None, gt=0)
    n_embd: int | None = Field(default=None, gt=0)
    num_hidden_layers: int | None = Field(default=None, gt=0, le=10_000)
    n_layer: int | None = Field(default=None, gt=0, le=10_000)
    num_attention_heads: int | None = Field(default=None, gt=0)
    n_head: int | None = Field(default=None, gt=0)
    num_key_value_heads: int | None = Field(default=None, gt=0)
    head_dim: int | None = Field(default=None, gt=0)
    intermediate_size: int | None = Field(default=None, gt=0)
    n_inner: int | None = Field(default=None, gt=0)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool | None = None
    attention_bias: bool = False
    max_position_embeddings: int | None = Field(default=None, gt=0)
    n_positions: int | None = Field(default=None, gt=0)
    # MLA
    q_lora_rank: int | None = None
    kv_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    qk_rope_head_dim: int | None = None
    v_head_dim: int | None = None
    # MoE
    num_local_experts: int | None = Field(default=None, ge=0)
    num_experts: int | None = Field(default=None, ge=0)
    n_routed_experts: int | None = Field(default=None, ge=0)
    num_experts_per_tok: int | None = Field(default=None, ge=0)
    experts_per_token: int | None = Field(default=None, ge=0)
    moe_intermediate_size: int | None = Field(default=None, ge=0)
    n_shared_experts: int | None = Field(default=None, ge=0)
    shared_expert_intermediate_size: int | None = Field(default=None, ge=0)
    first_k_dense_replace: int | None = Field(default=None, ge=0)
    # sliding window
    sliding_window: int | None = None
    use_sliding_window: bool | None = None
    layer_types: list[str] | None = None
    sliding_window_pattern: int | None = Field(default=None, gt=0)
    # DeepSeek Sparse Attention (DeepSeek-V3.2)
    index_n_heads: int | None = Field(default=None, gt=0)
    index_head_dim: int | None = Field(default=None, gt=0)
    index_topk: int | None = Field(default=None, gt=0)
    num_nextn_predict_layers: int | None = Field(default=None, ge=0)
    # Gated DeltaNet hybrid (Qwen3-Next)
    full_attention_interval: int | None = Field(default=None, gt=0)
    linear_num_key_heads: int | None = Field(default=None, gt=0)
    linear_num_value_heads: int | None = Field(default=None, gt=0)
    linear_key_head_dim: int | None = Field(default=None, gt=0)
    linear_value_head_dim: int | None = Field(default=None, gt=0)
    linear_conv_kernel_dim: int | None = Field(default=None, gt=0)
    attn_output_gate: bool | None = None
    # vision-language models
    vision_config: dict[str, Any] | None = None
    # quantized checkpoints
    quantization_config: dict[str, Any] | None = None

    def normalize(self, model_id: str, source: str) -> dict[str, Any]:
        d = _need(self.hidden_size or self.n_embd, "hidden_size")
        layers = _need(self.num_hidden_layers or self.n_layer, "num_hidden_layers")
        heads = _need(self.num_attention_heads or self.n_head, "num_attention_heads")
        out: dict[str, Any] = dict(
            id=model_id, family=self.model_type, hidden_size=d, num_layers=layers,
            num_heads=heads, vocab_size=self.vocab_size,
            tie_embeddings=self.tie_word_embeddings if self.tie_word_embeddings is not None
            else self.model_type.startswith("gemma"),
            attention_bias=self.attention_bias, source=source,
            max_context=self.max_position_embeddings or self.n_positions or 4096,
        )
        if self.model_type in ("gptj", "gpt2"):
            out["gated_mlp"] = False
            out["intermediate_size"] = self.n_inner or 4 * d
        else:
            # All-MoE configs (Qwen3.5-MoE) state no dense MLP width; no layer uses it then.
            out["intermediate_size"] = _need(self.intermediate_size or self.moe_intermediate_size, "intermediate_size")
        if self.kv_lora_rank:
            nope = _need(self.qk_nope_head_dim, "qk_nope_head_dim")
            rope = _need(self.qk_rope_head_dim, "qk_rope_head_dim")
            out.update(attention="mla", q_lora_rank=self.q_lora_rank, kv_lora_rank=self.kv_lora_rank,
                       qk_rope_head_dim=rope, head_dim=nope + rope,
                       v_head_dim=_need(self.v_head_dim, "v_head_dim"), num_kv_heads=1)
        else:
            hd = self.head_dim or d // heads
            out.update(head_dim=hd, v_head_dim=hd, num_kv_heads=self.num_key_value_heads or heads)
        experts = self.n_routed_experts or self.num_local_experts or self.num_experts or 0
        if experts:
            topk = _need(self.num_experts_per_tok or self.experts_per_token, "num_experts_per_tok")
            width = self.moe_intermediate_size or out["intermediate_size"]
            out.update(num_experts=experts, experts_per_token=topk, moe_intermediate_size=width)
            if self.n_shared_experts:
                out.update(num_shared_experts=self.n_shared_experts, shared_intermediate_size=width)
            elif self.shared_expert_intermediate_size:
                out.update(num_shared_experts=1, shared_intermediate_size=self.shared_expert_intermediate_size)
            out["num_dense_layers"] = self.first_k_dense_replace or 0
        if self.layer_types:
            n_sliding = sum(1 for t in self.layer_types if t == "sliding_attention")
            if n_sliding and self.sliding_window:
                out.update(sliding_window=self.sliding_window, num_sliding_layers=n_sliding)
        elif self.sliding_window and self.use_sliding_window is not False and self.model_type in ("mistral", "mixtral"):
            if self.sliding_window < out["max_context"]:
                out.update(sliding_window=self.sliding_window, num_sliding_layers=layers)
        elif self.sliding_window and self.model_type in GEMMA_SLIDING:
            # Gemma 2 alternates local/global layers (even layers slide); Gemma 3 makes every
            # `sliding_window_pattern`-th layer global (5 local : 1 global).
            pattern = self.sliding_window_pattern or GEMMA_SLIDING[self.model_type]
            out.update(sliding_window=self.sliding_window,
                       num_sliding_layers=sum(1 for i in range(layers) if (i + 1) % pattern))
        self._sparse_attention(out)
        self._linear_attention(out, layers)
        if self.vision_config:
            out["vision"] = _vision_section(self.vision_config, d)
        if self.num_nextn_predict_layers:
            out["mtp_layers"] = self.num_nextn_predict_layers
        q = self.quantization_config or {}
        if q.get("quant_method") == "fp8" and q.get("weight_block_size"):
            out["fp8_weight_block"] = tuple(q["weight_block_size"])
        return out

    def _sparse_attention(self, out: dict[str, Any]) -> None:
        if self.index_topk and self.index_n_heads and self.index_head_dim:
            out["sparse_attention"] = dict(index_heads=self.index_n_heads, index_head_dim=self.index_head_dim,
                                           index_topk=self.index_topk)

    def _linear_attention(self, out: dict[str, Any], layers: int) -> None:
        if not (self.linear_num_value_heads and self.linear_key_head_dim):
            return
        if self.layer_types:
            n_lin = sum(1 for t in self.layer_types if t == "linear_attention")
        else:
            interval = self.full_attention_interval or 4
            n_lin = sum(1 for i in range(layers) if (i + 1) % interval)
        out["linear_attention"] = dict(
            num_layers=n_lin, num_key_heads=self.linear_num_key_heads or self.linear_num_value_heads,
            num_value_heads=self.linear_num_value_heads, key_head_dim=self.linear_key_head_dim,
            value_head_dim=self.linear_value_head_dim or self.linear_key_head_dim,
            conv_kernel=self.linear_conv_kernel_dim or 4)
        out["attention_output_gate"] = self.model_type == "qwen3_next" or bool(self.attn_output_gate)


GEMMA_SLIDING = {"gemma2": 2, "gemma3": 6, "gemma3_text": 6}
"""Gemma families whose configs state a window but not which layers use it: every n-th layer is global."""

LLM_KEYS = ("hidden_size", "n_embd", "text_config")
KNOWN_FAMILIES = ("decoder LLMs (llama, qwen*, mistral, mixtral, gemma*, gpt_oss, gptj, deepseek_v3, "
                  "deepseek_v32, qwen3_next, qwen2_5_vl, ...)", "Wan DiT (WanModel)", "dlrm_v2", "hstu")


def _family_fields(config: dict[str, Any], model_id: str) -> dict[str, Any] | None:
    """ModelSpec fields of a non-LLM config (diffusion, recommendation), None for LLM configs;
    a config of none of the known kinds raises a SpecError that lists them."""
    try:
        if is_wan_config(config):
            return wan_fields(config)
        if config.get("model_type") in RECSYS_TYPES:
            return recsys_fields(config)
    except SpecError as exc:
        raise SpecError(f"{model_id} config.json: {exc}") from None
    if not any(k in config for k in LLM_KEYS):
        mt = config.get("model_type", config.get("_class_name", "?"))
        raise SpecError(f"{model_id} config.json: model family {mt!r} is not known and the config has no "
                        f"decoder-transformer fields (hidden_size); known families: {'; '.join(KNOWN_FAMILIES)}")
    return None


def _flatten_text_config(config: dict[str, Any]) -> dict[str, Any]:
    """VLM configs that nest the language model under `text_config` (newer transformers): lift
    its keys to the top level, keeping the top-level model_type and vision_config."""
    text = config.get("text_config")
    if not isinstance(text, dict) or "hidden_size" in config:
        return config
    merged = dict(text)
    merged.update({k: v for k, v in config.items() if k != "text_config" and k not in text or k == "model_type"})
    return merged


def _vision_section(vc: dict[str, Any], llm_width: int) -> dict[str, Any]:
    """VisionSpec fields from a Qwen2-VL / Qwen2.5-VL `vision_config`."""
    hidden = vc.get("hidden_size") or vc.get("embed_dim")
    if not hidden:
        raise SpecError("vision_config.hidden_size: required field missing")
    full = vc.get("fullatt_block_indexes") or []
    mlp = vc.get("intermediate_size") or int(hidden * vc.get("mlp_ratio", 4))
    return dict(depth=vc.get("depth", 32), hidden_size=hidden, intermediate_size=mlp,
                num_heads=vc.get("num_heads", 16), patch_size=vc.get("patch_size") or vc.get("spatial_patch_size", 14),
                temporal_patch_size=vc.get("temporal_patch_size", 2),
                spatial_merge_size=vc.get("spatial_merge_size", 2), window_size=vc.get("window_size", 0),
                num_full_attention_layers=len(full), out_hidden_size=vc.get("out_hidden_size") or llm_width,
                in_channels=vc.get("in_channels") or vc.get("in_chans", 3),
                gated_mlp=vc.get("model_type") != "qwen2_vl" and "mlp_ratio" not in vc
                and vc.get("hidden_act", "silu") == "silu",
                deepstack_layers=len(vc.get("deepstack_visual_indexes") or []))


def _need(value: Any, name: str) -> Any:
    if value is None:
        raise SpecError(f"{name}: required field missing")
    return value
