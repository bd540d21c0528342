"""Our CodeGen in plain PyTorch (`codegen`), its kernels, int8 quantization, KV cache, generation loop, CUDA
graphs and device choice. Needs torch: imported by the worker process and the CLI only."""
