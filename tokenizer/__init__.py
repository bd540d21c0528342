"""CodeGen's tokenizer on the `tokenizers` library: GPT-2 byte-level BPE plus CodeGen's whitespace tokens."""

from pathlib import Path

BUNDLED_TOKENIZER_DIR = Path(__file__).resolve().parent / "data"
