"""The model side of codegen-lsp: our CodeGen, its weights, KV cache, engine and worker process.

torch warns on import when numpy is absent ("Failed to initialize NumPy"); nothing here goes through numpy,
and numpy is not a dependency, so that warning would only be noise on a fresh install's stderr.

Large tensors (weights, KV caches) live on transparent huge pages. A decode step reads every weight once: with
4 KB pages that is a TLB miss every 4 KB. Two switches ask for them, both set here, when this package is
imported, before any of its modules imports torch (the worker, the CLI and the benchmarks import it first):
- THP_MEM_ALLOC_ENABLE: torch's CPU allocator madvises its allocations of 2 MB and more (read at its first
  allocation, so it works in this very process). Measured on the CodeGen-350M shape (bf16, 2 threads, four
  alternating runs of each): a decode step 29.4 -> 25.6 ms (median).
- glibc.malloc.hugetlb=1 (GLIBC_TUNABLES): glibc's malloc does the same for what it hands out, which covers
  fbgemm's packed int8 weights (not torch allocations). glibc reads it at start-up, so it takes effect in the
  processes started from here on: the worker, and each engine of a benchmark. int8 step 16.3 -> 15.2 ms.
A person's own value of either is kept (THP_MEM_ALLOC_ENABLE=0 or glibc.malloc.hugetlb=0 opts out); where the
kernel has THP off ("never"), or the C library is not glibc, they change nothing.
"""

import os
import warnings

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
if "glibc.malloc.hugetlb" not in os.environ.get("GLIBC_TUNABLES", ""):
    tunables = os.environ.get("GLIBC_TUNABLES")
    os.environ["GLIBC_TUNABLES"] = f"{tunables}:glibc.malloc.hugetlb=1" if tunables else "glibc.malloc.hugetlb=1"
warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
