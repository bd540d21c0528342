"""Rewrite the settings table in README.md from lsp_server/settings/schema.py (the one place settings are declared).

python scripts/sync_readme.py          # rewrite README.md
python scripts/sync_readme.py --check  # exit 1 when README.md is out of date
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from codegen_lsp.lsp_server.settings import SETTINGS_TABLE_MARKDOWN

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- settings-table:[^\n]*-->\n).*?(<!-- /settings-table -->)", re.DOTALL)


def synced(text: str) -> str:
    if not BLOCK.search(text):
        raise SystemExit("README.md has no <!-- settings-table --> block")
    return BLOCK.sub(lambda m: m.group(1) + SETTINGS_TABLE_MARKDOWN + m.group(2), text)


def main() -> None:
    text = README.read_text(encoding="utf-8")
    new = synced(text)
    if "--check" in sys.argv:
        sys.exit(0 if new == text else 1)
    README.write_text(new, encoding="utf-8")


if __name__ == "__main__":
    main()
