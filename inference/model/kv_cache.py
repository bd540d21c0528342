"""A static key/value cache: allocated once at full length, written by position.

Dynamic mode (CPU): attention reads only the filled span [0, end), which is the cheapest on a CPU.
Static mode (CUDA graphs): attention always reads the whole buffer through a causal mask row, so every decode
step has the same shapes and can be captured once and replayed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from codegen_lsp.inference.checkpoint.config import CodeGenConfig


class KVCache:
    def __init__(
        self,
        config: CodeGenConfig,
        max_len: int,
        dtype: torch.dtype,
        device: torch.device | str,
        batch: int = 1,
        static: bool = False,
    ) -> None:
        shape = (config.n_layer, batch, config.n_head, max_len, config.head_dim)  # (L, B, H, S, D)
        # Dynamic mode reads only what was written, so its pages are touched (and count as memory) only as the
        # context grows. Static mode reads every position through the mask: unwritten values must be finite.
        allocate = torch.zeros if static else torch.empty
        self.k = allocate(shape, dtype=dtype, device=device)
        self.v = allocate(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.static = static
        self._end = 0
        if static:
            self.causal = torch.ones(max_len, max_len, dtype=torch.bool, device=device).tril()  # (S, S)

    @property
    def nbytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()

    def attention_mask(self, input_pos: Tensor, T: int) -> tuple[Tensor | None, bool]:
        """The mask for queries at positions input_pos (T,) and whether SDPA's own causal mask fits instead."""
        if self.static:
            return self.causal[input_pos], False  # (T, S)
        end = int(input_pos[-1]) + 1
        if end > self.max_len:
            raise IndexError(f"position {end - 1} is past the cache's length {self.max_len}")
        self._end = end
        start = end - T
        if T == 1:
            return None, False  # one query sees the whole span
        if start == 0:
            return None, True
        keys = torch.arange(end, device=input_pos.device)
        return keys[None, :] <= input_pos[:, None], False  # (T, end)

    def update(self, layer: int, input_pos: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write k, v (B, H, T, D) at input_pos; return the keys and values attention reads."""
        k_cache, v_cache = self.k[layer], self.v[layer]  # (B, H, S, D)
        k_cache.index_copy_(2, input_pos, k)
        v_cache.index_copy_(2, input_pos, v)
        if self.static:
            return k_cache, v_cache
        return k_cache[:, :, : self._end], v_cache[:, :, : self._end]  # (B, H, end, D)
