"""The model side of codegen-lsp: our CodeGen, its weights, KV cache, engine and worker process.

torch warns on import when numpy is absent ("Failed to initialize NumPy"); nothing here goes through numpy,
and numpy is not a dependency, so that warning would only be noise on a fresh install's stderr.
"""

import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
