"""CodeGen's tokenizer on the `tokenizers` library: GPT-2 byte-level BPE plus CodeGen's whitespace tokens."""

from codegen_lsp.tokenizer.codegen_tokenizer import BUNDLED_TOKENIZER_DIR, CodeGenTokenizer, TokenizerLoadError
from codegen_lsp.tokenizer.streaming import StreamingDecoder
from codegen_lsp.tokenizer.truncation import DEFAULT_TRUNCATE_BEFORE_PATTERN, compile_patterns, truncate_before_pattern

__all__ = [
    "BUNDLED_TOKENIZER_DIR",
    "DEFAULT_TRUNCATE_BEFORE_PATTERN",
    "CodeGenTokenizer",
    "StreamingDecoder",
    "TokenizerLoadError",
    "compile_patterns",
    "truncate_before_pattern",
]
