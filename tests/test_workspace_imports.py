"""lsp_server/workspace/imports.py and declarations.py: each language's imports resolve to the workspace's
files, and an imported file is shown by its declarations, the imported names first."""

from __future__ import annotations

from pathlib import Path

from codegen_lsp.lsp_server.workspace.declarations import ordered_for, outline
from codegen_lsp.lsp_server.workspace.imports import resolve_imports
from codegen_lsp.lsp_server.workspace.index import build_index


def workspace(tmp_path: Path, files: dict[str, str]):
    root = tmp_path / "ws"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root, build_index([root])


def imported(root: Path, index, name: str, language: str) -> list[tuple[str, tuple[str, ...]]]:
    path = (root / name).resolve()
    text = path.read_text()
    return [
        (i.path.relative_to(root.resolve()).as_posix(), i.names) for i in resolve_imports(text, path, language, index)
    ]


def test_python_absolute_relative_package_and_submodule_imports(tmp_path: Path) -> None:
    root, index = workspace(
        tmp_path,
        {
            "src/app/__init__.py": "",
            "src/app/models.py": "class User:\n    pass\n",
            "src/app/db/__init__.py": "from .engine import connect\n",
            "src/app/db/engine.py": "def connect():\n    pass\n",
            "src/app/util.py": "def slug(s):\n    return s\n",
            "src/app/views.py": (
                "import os\nimport app.util\nfrom app.models import User, Group\nfrom .db import engine\n"
                "from . import util\nfrom ..app import models\nfrom app.db import connect\nimport requests\n"
            ),
        },
    )
    assert imported(root, index, "src/app/views.py", "python") == [
        ("src/app/util.py", ()),
        ("src/app/models.py", ("User", "Group")),
        ("src/app/db/engine.py", ()),
        ("src/app/db/__init__.py", ("connect",)),
    ]  # os and requests are not in the workspace; each file once, in the order first imported


def test_c_and_cpp_quoted_includes_only(tmp_path: Path) -> None:
    root, index = workspace(
        tmp_path,
        {
            "include/geo/point.h": "struct point { int x, y; };\n",
            "src/vec.h": "int dot(int a, int b);\n",
            "src/main.c": '#include <stdio.h>\n#include "vec.h"\n#include "geo/point.h"\n#include "missing.h"\n',
            "src/app.cpp": '#include "vec.h"\n',
        },
    )
    assert imported(root, index, "src/main.c", "c") == [("src/vec.h", ()), ("include/geo/point.h", ())]
    assert imported(root, index, "src/app.cpp", "cpp") == [("src/vec.h", ())]


def test_go_same_package_files_then_imported_packages(tmp_path: Path) -> None:
    root, index = workspace(
        tmp_path,
        {
            "shop/cart.go": "package shop\n",
            "shop/price.go": "package shop\n",
            "shop/price_test.go": "package shop\n",
            "shop/tax/tax.go": "package tax\n",
            "shop/main.go": 'package shop\n\nimport (\n\t"fmt"\n\t"example.com/shop/tax"\n)\n',
        },
    )
    assert imported(root, index, "shop/main.go", "go") == [
        ("shop/cart.go", ()),
        ("shop/price.go", ()),
        ("shop/tax/tax.go", ()),
    ]  # tests of the package only for a test


def test_java_class_wildcard_and_static_imports_then_the_same_package(tmp_path: Path) -> None:
    root, index = workspace(
        tmp_path,
        {
            "src/com/shop/model/Item.java": "package com.shop.model;\npublic class Item {}\n",
            "src/com/shop/util/Money.java": "package com.shop.util;\npublic class Money {}\n",
            "src/com/shop/util/Tax.java": "package com.shop.util;\npublic class Tax {}\n",
            "src/com/shop/Helper.java": "package com.shop;\nclass Helper {}\n",
            "src/com/shop/Cart.java": (
                "package com.shop;\nimport java.util.List;\nimport com.shop.model.Item;\n"
                "import static com.shop.util.Money.ZERO;\nimport com.shop.util.*;\n"
            ),
        },
    )
    assert imported(root, index, "src/com/shop/Cart.java", "java") == [
        ("src/com/shop/model/Item.java", ()),
        ("src/com/shop/util/Money.java", ("ZERO",)),
        ("src/com/shop/util/Tax.java", ()),
        ("src/com/shop/Helper.java", ()),
    ]


def test_javascript_relative_imports_and_requires_with_extensions_and_index_files(tmp_path: Path) -> None:
    root, index = workspace(
        tmp_path,
        {
            "web/lib/format.js": "export function money(x) {}\n",
            "web/lib/dates/index.js": "export function today() {}\n",
            "web/util.mjs": "export const A = 1;\n",
            "web/app.js": (
                "import React from 'react';\nimport { money } from './lib/format';\n"
                "const dates = require('./lib/dates');\nconst u = await import('./util.mjs');\n"
            ),
        },
    )
    assert imported(root, index, "web/app.js", "javascript") == [
        ("web/lib/format.js", ()),
        ("web/lib/dates/index.js", ()),
        ("web/util.mjs", ()),
    ]


def test_outlines_keep_signatures_and_drop_bodies_in_each_language() -> None:
    python = outline(
        'X_LIMIT = 3\n\n\ndef area(w: int,\n         h: int) -> int:\n    """Area."""\n    return w * h\n\n\n'
        "class Shape:\n    sides: int = 0\n\n    def grow(self, by):\n        return by\n",
        "python",
    )
    assert [(b.name, b.text) for b in python] == [
        ("X_LIMIT", "X_LIMIT = 3"),
        ("area", "def area(w: int,\n         h: int) -> int:"),
        ("Shape", "class Shape:\n    sides: int = 0\n    def grow(self, by):"),
    ]
    broken = outline("def ok(a):\n    return a\n\ndef half(b:\n", "python")  # being typed: by lines
    assert [b.name for b in broken] == ["ok", "half"]
    c = outline(
        "#define MAX 4\nstruct pt { int x; };\nint add(int a, int b) {\n  if (a) {\n    return b;\n  }\n}\n", "c"
    )
    assert [(b.name, b.text) for b in c] == [("MAX", "#define MAX 4"), ("pt", "struct pt { int x; };"),
                                            ("add", "int add(int a, int b) {")]  # fmt: skip
    go = outline("type P struct {\n\tX int\n}\nfunc (p P) Norm() int {\n\treturn p.X\n}\n", "go")
    assert [(b.name, b.text) for b in go] == [("P", "type P struct {\n\tX int"), ("Norm", "func (p P) Norm() int {")]
    java = outline(
        "public class A {\n    private int n;\n    public int get() {\n        return n;\n    }\n}\n", "java"
    )
    assert [(b.name, b.text) for b in java] == [("A", "public class A {\n    private int n;\n    public int get() {")]
    js = outline("export function f(a) {\n  if (a) {}\n}\nclass K {\n  m(x) {\n  }\n}\n", "javascript")
    assert [(b.name, b.text) for b in js] == [("f", "export function f(a) {"), ("K", "class K {\n  m(x) {")]
    assert [b.name for b in ordered_for(python, ["Shape", "nothing"])] == ["Shape", "X_LIMIT", "area"]
