"""`python -m codegen_lsp.lsp_server`: the same as `codegen-lsp`."""

import sys

from codegen_lsp.lsp_server.cli import main

sys.exit(main())
