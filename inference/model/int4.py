"""int4 weights (`dtype: "int4"`): weight-only, group-wise asymmetric, through torch's int4 kernels.

Each projection's weight W (N, K) is cut into groups of `group` consecutive input columns; a group with minimum
m and maximum M gets step s = (M - m) / 15, and each weight becomes q = round((w - m) / s) in [0, 15], so that
|w - (m + q s)| <= s / 2. The kernels take the step and an offset per group as `scales_and_zeros` (K / group, N, 2)
and compute with w = (q - 8) * s + z, so z = m + 8 s. The products run in bf16 (KERNEL_DTYPE) whatever the
activations' type (the CPU's `auto` type: bf16 where native, else fp32; bf16 on CUDA):
torch.ops.aten._weight_int4pack_mm_for_cpu on the CPU, torch.ops.aten._weight_int4pack_mm on CUDA (gpt-fast's int4
path), the weights packed once into each kernel's layout (the only copy), the bias added after in the activations'
type. The CPU kernel is vectorized for bf16 inputs only (it needs AVX2 or AVX512F, not native bf16): with fp32
inputs it runs a scalar loop, measured 31x slower (7252 vs 232 us for a 1-row 4096x1024 product, one thread).

The embedding, the norms and the KV cache are as in every other dtype. The head (lm_head, unless tied) is quantized
too (QUANTIZE_HEAD_INT4): measured on the CodeGen-350M shape (random weights, 256 positions), it moves the mean
|logit error| from 0.196 to 0.209 logit std with top-1 agreement (48.8% vs 49.2%) and greedy agreement (33% vs
34%) unchanged, while a float head is 40% of an int4 decode step's bytes (decoding 49.3 -> 62.9 tokens/s in one
process, alternating, on a quiet machine) and 0.3 GB of a 6B model's memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor, nn

INT4_LEVELS = 15  # q in [0, 15]
INT4_OFFSET = 8  # the kernels' w = (q - 8) * scale + zero
GROUP_SIZES = (32, 64, 128)  # what the CPU kernel supports (and 256) and we measured
DEFAULT_GROUP = 64
QUANTIZE_HEAD_INT4 = True
KERNEL_DTYPE = torch.bfloat16  # of the int4 products' inputs, outputs and group table, on both devices
CUDA_INNER_K_TILES = 8  # gpt-fast's choice
CUDA_MIN_COLUMNS = CUDA_INNER_K_TILES * 16  # K must be a multiple of this on CUDA (a smaller matrix stays float)
_CHUNK_ROWS = 1024  # at most this many rows quantized at a time (a power of two)...
_CHUNK_ELEMENTS = 1024 * 4096  # ...and about this many weights: bounds the fp32 temporaries (16 MB each)
_MIN_CHUNK_ROWS = 64  # the CPU kernel's block of channels with AVX512 (a multiple of the smaller ones elsewhere)


class RowBlocks(Protocol):
    """A matrix (N, K) read a block of rows at a time, never whole: a fused matrix while it is loaded
    (checkpoint/layout.py's FusedWeight), so that quantizing it never holds the whole float matrix."""

    shape: tuple[int, int]

    def blocks(self, size: int) -> Iterator[Tensor]:
        """The rows, `size` at a time (the last block shorter): (size, K) each."""
        ...


def row_blocks(weight: Tensor | RowBlocks, size: int) -> Iterator[Tensor]:
    """A weight's rows `size` at a time, whether it is a tensor or read by blocks."""
    return iter(weight.detach().split(size)) if isinstance(weight, Tensor) else weight.blocks(size)


def chunk_rows(columns: int) -> int:
    """Rows quantized at a time in a matrix of `columns` columns: _CHUNK_ROWS halved while the chunk holds more
    than _CHUNK_ELEMENTS weights, never below _MIN_CHUNK_ROWS (a 6B layer's out_proj, 20480 columns: 128 rows,
    where 1024 took 250 MB of temporaries)."""
    rows = _CHUNK_ROWS
    while rows > _MIN_CHUNK_ROWS and rows * columns > _CHUNK_ELEMENTS:
        rows //= 2
    return rows


def group_for(in_features: int, group: int) -> int | None:
    """The group size used for a matrix of `in_features` columns: `group`, halved until it divides them, never
    below 32 (the smallest the kernels take); None when none fits (the matrix then stays in float)."""
    while group >= GROUP_SIZES[0]:
        if in_features % group == 0:
            return group
        group //= 2
    return None


def quantize_groupwise(weight: Tensor, group: int) -> tuple[Tensor, Tensor, Tensor]:
    """weight (N, K) float -> (q (N, K) int32 in [0, 15], scale (N, K / group) fp32, zero (N, K / group) fp32)
    with weight ~ (q - 8) * scale + zero, group by group of `group` columns."""
    N, K = weight.shape
    G = K // group
    q = torch.empty(N, K, dtype=torch.int32, device=weight.device)
    scale = torch.empty(N, G, dtype=torch.float32, device=weight.device)
    zero = torch.empty(N, G, dtype=torch.float32, device=weight.device)
    chunk = chunk_rows(K)
    for start in range(0, N, chunk):
        rows = weight[start : start + chunk].to(torch.float32, copy=True).view(-1, G, group)  # (n, G, group)
        low, high = rows.amin(dim=-1, keepdim=True), rows.amax(dim=-1, keepdim=True)  # (n, G, 1) each
        step = ((high - low) / INT4_LEVELS).clamp_(min=torch.finfo(torch.float32).tiny)  # (n, G, 1)
        levels = rows.sub_(low).div_(step).round_().clamp_(0, INT4_LEVELS)  # (n, G, group), in place on rows
        q[start : start + chunk] = levels.view(-1, K)
        scale[start : start + chunk] = step.squeeze(-1)
        zero[start : start + chunk] = (low + INT4_OFFSET * step).squeeze(-1)
    return q, scale, zero


def dequantize_int4(q: Tensor, scale: Tensor, zero: Tensor) -> Tensor:
    """The fp32 weight (N, K) an int4 weight stands for: (q - 8) * scale + zero, group by group."""
    N, K = q.shape
    G = scale.shape[1]
    groups = (q.float() - INT4_OFFSET).view(N, G, K // G)  # (N, G, group)
    return (groups * scale[..., None] + zero[..., None]).view(N, K)


def scales_and_zeros(scale: Tensor, zero: Tensor, dtype: torch.dtype) -> Tensor:
    """(N, G) scale and zero -> the kernels' (G, N, 2) table, in `dtype` (KERNEL_DTYPE for the kernels)."""
    return torch.stack((scale, zero), dim=-1).transpose(0, 1).contiguous().to(dtype)  # (G, N, 2)


def int4_kernel_problem(device: torch.device) -> str | None:
    """Why int4 cannot run on `device` with this torch, or None when it can: the kernel is there and answers a
    tiny product (some builds have the operator but no kernel for this CPU or GPU)."""
    op = "_weight_int4pack_mm" if device.type == "cuda" else "_weight_int4pack_mm_for_cpu"
    if not hasattr(torch.ops.aten, op):
        return f"this torch ({torch.__version__}) has no {op}"
    try:
        q, scale, zero = quantize_groupwise(torch.randn(16, 128, device=device), 32)
        probe = torch.ones(1, 128, dtype=KERNEL_DTYPE, device=device)
        Int4Linear.from_levels(q, scale, zero, None, 32, KERNEL_DTYPE)(probe)
    except (RuntimeError, NotImplementedError) as exc:
        return f"torch {torch.__version__}'s {op} does not run here ({str(exc).splitlines()[0]})"
    return None


def pack_int4(q: Tensor) -> Tensor:
    """q (N, K) int32 in [0, 15] -> the layout the device's kernel reads."""
    if q.device.type == "cuda":
        pairs = (q[:, ::2] << 4 | q[:, 1::2]).to(torch.uint8)  # (N, K / 2): even column in the high nibble
        return torch.ops.aten._convert_weight_to_int4pack(pairs, CUDA_INNER_K_TILES)
    return torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)  # (N, K / 2) uint8


def quantize_and_pack(weight: Tensor | RowBlocks, group: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """weight (N, K) float -> (the kernel's packed int4 weight, its (G, N, 2) group table in `dtype`). On the CPU
    chunk_rows(K) output channels at a time: the CPU layout keeps each block of channels (64 with AVX512, fewer
    elsewhere: any divisor of the chunk) in its own rows, so packing chunks gives the bytes packing the whole
    matrix gives (tests/test_int4.py checks it), and the int32 levels never exist for the whole matrix (a 6B
    layer's in_proj would take 470 MB of them), nor, for a matrix read by blocks, the float matrix."""
    N, K = weight.shape
    if isinstance(weight, Tensor) and weight.device.type == "cuda":
        q, scale, zero = quantize_groupwise(weight.detach(), group)
        return pack_int4(q), scales_and_zeros(scale, zero, dtype)
    packed = torch.empty(N, K // 2, dtype=torch.uint8)
    table = torch.empty(K // group, N, 2, dtype=dtype)
    chunk = chunk_rows(K)
    for start, rows in zip(range(0, N, chunk), row_blocks(weight, chunk), strict=True):
        q, scale, zero = quantize_groupwise(rows, group)  # (n, K) levels, (n, G) scale and zero
        packed[start : start + chunk] = pack_int4(q)
        table[:, start : start + chunk] = scales_and_zeros(scale, zero, dtype)
        del rows, q, scale, zero
    return packed, table


class Int4Linear(nn.Module):
    """A projection with int4 weights (packed once for the device's kernel: the only copy), a scale and an offset
    per group of `group` input columns (in KERNEL_DTYPE), and a bias in the activations' dtype `dtype`."""

    def __init__(
        self, packed: Tensor, table: Tensor, bias: Tensor | None, group: int, in_features: int, dtype: torch.dtype
    ) -> None:
        super().__init__()
        self.in_features, self.out_features, self.group = in_features, table.shape[1], group
        self.register_buffer("packed", packed)  # the kernel's layout of (N, K) 4-bit levels
        self.register_buffer("scales_and_zeros", table.to(KERNEL_DTYPE))  # (G, N, 2)
        self.register_buffer("bias", None if bias is None else bias.detach().to(dtype))  # (N,)
        self.kernel = "_weight_int4pack_mm" if packed.device.type == "cuda" else "_weight_int4pack_mm_for_cpu"
        self._product = getattr(torch.ops.aten, self.kernel)

    @classmethod
    def from_levels(
        cls, q: Tensor, scale: Tensor, zero: Tensor, bias: Tensor | None, group: int, dtype: torch.dtype
    ) -> Int4Linear:
        """From quantize_groupwise's output (tests build weights on the int4 grid this way)."""
        return cls(pack_int4(q), scales_and_zeros(scale, zero, KERNEL_DTYPE), bias, group, q.shape[1], dtype)

    @classmethod
    def from_weight(cls, weight: Tensor | RowBlocks, bias: Tensor | None, group: int, dtype: torch.dtype) -> Int4Linear:
        packed, table = quantize_and_pack(weight, group, KERNEL_DTYPE)
        return cls(packed, table, bias, group, weight.shape[1], dtype)

    @property
    def weight_bytes(self) -> int:
        """Bytes a product reads: half a byte per weight, plus the group table."""
        return self.packed.numel() + self.scales_and_zeros.numel() * self.scales_and_zeros.element_size()

    def forward(self, x: Tensor) -> Tensor:
        rows = x.reshape(-1, x.shape[-1]).to(KERNEL_DTYPE)  # (R, K); no copy when x is bf16
        out = self._product(rows, self.packed, self.group, self.scales_and_zeros).to(x.dtype)  # (R, N)
        if self.bias is not None:
            out = out.add_(self.bias)
        return out.view(*x.shape[:-1], -1)
