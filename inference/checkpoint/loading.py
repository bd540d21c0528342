"""Loading a CodeGen model and its tokenizer from a folder or the Hub, onto a device, in a dtype."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from codegen_lsp.inference.checkpoint.config import CodeGenConfig
from codegen_lsp.inference.checkpoint.hub import BUNDLED, DEFAULT_MODEL, Progress, looks_like_path, resolve_model_folder
from codegen_lsp.inference.checkpoint.layout import FusedWeight, check_keys, converted_tensors
from codegen_lsp.inference.checkpoint.weights import open_weights
from codegen_lsp.inference.errors import ModelLoadError
from codegen_lsp.inference.model.codegen import CodeGen, rotary_tables
from codegen_lsp.inference.model.device import dtype_name, resolve_device, resolve_dtype, resolve_quantization
from codegen_lsp.inference.model.int4 import int4_kernel_problem
from codegen_lsp.inference.model.kernels import onednn_packing_available, pack_for_onednn, release_freed_memory
from codegen_lsp.inference.model.quantize import WeightFormat, describe_kernels, quantized_projection
from codegen_lsp.inference.protocol import ErrorKind, ModelSpec
from codegen_lsp.tokenizer.codegen_tokenizer import CodeGenTokenizer, TokenizerLoadError

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: CodeGen
    tokenizer: CodeGenTokenizer
    config: CodeGenConfig
    device: torch.device
    dtype: torch.dtype  # activations and KV cache; the weights too unless quantized
    folder: Path
    load_ms: float
    warning: str | None = None  # said once to the person, e.g. that the bundled model stands in
    quantized: str | None = None  # "int8" or "int4": the projections' weights

    @property
    def kernels(self) -> str:
        """One line naming the kernels chosen at load for this model on this machine (for the log and `doctor`)."""
        return describe_kernels(self.model, self.dtype, self.device)

    @property
    def dtype_name(self) -> str:
        if self.quantized:
            return f"{self.quantized} ({dtype_name(self.dtype)} activations)"
        return dtype_name(self.dtype)


def load_weights(
    folder: Path,
    config: CodeGenConfig,
    device: torch.device,
    dtype: torch.dtype,
    report: Progress | None = None,
    quantized: str | WeightFormat | None = None,
) -> CodeGen:
    """Build the model on the meta device and give it the checkpoint's tensors as they are read, one at a time:
    one copy of the weights in memory. Quantized weights are quantized as each matrix arrives, so the float
    model never exists; on the CPU a fused matrix is quantized a block of rows at a time as its checkpoint
    tensors are read, so the fused float matrix never exists either: peak memory is the quantized model plus
    the float16 tensors of one of a layer's matrices."""
    with torch.device("meta"):
        model = CodeGen(config)

    def on_layer(i: int) -> None:
        if report:
            report(f"loading layer {i + 1} of {config.n_layer}", (i + 1) / config.n_layer)

    form = WeightFormat(quantized) if isinstance(quantized, str) else quantized
    source = open_weights(folder)
    check_keys(source.keys(), config, source.description)
    tensors = converted_tensors(lambda key: source.get(key).to(device), config, dtype, on_layer)
    targets = (
        set()
        if form is None
        else {name for name, m in model.named_modules() if m in model.projections(form.quantizes_head)}
    )

    def quantize(weight: Tensor | FusedWeight, bias: Tensor | None) -> nn.Module | None:
        if isinstance(weight, FusedWeight) and device.type != "cpu":
            weight = weight.whole()  # the CUDA kernels' layout is packed from the whole matrix
        return quantized_projection(weight, bias, form, dtype)

    assign_as_they_arrive(model, tensors, targets, quantize)
    floats = [p for p in model.projections() if isinstance(p, nn.Linear)]
    if device.type == "cpu" and dtype in (torch.bfloat16, torch.float32) and onednn_packing_available():
        pack_for_onednn(floats)
    cos, sin = rotary_tables(config.n_positions, config.rotary_dim)
    model.rotary_cos, model.rotary_sin = cos.to(device), sin.to(device)
    release_freed_memory()  # what conversion (fusing, casting) allocated and freed on the way
    return model.eval().requires_grad_(False)


def assign_as_they_arrive(
    model: nn.Module,
    tensors: Iterable[tuple[str, Tensor | FusedWeight]],
    targets: set[str],
    quantize: Callable[[Tensor | FusedWeight, Tensor | None], nn.Module | None],
) -> None:
    """Give each module of a meta-device `model` its tensors from the (key, tensor) stream: once a module has all
    of its parameters, a module named in `targets` is replaced by quantize(weight, bias) (unless that is None)
    and the float tensors dropped; any other module takes them as its parameters (a fused matrix built then).
    A tensor that arrives twice (a tied head is the embedding) stays one parameter."""
    modules = dict(model.named_modules())
    pending: dict[str, dict[str, Tensor | FusedWeight]] = {}
    parameters: dict[int, tuple[Tensor, nn.Parameter]] = {}  # id(tensor) -> (it, kept alive; its parameter)
    for key, tensor in tensors:
        owner, _, name = key.rpartition(".")
        module = modules[owner]
        arrived = pending.setdefault(owner, {})
        arrived[name] = tensor
        del tensor
        if set(arrived) != {n for n, p in module.named_parameters(recurse=False)}:
            continue
        del pending[owner]
        replacement = quantize(arrived["weight"], arrived.get("bias")) if owner in targets else None
        if replacement is not None:
            model.set_submodule(owner, replacement)
            del replacement
            release_freed_memory()
            continue
        for n, t in arrived.items():
            t = t.whole() if isinstance(t, FusedWeight) else t
            if id(t) not in parameters:
                parameters[id(t)] = (t, nn.Parameter(t, requires_grad=False))
            setattr(module, n, parameters[id(t)][1])
    missing = [n for n, p in model.named_parameters() if p.is_meta]
    if missing or pending:
        raise ModelLoadError(f"the checkpoint left parameters unset: {', '.join(missing or pending)}")


def load_tokenizer(folder: Path, config: CodeGenConfig) -> CodeGenTokenizer:
    try:
        tokenizer = CodeGenTokenizer.from_folder(folder)
    except TokenizerLoadError as exc:
        raise ModelLoadError(str(exc), ErrorKind.CORRUPT_FILE) from None
    if tokenizer.vocab_size > config.vocab_size:
        raise ModelLoadError(
            f"{folder}: the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
            f"{config.vocab_size}",
            ErrorKind.BAD_CONFIG,
        )
    return tokenizer


def load_folder(
    folder: str | Path,
    device: str = "auto",
    dtype: str = "auto",
    report: Progress | None = None,
    weight_format: WeightFormat | None = None,
) -> LoadedModel:
    """The model in `folder`; `weight_format` overrides the int8/int4 defaults of `dtype` (group size, head)."""
    start = time.perf_counter()
    folder = Path(folder)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    quantized = resolve_quantization(dtype)
    if quantized == "int4" and (problem := int4_kernel_problem(torch_device)):
        raise ModelLoadError(
            f"dtype 'int4' needs torch's int4 kernel on {torch_device.type}: {problem}; use dtype "
            f"{'int8 or ' if torch_device.type == 'cpu' else ''}{dtype_name(resolve_dtype('auto', torch_device))}",
            ErrorKind.BAD_CONFIG,
        )
    config = CodeGenConfig.from_file(folder / "config.json")
    tokenizer = load_tokenizer(folder, config)
    try:
        form = weight_format or (WeightFormat(quantized) if quantized else None)
        model = load_weights(folder, config, torch_device, torch_dtype, report, form)
    except torch.OutOfMemoryError as exc:
        raise ModelLoadError(
            f"out of memory loading {folder} on {torch_device} in {dtype_name(torch_dtype)}: "
            f"{str(exc).splitlines()[0]}",
            ErrorKind.OUT_OF_MEMORY,
        ) from None
    loaded = LoadedModel(
        model,
        tokenizer,
        config,
        torch_device,
        torch_dtype,
        folder,
        (time.perf_counter() - start) * 1000,
        quantized=quantized,
    )
    log.info("loaded %s: %s", folder.name, loaded.kernels)
    return loaded


def load(spec: ModelSpec, report: Progress | None = None, fallback_to_bundled: bool = True) -> LoadedModel:
    """Load `spec.model`. A Hub id that is neither cached nor downloadable falls back to the bundled model (when
    allowed), with a warning to show the person once."""

    def step(message: str, fraction: float | None = None) -> None:
        if report:
            report(message, fraction)

    step(f"resolving {spec.model}")
    warning = None
    try:
        folder = resolve_model_folder(spec.model, spec.revision, report)
    except ModelLoadError as exc:
        is_hub_id = spec.model != BUNDLED and not looks_like_path(spec.model)
        if not (fallback_to_bundled and is_hub_id and exc.kind == ErrorKind.OFFLINE):
            raise
        warning = (
            f"{exc.message}. Using the bundled offline model instead (a small model trained on Python's "
            f"standard library); completions will be weaker than {spec.model or DEFAULT_MODEL}'s."
        )
        folder = resolve_model_folder(BUNDLED)
    step(f"loading {folder.name}", 0.0)
    loaded = load_folder(folder, spec.device, spec.dtype, report)
    loaded.warning = warning
    step("model loaded", 1.0)
    return loaded
