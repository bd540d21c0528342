"""Capturing the decode step in a CUDA graph: one launch per token instead of hundreds of kernel launches.

Works because the cache is static (KVCache(static=True)): every step has the same shapes and reads the whole
cache through a causal mask row looked up by position.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from codegen_lsp.inference.model.codegen import CodeGen
from codegen_lsp.inference.model.kv_cache import KVCache


@torch.inference_mode()
def cuda_graph_decode_step(model: CodeGen, cache: KVCache) -> Callable[[Tensor, Tensor], Tensor]:
    """Capture one decode step for this cache. Call it before the cache holds anything: warm-up writes
    position 0."""
    if not cache.static:
        raise ValueError("CUDA graphs need a static cache (KVCache(static=True))")
    device = model.device
    static_token = torch.zeros((1, 1), dtype=torch.long, device=device)
    static_pos = torch.zeros((1,), dtype=torch.long, device=device)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):  # let cuBLAS / SDPA pick and allocate their kernels before capture
            model(static_token, static_pos, cache)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_logits = model(static_token, static_pos, cache)  # (1, 1, V)

    def step(token: Tensor, input_pos: Tensor) -> Tensor:
        static_token.copy_(token)
        static_pos.copy_(input_pos)
        graph.replay()
        return static_logits[0, -1].float()

    return step
