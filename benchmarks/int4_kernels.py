"""Which CPU kernel multiplies by int4 weights fastest (a script, never a test; registered nowhere).

    python benchmarks/int4_kernels.py --shape 2B --layers 8 [--rows 1] [--repeats 15] [--candidates ...]

A stack of `--layers` CodeGen layers' projections of the shape (qkv K x 3K, out K x K, fc_in K x 4K, fc_out 4K x K)
and the head (K x 51200), random weights, quantized once per candidate; each repeat runs every candidate over the
whole stack in turn (order rotated), so that every product reads weights that the other products evicted from the
caches, as in a real decode step. Prints the median microseconds of each product and of the whole pass.

Candidates:
- int8: our Int8Linear through fbgemm (dynamic per-token int8 activations, VNNI), the `dtype: int8` path;
- int4:G / int4:G:fp32: our Int4Linear (torch's _weight_int4pack_mm_for_cpu), groups of G, bf16 (or fp32)
  activations, the `dtype: int4` path at G = 64 (fp32 activations are cast to bf16 for the kernel: its fp32
  path is a scalar loop, measured 31x slower before Int4Linear did so);
- ort:G: onnxruntime's MatMulNBits (com.microsoft), 4-bit weights in groups of G with a 4-bit integer zero point,
  accuracy_level 4 (activations quantized to int8 per group, VNNI), one InferenceSession per matrix; ort:G:sym
  without zero points (symmetric). Needs `onnxruntime` and `onnx` importable (e.g. a scratch venv made with
  --system-site-packages);
- bnb:G: bitsandbytes' CPU NF4 product (bf16 activations, absmax per group of G);
- dyn4:G: torch's _dyn_quant_matmul_4bit (fp32 in and out, symmetric int4 weights in groups of G).

Each candidate's output on one row is compared with the float product by its own dequantized weights (the largest
difference over the largest |output|), so a kernel that quantizes its activations shows it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import torch
from torch import Tensor

from codegen_lsp.inference.model.int4 import Int4Linear, dequantize_int4, quantize_groupwise
from codegen_lsp.inference.model.quantize import Int8Linear, dequantize, quantize_per_channel

SHAPES = {"350M": 1024, "2B": 2560, "6B": 4096}
VOCAB = 51200
KINDS = ("qkv", "out", "fc_in", "fc_out")


def kind_shape(kind: str, width: int) -> tuple[int, int]:
    """(in_features K, out_features N) of a projection."""
    return {
        "qkv": (width, 3 * width),
        "out": (width, width),
        "fc_in": (width, 4 * width),
        "fc_out": (4 * width, width),
        "head": (width, VOCAB),
    }[kind]


Product = Callable[[Tensor], Tensor]


def torch_int4(weight: Tensor, group: int, dtype: torch.dtype) -> tuple[Product, Tensor, int]:
    linear = Int4Linear.from_weight(weight, None, group, dtype)
    q, scale, zero = quantize_groupwise(weight, group)
    return (lambda x: linear(x.to(dtype))), dequantize_int4(q, scale, zero), linear.weight_bytes


def torch_int8(weight: Tensor) -> tuple[Product, Tensor, int]:
    q, scale = quantize_per_channel(weight)
    linear = Int8Linear(q, scale, None, fbgemm=True)
    return linear, dequantize(q, scale), linear.weight_bytes


def integer_zero_int4(weight: Tensor, group: int) -> tuple[Tensor, Tensor, Tensor]:
    """weight (N, K) -> (q (N, G, group) uint8 in [0, 15], scale (N, G), zero point (N, G) uint8 in [0, 15]) with
    weight ~ (q - zero point) * scale: asymmetric min-max groups whose zero point is an integer (GPTQ/AWQ style)."""
    N, K = weight.shape
    groups = weight.float().view(N, K // group, group)  # (N, G, group)
    low = groups.amin(-1).clamp(max=0)  # (N, G): 0 kept representable
    high = groups.amax(-1).clamp(min=0)
    scale = ((high - low) / 15).clamp(min=torch.finfo(torch.float32).tiny)  # (N, G)
    zero_point = (-low / scale).round().clamp(0, 15)  # (N, G)
    q = (groups / scale[..., None] + zero_point[..., None]).round().clamp(0, 15)  # (N, G, group)
    return q.to(torch.uint8), scale, zero_point.to(torch.uint8)


def symmetric_int4(weight: Tensor, group: int) -> tuple[Tensor, Tensor, Tensor]:
    """weight (N, K) -> (q (N, G, group) uint8 in [0, 15], scale (N, G), zero point 8 (N, G) uint8) with
    weight ~ (q - 8) * scale, scale = max |w| / 8 per group."""
    N, K = weight.shape
    groups = weight.float().view(N, K // group, group)  # (N, G, group)
    scale = (groups.abs().amax(-1) / 8).clamp(min=torch.finfo(torch.float32).tiny)  # (N, G)
    q = (groups / scale[..., None]).round().clamp(-8, 7) + 8  # (N, G, group)
    return q.to(torch.uint8), scale, torch.full_like(scale, 8, dtype=torch.uint8)


def ort_int4(weight: Tensor, group: int, threads: int, symmetric: bool = False) -> tuple[Product, Tensor, int]:
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    N, K = weight.shape
    q, scale, zero_point = symmetric_int4(weight, group) if symmetric else integer_zero_int4(weight, group)
    dequantized = ((q.float() - zero_point[..., None].float()) * scale[..., None]).view(N, K)
    packed = (q[..., 0::2] | q[..., 1::2] << 4).contiguous()  # (N, G, group / 2): even column in the low nibble
    zeros = zero_point if zero_point.shape[1] % 2 == 0 else torch.nn.functional.pad(zero_point, (0, 1))
    zeros = (zeros[:, 0::2] | zeros[:, 1::2] << 4).contiguous()  # (N, ceil(G / 2))
    initializers = [
        numpy_helper.from_array(packed.numpy(), "B"),
        numpy_helper.from_array(scale.reshape(-1).numpy().astype(np.float32), "scales"),
    ]
    if not symmetric:  # without them MatMulNBits takes 8 as every zero point
        initializers.append(numpy_helper.from_array(zeros.numpy(), "zero_points"))
    node = helper.make_node(
        "MatMulNBits",
        ["X", "B", "scales"] + ([] if symmetric else ["zero_points"]),
        ["Y"],
        domain="com.microsoft",
        K=K,
        N=N,
        bits=4,
        block_size=group,
        accuracy_level=4,
    )
    graph = helper.make_graph(
        [node],
        "int4",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["M", K])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", N])],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # A session's pool threads spin after each run by default: a hundred sessions' spinning threads (or one
    # global pool's) take the cores from the next product, torch's included.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_cpu_mem_arena = False
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def product(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {"X": x.float().numpy()})[0])

    return product, dequantized, packed.numel() + scale.numel() * 4 + (0 if symmetric else zeros.numel())


def dyn_quant_int4(weight: Tensor, group: int) -> tuple[Product, Tensor, int]:
    """torch's dynamic-int8-activation x int4 product; symmetric int4 weights, stored q + 8 in [0, 15]."""
    N, K = weight.shape
    groups = weight.float().view(N, K // group, group)  # (N, G, group)
    scale = (groups.abs().amax(-1) / 8).clamp(min=torch.finfo(torch.float32).tiny)  # (N, G)
    q = (groups / scale[..., None]).round().clamp(-8, 7)  # (N, G, group)
    dequantized = (q * scale[..., None]).view(N, K)
    stored = (q + 8).to(torch.uint8).view(N, K)
    packed_pairs = (stored[:, 0::2] | stored[:, 1::2] << 4).contiguous()  # (N, K / 2)
    packed = torch.ops.aten._dyn_quant_pack_4bit_weight(packed_pairs, scale.contiguous(), None, group, K, N)
    return (lambda x: torch.ops.aten._dyn_quant_matmul_4bit(x.float(), packed, group, K, N)), dequantized, N * K // 2


def bnb_nf4(weight: Tensor, group: int) -> tuple[Product, Tensor, int]:
    """bitsandbytes' CPU 4-bit product (NF4 levels, an absmax per group, bf16 activations): its own library's
    AVX512-BF16 loop (the faster kernels-community kernel it tries first is a hub download, absent here)."""
    import bitsandbytes.functional as bnb

    packed, state = bnb.quantize_4bit(weight.to(torch.bfloat16), blocksize=group, quant_type="nf4")
    dequantized = bnb.dequantize_4bit(packed, state).float()
    packed, state = bnb._convert_weight_packed_for_cpu(packed, state)
    size = packed.numel() + state.absmax.numel() * 2
    return (lambda x: bnb.gemv_4bit(x.to(torch.bfloat16), packed, state=state)), dequantized, size


def build(spec: str, weight: Tensor, threads: int) -> tuple[Product, Tensor, int]:
    name, *options = spec.split(":")
    group = int(options[0]) if options else 64
    if name == "int8":
        return torch_int8(weight)
    if name == "int4":
        return torch_int4(weight, group, torch.float32 if "fp32" in options else torch.bfloat16)
    if name == "ort":
        return ort_int4(weight, group, threads, symmetric="sym" in options)
    if name == "bnb":
        return bnb_nf4(weight, group)
    if name == "dyn4":
        return dyn_quant_int4(weight, group)
    raise SystemExit(f"unknown candidate {spec!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="2B")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidates", default="int8,int4:64,int4:128,int4:256,int4:64:fp32,ort:64,ort:128")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: the calling thread's CPU time (with --threads 1 every kernel here runs on it), which other "
        "processes sharing the cores do not inflate",
    )
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        raise SystemExit("--clock cpu measures one thread: use it with --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    width = SHAPES[args.shape]
    candidates = args.candidates.split(",")
    matrices = [(layer, kind) for layer in range(args.layers) for kind in KINDS] + [(args.layers, "head")]
    products: dict[str, list[Product]] = defaultdict(list)
    weight_bytes: dict[str, int] = defaultdict(int)
    errors: dict[str, float] = defaultdict(float)
    probe = {K: torch.randn(1, K) for K in {width, 4 * width}}
    with torch.no_grad():
        for _, kind in matrices:
            K, N = kind_shape(kind, width)
            weight = torch.randn(N, K) * K**-0.5
            for spec in candidates:
                product, dequantized, size = build(spec, weight, args.threads)
                exact = probe[K] @ dequantized.T  # (1, N)
                error = (product(probe[K]).float() - exact).abs().max() / exact.abs().max()
                errors[spec] = max(errors[spec], error.item())
                products[spec].append(product)
                weight_bytes[spec] += size
        inputs = {K: torch.randn(args.rows, K) for K in probe}
        times: dict[tuple[str, str], list[float]] = defaultdict(list)
        passes: dict[str, list[float]] = defaultdict(list)
        for repeat in range(args.repeats + 1):  # the first pass warms up and is not counted
            order = candidates[repeat % len(candidates) :] + candidates[: repeat % len(candidates)]
            for spec in order:
                start = clock()
                for (_, kind), product in zip(matrices, products[spec], strict=True):
                    x = inputs[kind_shape(kind, width)[0]]
                    before = clock()
                    product(x)
                    if repeat:
                        times[spec, kind].append(clock() - before)
                if repeat:
                    passes[spec].append(clock() - start)
    load = os.getloadavg()
    print(
        f"shape {args.shape} ({args.layers} layers + head), {args.rows} row(s), {args.threads} threads, "
        f"{args.repeats} repeats, {args.clock} clock, load average (1/5/15 min) before "
        f"{' '.join(f'{v:.1f}' for v in load_before)}, after {' '.join(f'{v:.1f}' for v in load)}"
    )
    header = [
        "candidate",
        "MB",
        "rel.err",
        *(f"{k} {kind_shape(k, width)[0]}x{kind_shape(k, width)[1]}" for k in (*KINDS, "head")),
        "pass ms",
        "vs int8",
    ]
    print(" | ".join(header))
    baseline = statistics.median(passes[candidates[0]])
    for spec in candidates:
        cells = [spec, f"{weight_bytes[spec] / 1e6:.0f}", f"{errors[spec]:.1e}"]
        cells += [f"{statistics.median(times[spec, kind]) * 1e6:.0f}" for kind in (*KINDS, "head")]
        step = statistics.median(passes[spec])
        cells += [f"{step * 1e3:.1f}", f"{baseline / step:.2f}x"]
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
