"""int8 weights (`dtype: "int8"`): per-output-channel symmetric scales, applied once after loading.

Each projection's weight W (N, K) becomes q = round(W / s) in [-127, 127] with s = max|W[n, :]| / 127 per output
channel, so |W - q * s| <= s / 2 element-wise. Each row of activations is quantized on the fly with its own scale
(dynamic, per token), the int32 sums are rescaled, the bias added in fp32. Two kernels do the product:
- fbgemm's dynamic int8 linear (torch.ops.quantized.linear_dynamic, the weights packed once), where the CPU has
  VNNI: it quantizes its input with one asymmetric 8-bit scale, so several rows are first scaled to [-1, 1] each
  (per-token resolution kept) and rescaled after. Measured on the CodeGen-350M shapes (2 threads, AMD EPYC with
  AVX512-VNNI), against torch._int_mm below: one row 235 vs 431 us (7168 x 1024), 186 vs 223 us (1024 x 5120),
  1271 vs 2733 us (the 51200 x 1024 head); 9 rows 2-2.6x faster; 256 rows 1.3-1.8x faster. Same quality on the
  bundled model (held-out loss over 93,658 tokens: fp32 2.6655, fbgemm 2.6660, _int_mm 2.6662).
- torch._int_mm (oneDNN's int8 GEMM) elsewhere: activations quantized symmetrically per row by us.

Why dynamic per-token int8 activations and not weight-only bf16 x int8 (gpt-fast's _weight_int8pack_mm): measured
on this project's CPU (2 threads, min over interleaved runs, CodeGen-350M's shapes), the fastest of the paths
torch 2.13 offers:
    (7168 x 1024) one row: bf16 oneDNN-packed 430-600 us, _weight_int8pack_mm 450 us, _int_mm 375-415 us
    (1024 x 5120) one row: bf16 oneDNN-packed 400 us,     _weight_int8pack_mm 215 us, _int_mm 185-200 us
    16 rows (draft verification): _int_mm ~ bf16 oneDNN-packed; _weight_int8pack_mm 2-3x slower than both
Per-token scales keep one token's outliers out of every other token's resolution (a per-tensor scale over a
1024-token prefill would not).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from codegen_lsp.inference.model.codegen import CodeGen
from codegen_lsp.inference.model.device import cpu_description, cpu_has_vnni
from codegen_lsp.inference.model.int4 import (
    CUDA_MIN_COLUMNS,
    DEFAULT_GROUP,
    QUANTIZE_HEAD_INT4,
    Int4Linear,
    RowBlocks,
    group_for,
    row_blocks,
)
from codegen_lsp.inference.model.kernels import release_freed_memory

INT8_MAX = 127
# lm_head too: 17% of a bf16 decode step's bytes. On the CodeGen-350M shape (random weights, 256 positions) the
# head adds almost nothing to the error: mean |logit error| 0.031 vs 0.029 logit std, top-1 agreement 92.6% vs 93.0%.
QUANTIZE_HEAD = True
_CHUNK_ROWS = 1024  # at most this many rows quantized at a time...
_CHUNK_ELEMENTS = 1024 * 4096  # ...and at most this many weights: bounds the fp32 temporaries (16 MB each)


def quantize_per_channel(weight: Tensor | RowBlocks) -> tuple[Tensor, Tensor]:
    """weight (N, K) float -> (q (N, K) int8, scale (N,) fp32) with weight ~ q * scale[:, None], a chunk of
    rows at a time (a weight read by blocks is never whole)."""
    device = weight.device if isinstance(weight, Tensor) else torch.device("cpu")
    q = torch.empty(weight.shape, dtype=torch.int8, device=device)
    scale = torch.empty(weight.shape[0], dtype=torch.float32, device=device)
    chunk = max(1, min(_CHUNK_ROWS, _CHUNK_ELEMENTS // weight.shape[1]))
    for start, block in zip(range(0, weight.shape[0], chunk), row_blocks(weight, chunk), strict=True):
        rows = block.float()  # (n, K)
        row_scale = rows.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / INT8_MAX  # (n,)
        q[start : start + chunk] = (rows / row_scale[:, None]).round_().clamp_(-INT8_MAX, INT8_MAX)
        scale[start : start + chunk] = row_scale
        del block, rows
    return q, scale


def dequantize(q: Tensor, scale: Tensor) -> Tensor:
    """The fp32 weight (N, K) an int8 weight stands for."""
    return q.float() * scale[:, None]


def int8_linear(x: Tensor, weight: Tensor, scale: Tensor, bias: Tensor | None) -> Tensor:
    """x (..., K) float @ dequantize(weight, scale).T + bias, with x quantized per row. Returns (..., N) in x's
    dtype."""
    return int8_product(x, weight.t(), scale / INT8_MAX, None if bias is None else bias.float())


def row_abs_max(rows: Tensor) -> Tensor:
    """Each row's largest magnitude (R, K) -> (R, 1) fp32, never 0: the per-token scale of both kernels."""
    return torch.linalg.vector_norm(rows, float("inf"), dim=-1, keepdim=True, dtype=torch.float32).clamp_(
        min=torch.finfo(torch.float32).tiny
    )


def int8_product(x: Tensor, weight_t: Tensor, channel_step: Tensor, bias: Tensor | None) -> Tensor:
    """int8_linear with its constants prepared (Int8Linear keeps them): weight_t (K, N) int8, channel_step (N,)
    = scale / 127, bias (N,) fp32. Written in as few operations as torch allows: at one row (a decode step) each
    costs a few microseconds, and a step runs 41 of these products."""
    rows = x.reshape(-1, x.shape[-1])  # (R, K)
    row_max = row_abs_max(rows)  # (R, 1)
    q = torch.mul(rows, INT8_MAX / row_max).round_().to(torch.int8)  # (R, K): a new tensor, x is untouched
    exact = torch._int_mm(q, weight_t)  # (R, N) int32 sums, exact
    unit = channel_step * row_max  # (R, N): what one unit of an int32 sum is worth
    out = exact * unit if bias is None else torch.addcmul(bias, exact, unit)  # (R, N) fp32
    return out.to(x.dtype).view(*x.shape[:-1], -1)


def fbgemm_available() -> bool:
    """fbgemm's dynamic int8 linear exists in this torch and is exact on this CPU (VNNI: without it, its 8-bit
    activations would have to lose a bit to avoid saturating 16-bit pair sums)."""
    return (
        torch.backends.quantized.engine in ("x86", "fbgemm")
        and hasattr(torch.ops.quantized, "linear_dynamic")
        and cpu_has_vnni()
    )


def pack_for_fbgemm(weight: Tensor, scale: Tensor) -> object:
    """weight (N, K) int8 with per-channel scale (N,) -> fbgemm's packed form (no bias: it is added in fp32)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch 2.13 calls quantized tensors deprecated
        zero_points = torch.zeros(weight.shape[0], dtype=torch.int64)
        qweight = torch._make_per_channel_quantized_tensor(weight, scale.double(), zero_points, 0)
        return torch.ops.quantized.linear_prepack(qweight, None)


def fbgemm_product(x: Tensor, packed: object, bias: Tensor | None) -> Tensor:
    """x (..., K) float @ the packed int8 weight + bias (N,) fp32, in x's dtype. fbgemm quantizes its whole input
    with one scale: one row (a decode step) is its own; several rows are scaled to [-1, 1] first, so that each
    keeps the resolution of a per-token scale, and scaled back after."""
    rows = x.reshape(-1, x.shape[-1])  # (R, K)
    if rows.shape[0] == 1:
        out = torch.ops.quantized.linear_dynamic(rows.float(), packed, False)  # (1, N) fp32
        out = out if bias is None else out.add_(bias)
    else:
        row_max = row_abs_max(rows)  # (R, 1)
        out = torch.ops.quantized.linear_dynamic(rows / row_max, packed, False)  # (R, N) fp32
        out = out.mul_(row_max) if bias is None else torch.addcmul(bias, out, row_max)
    return out.to(x.dtype).view(*x.shape[:-1], -1)


class Int8Linear(nn.Module):
    """A projection with int8 weights, its per-channel scales and an fp32 bias; the weights packed for fbgemm
    (which then holds the only copy) or kept for torch._int_mm."""

    def __init__(self, weight: Tensor, scale: Tensor, bias: Tensor | None, fbgemm: bool = False) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("scale", scale)  # (N,) fp32
        self.register_buffer("bias", None if bias is None else bias.detach().float())  # (N,) fp32
        self._packed = pack_for_fbgemm(weight, scale) if fbgemm else None
        self.register_buffer("weight", None if fbgemm else weight)  # (N, K) int8, for _int_mm
        self._channel_step = scale / INT8_MAX  # (N,) fp32: _int_mm's constants, prepared once
        self._weight_t = None if fbgemm else weight.t()  # (K, N): a view, what _int_mm takes

    @classmethod
    def from_linear(cls, linear: nn.Linear, fbgemm: bool = False) -> Int8Linear:
        q, scale = quantize_per_channel(linear.weight.detach())
        return cls(q, scale, linear.bias, fbgemm)

    @property
    def kernel(self) -> str:
        return "fbgemm" if self._packed is not None else "_int_mm"

    @property
    def weight_bytes(self) -> int:
        return self.out_features * self.in_features  # one byte each, in whichever copy the kernel reads

    def int8_weight(self) -> Tensor:
        """The (N, K) int8 weight, unpacked from fbgemm's form when packed."""
        if self._packed is None:
            return self.weight
        return torch.ops.quantized.linear_unpack(self._packed)[0].int_repr()

    def forward(self, x: Tensor) -> Tensor:
        if self._packed is not None:
            return fbgemm_product(x, self._packed, self.bias)
        return int8_product(x, self._weight_t, self._channel_step, self.bias)


def quantize_int8(model: CodeGen, head: bool = QUANTIZE_HEAD, fbgemm: bool | None = None) -> None:
    """Swap every projection (and the head, unless tied or `head` is False) for an Int8Linear, in place, one
    matrix at a time so that the float copies are freed as it goes; through fbgemm where it is available (or as
    `fbgemm` says)."""
    fbgemm = fbgemm_available() if fbgemm is None else fbgemm
    targets = {id(linear) for linear in model.projections(head)}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in targets:
                setattr(parent, name, Int8Linear.from_linear(child, fbgemm))
                del child
                release_freed_memory()


@dataclass(frozen=True)
class WeightFormat:
    """How the projections' weights are stored: "int8" (per channel) or "int4" (per group of `group` columns),
    and whether the head is quantized too. The defaults are what `dtype: "int8"` / `"int4"` load; the quality
    script and the benchmarks set the others."""

    kind: str
    group: int = DEFAULT_GROUP  # int4 only
    head: bool | None = None  # None: QUANTIZE_HEAD for int8, QUANTIZE_HEAD_INT4 for int4

    @property
    def quantizes_head(self) -> bool:
        if self.head is not None:
            return self.head
        return QUANTIZE_HEAD if self.kind == "int8" else QUANTIZE_HEAD_INT4

    def describe(self) -> str:
        head = "head too" if self.quantizes_head else "head in float"
        return f"int4, groups of {self.group}, {head}" if self.kind == "int4" else f"int8 per channel, {head}"


def quantized_projection(
    weight: Tensor | RowBlocks,
    bias: Tensor | None,
    form: WeightFormat,
    dtype: torch.dtype,
    fbgemm: bool | None = None,
) -> nn.Module | None:
    """The quantized module standing for weight (N, K) + bias in `form`, activations in `dtype`; None when the
    matrix cannot take that form (int4: no group size divides K), and stays a float projection. A weight read by
    blocks (a fused matrix while loading on the CPU) is quantized a block at a time, never built whole."""
    if form.kind == "int8":
        q, scale = quantize_per_channel(weight)
        return Int8Linear(q, scale, bias, fbgemm_available() if fbgemm is None else fbgemm)
    group = group_for(weight.shape[1], form.group)
    on_cuda = isinstance(weight, Tensor) and weight.device.type == "cuda"
    if group is None or (on_cuda and weight.shape[1] % CUDA_MIN_COLUMNS):
        return None
    return Int4Linear.from_weight(weight, bias, group, dtype)


def quantize_model(model: CodeGen, form: WeightFormat, dtype: torch.dtype) -> None:
    """Swap every projection (and the head, unless tied or the form leaves it) of a loaded model for its quantized
    form, in place, one matrix at a time (each float copy freed as it goes). Loading quantizes as the weights
    arrive instead (checkpoint/loading.py); this is for a model already in memory (tests, training)."""
    targets = {id(linear) for linear in model.projections(form.quantizes_head)}
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in targets:
                weight = child.weight.to_dense() if child.weight.layout == torch._mkldnn else child.weight
                replacement = quantized_projection(weight, child.bias, form, dtype)
                if replacement is not None:
                    setattr(parent, name, replacement)
                del child, weight
                release_freed_memory()


def kernel_label(module: nn.Module) -> str:
    """Which kernel a projection runs through, in words."""
    if isinstance(module, Int4Linear):
        return f"int4 in groups of {module.group} through {module.kernel}"
    if isinstance(module, Int8Linear):
        return "int8 through fbgemm's dynamic int8 linear" if module.kernel == "fbgemm" else "int8 through _int_mm"
    weight = module.weight
    dtype = str(weight.dtype).removeprefix("torch.")
    if weight.layout == torch._mkldnn:
        return f"{dtype} through oneDNN (packed weights)"
    return f"{dtype} through F.linear" + (" (one row: torch.mv)" if weight.device.type == "cpu" else "")


def describe_kernels(model: CodeGen, dtype: torch.dtype, device: torch.device) -> str:
    """One line saying which kernels the loaded model runs, for the log and `codegen-lsp doctor`, e.g. "matrices:
    int4 in groups of 64 through _weight_int4pack_mm_for_cpu; head: bfloat16 through oneDNN (packed weights);
    activations and KV cache: bfloat16; CPU: AMD EPYC (avx512_bf16, avx512_vnni, avx512f, avx2; no AMX)"."""
    blocks = sorted({kernel_label(m) for block in model.h for m in (block.in_proj, block.out_proj)})
    head = "the embedding (tied)" if model.config.tie_word_embeddings else kernel_label(model.lm_head)
    where = f"CPU: {cpu_description()}" if device.type == "cpu" else f"device: {device}"
    activations = str(dtype).removeprefix("torch.")
    return f"matrices: {', '.join(blocks)}; head: {head}; activations and KV cache: {activations}; {where}"
