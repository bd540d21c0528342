"""Where the model runs and in which precision."""

from __future__ import annotations

import torch

from codegen_lsp.inference.errors import ModelLoadError
from codegen_lsp.inference.protocol import FLOAT_DTYPES, QUANTIZED_DTYPES, ErrorKind

DTYPES = {name: getattr(torch, name) for name in FLOAT_DTYPES}
QUANTIZED = QUANTIZED_DTYPES
DEVICES = ("auto", "cpu", "cuda")


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX), where bf16 halves the bytes each
    decode step reads and is measured faster than fp32 (README, "CPU dtype"). Older CPUs emulate bf16 slowly."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags from /proc/cpuinfo (("unknown CPU", set()) off Linux)."""
    name, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name == "unknown CPU":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return name, flags


# The features that decide which kernel is fastest, as /proc/cpuinfo names them.
KERNEL_FLAGS = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2")


def cpu_description() -> str:
    """One line naming the CPU and the features our kernels care about, e.g. "AMD EPYC (avx512_bf16,
    avx512_vnni, avx512f, avx2; no AMX)": what every benchmark table records and `doctor` shows."""
    name, flags = cpu_info()
    present = [flag for flag in KERNEL_FLAGS if flag in flags]
    amx = "" if "amx_bf16" in flags or "amx_int8" in flags else "; no AMX"
    return f"{name} ({', '.join(present) or 'none of ' + ', '.join(KERNEL_FLAGS)}{amx})"


def cpu_has_vnni() -> bool:
    """True when the CPU multiplies int8 with VNNI (AVX512-VNNI or AVX-VNNI), read from /proc/cpuinfo's flags (so
    False off Linux): where fbgemm's int8 products add u8 x s8 pairs without saturating 16 bits."""
    return has_vnni(cpu_info()[1])


def has_vnni(flags: set[str]) -> bool:
    """Whether /proc/cpuinfo `flags` name an int8 VNNI (AVX512-VNNI or AVX-VNNI)."""
    return "avx512_vnni" in flags or "avx_vnni" in flags


def dtype_advice(flags: set[str]) -> str | None:
    """What the measurements say about `dtype: auto` (bfloat16 on these CPUs) against int8 on a CPU with these
    /proc/cpuinfo flags, or None where nothing was measured. `auto` stays a float type on every CPU: it is what
    transformers computes, id for id; int8 is the user's choice (README, "What `dtype: auto` is"). One line of an
    editor's window (under 80 characters): Emacs and Neovim show the doctor's lines."""
    if "amx_bf16" in flags:  # measured on a Xeon Sapphire Rapids
        return "keep auto (bf16 on AMX): int8 decodes ~1.4x faster but prefills ~1.9x slower"
    if "avx512_bf16" in flags and has_vnni(flags):  # measured on an AMD EPYC Zen 4
        return "int8 decodes ~2x faster than bf16 here, prefills about as fast: set dtype int8"
    return None


def resolve_device(device: str) -> torch.device:
    """ "auto": CUDA when a GPU is present, else the CPU."""
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ModelLoadError(f"device must be one of {', '.join(DEVICES)}, got {device!r}", ErrorKind.BAD_CONFIG)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(
            f"device {device!r} was asked for, but this torch ({torch.__version__}) sees no CUDA GPU; "
            "use device 'auto' or 'cpu'",
            ErrorKind.BAD_CONFIG,
        )
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The type of activations and the KV cache (and of the weights unless quantized). "auto": float16 on CUDA;
    on the CPU bfloat16 where the CPU has native bf16, else float32. "int8" (weights, CPU only) and "int4"
    (weights): the CPU's auto type; int4 on CUDA: bfloat16 (what _weight_int4pack_mm takes)."""
    if dtype == "int4" and device.type == "cuda":
        return torch.bfloat16
    if dtype in QUANTIZED:
        if device.type != "cpu":
            raise ModelLoadError(
                f"dtype {dtype!r} runs on the CPU only (its int8 kernels are CPU kernels); "
                "on CUDA use float16 or bfloat16, or set device to 'cpu'",
                ErrorKind.BAD_CONFIG,
            )
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    if dtype == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    if dtype not in DTYPES:
        raise ModelLoadError(
            f"dtype must be auto, one of {', '.join(DTYPES)} or {', '.join(QUANTIZED)}, got {dtype!r}",
            ErrorKind.BAD_CONFIG,
        )
    return DTYPES[dtype]


def resolve_quantization(dtype: str) -> str | None:
    """The weight format a dtype setting asks for ("int8", "int4"), or None for float weights."""
    return dtype if dtype in QUANTIZED else None


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory where tensors of `device` live: the GPU's free memory, or the system's MemAvailable."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, value in DTYPES.items() if value == dtype)
