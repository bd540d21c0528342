"""Tiny random CodeGen checkpoints written in the Hugging Face Hub's file layout.

transformers (the test-only oracle) builds the model, so the files are exactly what `save_pretrained` and the
Hub hold: `config.json`, weights as `model.safetensors`, sharded safetensors with `model.safetensors.index.json`,
or `pytorch_model.bin`, plus the bundled CodeGen tokenizer files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from codegen_lsp.tokenizer import BUNDLED_TOKENIZER_DIR

TINY_CONFIG: dict = {
    "model_type": "codegen",
    "architectures": ["CodeGenForCausalLM"],
    "vocab_size": 51200,
    "n_positions": 256,
    "n_ctx": 256,
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 8,
    "rotary_dim": 4,
    "n_inner": None,
    "activation_function": "gelu_new",
    "layer_norm_epsilon": 1e-5,
    "resid_pdrop": 0.0,
    "embd_pdrop": 0.0,
    "attn_pdrop": 0.0,
    "initializer_range": 0.02,
    "bos_token_id": 50256,
    "eos_token_id": 50256,
    "tie_word_embeddings": False,
}

FORMATS = ("safetensors", "sharded", "bin")


def tiny_hf_model(seed: int = 0, **overrides):
    """A transformers CodeGenForCausalLM with random weights (std large enough that logits are not flat)."""
    from transformers import CodeGenConfig, CodeGenForCausalLM

    torch.manual_seed(seed)
    config = CodeGenConfig(**{**TINY_CONFIG, **overrides})
    model = CodeGenForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_f.weight"):
                param.copy_(1.0 + 0.1 * torch.randn_like(param))
            else:
                param.copy_(0.2 * torch.randn_like(param))
    return model


def hf_state_dict(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def write_checkpoint(folder: Path, model, fmt: str = "safetensors", with_tokenizer: bool = True) -> Path:
    """Write `model` (a transformers CodeGenForCausalLM) into `folder` in the Hub layout `fmt`."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in model.config.to_dict().items()}
    config.update({"model_type": "codegen", "architectures": ["CodeGenForCausalLM"]})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = hf_state_dict(model)
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    if fmt == "safetensors":
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    elif fmt == "sharded":
        keys = list(state)
        halves = {
            "model-00001-of-00002.safetensors": keys[: len(keys) // 2],
            "model-00002-of-00002.safetensors": keys[len(keys) // 2 :],
        }
        weight_map = {}
        for file, names in halves.items():
            save_file({k: state[k] for k in names}, str(folder / file), metadata={"format": "pt"})
            weight_map.update({k: file for k in names})
        total = sum(t.numel() * t.element_size() for t in state.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    elif fmt == "bin":
        # Old checkpoints also carry the attention-mask buffers; loaders must ignore them.
        n_positions = model.config.n_positions
        mask = torch.tril(torch.ones(n_positions, n_positions, dtype=torch.bool)).view(1, 1, n_positions, n_positions)
        for i in range(model.config.n_layer):
            state[f"transformer.h.{i}.attn.causal_mask"] = mask
            state[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e9)
        torch.save(state, folder / "pytorch_model.bin")
    else:
        raise ValueError(f"unknown format {fmt!r}")
    if with_tokenizer:
        for file in BUNDLED_TOKENIZER_DIR.iterdir():
            shutil.copy(file, folder / file.name)
    return folder
