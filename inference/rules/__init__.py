"""Source-code rules both processes apply, torch-free by construction (tests/test_boundaries.py): the lexer for
the six languages (`syntax`), where a completion stops (`stop_rule`) and which tokens of a document the model
sees (`window`). The server imports them to post-process; the worker imports them to stop decoding early."""
