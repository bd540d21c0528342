"""Exporting a CodeGen model as a GPT-J checkpoint that vLLM and transformers load as they are (`GPTJForCausalLM`).

CodeGen is GPT-J with q, k and v fused into one `qkv_proj` laid out in 4 groups (mp_num = 4) of [q | v | k]
(layout.py). Everything else already has GPT-J's names, shapes and meaning: the same interleaved ("rotate every
two") rotary on the first `rotary_dim` dims of each head with the same table, the same parallel block
`x + attn(ln_1(x)) + mlp(ln_1(x))`, `out_proj` without bias, `fc_in`/`fc_out` and `lm_head` with biases. So the
export splits rows and renames keys, and is exact. A tied head is written out untied (a copy of the embedding):
vLLM's GPT-J refuses `tie_word_embeddings`, and the copy computes the same logits.

Tensors stream from the checkpoint into model.safetensors one at a time, so a 16B model never sits in memory.
The export is built in a hidden folder beside OUTDIR and renamed into place only when complete; one left behind by
a killed export is removed by the next export into the same OUTDIR.
"""

from __future__ import annotations

import glob
import json
import math
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from codegen_lsp.inference.checkpoint.config import MP_NUM, CodeGenConfig
from codegen_lsp.inference.checkpoint.hub import CONFIG_AND_TOKENIZER, Progress, resolve_model_folder
from codegen_lsp.inference.checkpoint.layout import check_keys, expected_shapes
from codegen_lsp.inference.checkpoint.loading import load_tokenizer
from codegen_lsp.inference.checkpoint.weights import SAFETENSORS, SAFETENSORS_DTYPES, open_weights
from codegen_lsp.inference.errors import ModelLoadError
from codegen_lsp.inference.model.device import DTYPES

CONFIG_FILE = "config.json"
TOKENIZER_FILES = [name for name in CONFIG_AND_TOKENIZER if name != CONFIG_FILE]

# CodeGen activation -> the name of the same function that both transformers' ACT2FN and vLLM's get_act_fn know
# (vLLM has no "swish"; transformers' "swish" is nn.SiLU, as is "silu").
GPTJ_ACTIVATIONS = {
    "gelu_new": "gelu_new",
    "gelu_pytorch_tanh": "gelu_pytorch_tanh",
    "gelu_fast": "gelu_fast",
    "gelu": "gelu",
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
    "quick_gelu": "quick_gelu",
}


class ExportError(ValueError):
    """The model cannot be exported as asked; one line that says why."""


def gptj_activation(name: str) -> str:
    if name not in GPTJ_ACTIVATIONS:
        raise ExportError(
            f"activation_function {name!r} has no GPT-J equivalent that vLLM runs "
            f"(GPT-J export supports: {', '.join(GPTJ_ACTIVATIONS)})"
        )
    return GPTJ_ACTIVATIONS[name]


def check_expressible(config: CodeGenConfig) -> None:
    """Refuse what GPT-J cannot express. CodeGenConfig.validate() has already refused the rest: n_head not a
    multiple of mp_num (not CodeGen), a null rotary_dim (GPT-J, like CodeGen, would build a rotary table as wide
    as n_embd, which fits one head only), an odd or too wide rotary_dim (vLLM asserts it even). A tied head is
    not refused: it is written out as a copy."""
    gptj_activation(config.activation_function)


def gptj_config(config: CodeGenConfig, dtype: torch.dtype) -> dict:
    """GPT-J's config.json for `config`: every field that changes the forward pass, mapped one to one."""
    name = dtype_name(dtype)
    return {
        "architectures": ["GPTJForCausalLM"],
        "model_type": "gptj",
        "vocab_size": config.vocab_size,
        "n_positions": config.n_positions,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "rotary_dim": config.rotary_dim,
        "n_inner": config.n_inner,  # null means 4 * n_embd in GPT-J as in CodeGen
        "activation_function": gptj_activation(config.activation_function),
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "resid_pdrop": config.resid_pdrop,
        "embd_pdrop": config.embd_pdrop,
        "attn_pdrop": config.attn_pdrop,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "tie_word_embeddings": False,  # vLLM's GPT-J asserts it; a tied head is written out as a copy
        "dtype": name,  # transformers >= 4.56
        "torch_dtype": name,  # older readers
    }


def dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, value in DTYPES.items() if value == dtype)


def gptj_shapes(config: CodeGenConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of the GPT-J checkpoint with its shape, in the order gptj_tensors yields them."""
    E, I, V = config.n_embd, config.inner_dim, config.vocab_size  # noqa: E741
    shapes: dict[str, tuple[int, ...]] = {"transformer.wte.weight": (V, E)}
    for i in range(config.n_layer):
        p = f"transformer.h.{i}."
        shapes.update(
            {
                p + "ln_1.weight": (E,),
                p + "ln_1.bias": (E,),
                p + "attn.q_proj.weight": (E, E),
                p + "attn.k_proj.weight": (E, E),
                p + "attn.v_proj.weight": (E, E),
                p + "attn.out_proj.weight": (E, E),
                p + "mlp.fc_in.weight": (I, E),
                p + "mlp.fc_in.bias": (I,),
                p + "mlp.fc_out.weight": (E, I),
                p + "mlp.fc_out.bias": (E,),
            }
        )
    shapes.update(
        {
            "transformer.ln_f.weight": (E,),
            "transformer.ln_f.bias": (E,),
            "lm_head.weight": (V, E),
            "lm_head.bias": (V,),
        }
    )
    return shapes


def split_qkv(qkv: Tensor, config: CodeGenConfig) -> tuple[Tensor, Tensor, Tensor]:
    """CodeGen's qkv_proj weight (3E, E) -> GPT-J's q_proj, k_proj, v_proj weights, (E, E) each.

    Row block g of E/4 x 3 holds [q | v | k] of heads g*H/4 .. (g+1)*H/4 - 1, so taking part j of every group,
    group after group, gives that part's rows with heads in order (head h, dim d at row h*D + d), as GPT-J has
    them. The dims inside a head are not touched: both rotate interleaved pairs."""
    E = config.n_embd
    groups = qkv.view(MP_NUM, 3, E // MP_NUM, E)  # (groups, [q | v | k], heads per group * D, E)
    q, v, k = (groups[:, part].reshape(E, E) for part in range(3))  # (E, E) each
    return q, k, v


def gptj_tensors(
    get: Callable[[str], Tensor], config: CodeGenConfig, on_layer: Callable[[int], None] | None = None
) -> Iterator[tuple[str, Tensor]]:
    """The GPT-J checkpoint's tensors, in gptj_shapes' order, each made from the CodeGen tensors `get(key)`
    returns (read one at a time: at most one qkv_proj is in memory)."""
    shapes = expected_shapes(config)

    def checked(key: str) -> Tensor:
        tensor = get(key)
        if tuple(tensor.shape) != shapes[key]:
            raise ModelLoadError(f"{key}: expected shape {shapes[key]}, the checkpoint has {tuple(tensor.shape)}")
        if not tensor.is_floating_point():
            raise ModelLoadError(f"{key}: expected floating-point weights, the checkpoint has {tensor.dtype}")
        return tensor

    yield "transformer.wte.weight", checked("transformer.wte.weight")
    for i in range(config.n_layer):
        p = f"transformer.h.{i}."
        yield p + "ln_1.weight", checked(p + "ln_1.weight")
        yield p + "ln_1.bias", checked(p + "ln_1.bias")
        q, k, v = split_qkv(checked(p + "attn.qkv_proj.weight"), config)
        yield p + "attn.q_proj.weight", q
        yield p + "attn.k_proj.weight", k
        yield p + "attn.v_proj.weight", v
        del q, k, v
        for name in (
            "attn.out_proj.weight",
            "mlp.fc_in.weight",
            "mlp.fc_in.bias",
            "mlp.fc_out.weight",
            "mlp.fc_out.bias",
        ):
            yield p + name, checked(p + name)
        if on_layer is not None:
            on_layer(i)
    yield "transformer.ln_f.weight", checked("transformer.ln_f.weight")
    yield "transformer.ln_f.bias", checked("transformer.ln_f.bias")
    head = "transformer.wte.weight" if config.tie_word_embeddings else "lm_head.weight"
    yield "lm_head.weight", checked(head)
    yield "lm_head.bias", checked("lm_head.bias")


SAFETENSORS_CODES = {dtype: code for code, dtype in SAFETENSORS_DTYPES.items()}


def write_safetensors(
    path: Path, shapes: dict[str, tuple[int, ...]], dtype: torch.dtype, tensors: Iterable[tuple[str, Tensor]]
) -> int:
    """Write a safetensors file tensor by tensor: the header comes from `shapes`, then each tensor of `tensors`
    (which must follow `shapes`' order) is cast to `dtype` and appended. Returns the file's size in bytes."""
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for key, shape in shapes.items():
        size = math.prod(shape) * dtype.itemsize
        header[key] = {"dtype": SAFETENSORS_CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the tensors start 8-byte aligned, as safetensors itself writes them
    expected = iter(shapes.items())
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for key, tensor in tensors:
            want_key, want_shape = next(expected, (None, None))
            if key != want_key or tuple(tensor.shape) != want_shape:
                raise AssertionError(
                    f"tensor {key} {tuple(tensor.shape)} written where {want_key} {want_shape} belongs"
                )
            f.write(tensor.to(dtype).contiguous().reshape(-1).view(torch.uint8).numpy())
        if next(expected, None) is not None:
            raise AssertionError(f"{path}: fewer tensors written than its header lists")
    return 8 + len(raw) + offset


def refuse_a_used_outdir(outdir: Path) -> None:
    """Refuse, before anything is read or written, an OUTDIR the final rename could not replace: one that holds
    anything, a symbolic link (dangling or not: its target's parents would be created, then the rename fails
    after the whole write) or a name like `.` that is not a new folder's."""
    if outdir.name in ("", ".", ".."):
        raise ExportError(f"OUTDIR {str(outdir)!r} names no new folder; give the export a folder name of its own")
    if outdir.is_symlink():
        raise ExportError(f"{outdir} is a symbolic link; choose a new OUTDIR (links are not followed)")
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
        raise ExportError(
            f"{outdir} already exists and is not an empty folder; choose a new OUTDIR (nothing is overwritten)"
        )


def remove_stale_partials(parent: Path, name: str) -> None:
    """Remove the hidden folders that exports into `name` left when they were killed (`kill -9`, power loss):
    each carries its process id, and one whose process is gone is stale. A live one is another export's."""
    for partial in parent.glob(f".{glob.escape(name)}.partial-*"):
        pid = partial.name.removeprefix(f".{name}.partial-").split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)) and partial.is_dir() and not partial.is_symlink():
            shutil.rmtree(partial, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def prepare_outdir(outdir: Path, needed_bytes: int) -> Path:
    """A hidden temporary folder beside `outdir`, after refusing an `outdir` that holds anything or a disk
    without room for the weights."""
    refuse_a_used_outdir(outdir)
    parent = outdir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(parent, outdir.name)
    free = shutil.disk_usage(parent).free
    if free < needed_bytes:
        raise ExportError(
            f"not enough disk space in {parent}: the weights need {needed_bytes / 1e9:.2f} GB, "
            f"{free / 1e9:.2f} GB are free"
        )
    staging = parent / f".{outdir.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()  # with the umask's permissions (mkdtemp's 0700 would hide the export from a team)
    return staging


def export_gptj(
    model: str, outdir: str | Path, revision: str | None = None, dtype: str = "auto", report: Progress | None = None
) -> Path:
    """Export `model` (a Hub id, a local folder or `bundled`) as a GPT-J checkpoint in `outdir`: config.json,
    model.safetensors and the model's tokenizer files. `dtype`: "auto" keeps the dtype the checkpoint stores its
    weights in; float32, float16 or bfloat16 cast every tensor. Raises ExportError or ModelLoadError."""
    if dtype != "auto" and dtype not in DTYPES:
        raise ExportError(f"dtype must be auto or one of {', '.join(DTYPES)}, got {dtype!r}")
    outdir = Path(outdir).expanduser()
    refuse_a_used_outdir(outdir)  # before a download, too
    folder = resolve_model_folder(model, revision, report)
    config = CodeGenConfig.from_file(folder / CONFIG_FILE)
    check_expressible(config)
    load_tokenizer(folder, config)  # refuse a missing or corrupt tokenizer before writing anything
    source = open_weights(folder)
    check_keys(source.keys(), config, source.description)
    # "auto": the norms' dtype: the weights' dtype, or in a mixed checkpoint usually the wider one (lossless).
    target_dtype = source.get("transformer.ln_f.weight").dtype if dtype == "auto" else DTYPES[dtype]
    if target_dtype not in DTYPES.values():
        raise ExportError(
            f"{source.description} stores {target_dtype} weights; pass --dtype float32, float16 or bfloat16"
        )
    shapes = gptj_shapes(config)
    needed = sum(math.prod(shape) for shape in shapes.values()) * target_dtype.itemsize

    def on_layer(i: int) -> None:
        if report:
            report(f"writing layer {i + 1} of {config.n_layer}", (i + 1) / config.n_layer)

    staging = prepare_outdir(outdir, needed)
    try:
        write_safetensors(staging / SAFETENSORS, shapes, target_dtype, gptj_tensors(source.get, config, on_layer))
        config_text = json.dumps(gptj_config(config, target_dtype), indent=2) + "\n"
        (staging / CONFIG_FILE).write_text(config_text, encoding="utf-8")
        for name in TOKENIZER_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, staging / name)
        os.replace(staging, outdir)  # an empty outdir is replaced; a non-empty one was refused above
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return outdir
