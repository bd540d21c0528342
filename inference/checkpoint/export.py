"""Writing our model as a Hugging Face checkpoint (config.json + model.safetensors), loadable by transformers."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from codegen_lsp.inference.checkpoint.layout import to_checkpoint
from codegen_lsp.inference.model.codegen import CodeGen


def save_checkpoint(model: CodeGen, folder: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Save `model` in transformers' CodeGenForCausalLM layout; `dtype` casts the stored tensors."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = to_checkpoint(model.state_dict(), model.config)
    if dtype is not None:
        state = {k: v.to(dtype).contiguous() for k, v in state.items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(model.config.to_dict(), indent=2) + "\n")
    return folder
