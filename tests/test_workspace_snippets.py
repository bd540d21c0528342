"""lsp_server/workspace/retrieval.py, snippets.py and service.py: which snippets a document gets, in what form,
within what budget, and how they stay put while the person types (the KV cache reuses the prompt's prefix)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codegen_lsp.inference.rules.generation import prompt_budget
from codegen_lsp.inference.rules.window import fit_window
from codegen_lsp.lsp_server.backends.openai import load_model_files
from codegen_lsp.lsp_server.languages import LANGUAGES, language_for_path
from codegen_lsp.lsp_server.pipeline import plan
from codegen_lsp.lsp_server.settings import Settings
from codegen_lsp.lsp_server.workspace.retrieval import WindowIndex, query_lines
from codegen_lsp.lsp_server.workspace.service import WorkspaceContext
from codegen_lsp.lsp_server.workspace.snippets import (
    SLACK_TOKENS,
    RefreshPolicy,
    Snippet,
    Source,
    render,
    render_block,
    snippet_budget,
)

TOKENIZER = load_model_files("bundled", None).tokenizer  # the bundled model's own (8,192 tokens)
BUNDLED_BUDGET = prompt_budget(1536, 64, 512)  # the bundled model: 512 positions, 64 new tokens


def count(text: str) -> int:
    return len(TOKENIZER.encode(text))


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def context(root: Path, policy: RefreshPolicy = RefreshPolicy.LINE, **kwargs) -> WorkspaceContext:
    ctx = WorkspaceContext(policy=policy, **kwargs)
    ctx.start([root], "bundled", None, wait=True)
    return ctx


def prompt_at(ctx: WorkspaceContext, path: Path, text: str, offset: int, snippet_tokens: int = 192) -> str:
    language = language_for_path(path)
    planned = plan(text, offset, Settings(), invoked=True, language=language)
    assert planned is not None
    with_snippets = ctx.plan_with_snippets(
        planned, path.as_uri(), text, offset, snippet_tokens=snippet_tokens, context_tokens=1536, max_new_tokens=64
    )
    return with_snippets.prompt


# -- form and budget -----------------------------------------------------------------------------------------


def test_a_snippet_is_a_comment_in_the_files_language_headed_by_its_path() -> None:
    snippet = Snippet("pkg/geo.py", "def area(w, h):\n\n    return w * h", Source.IMPORTS)
    assert render(snippet, "python") == "# Path: pkg/geo.py\n# def area(w, h):\n#\n#     return w * h\n"
    for language in ("c", "cpp", "go", "java", "javascript"):
        assert render(snippet, language).splitlines()[:2] == ["// Path: pkg/geo.py", "// def area(w, h):"]


def test_the_block_fits_its_budget_best_snippet_last_and_a_cut_one_keeps_whole_lines() -> None:
    snippets = [
        Snippet(f"m{i}.py", "\n".join(f"def function_{i}_{j}(argument): pass" for j in range(12)), Source.RETRIEVAL)
        for i in range(4)
    ]
    for budget in (0, 10, 40, 100, 192, 400):
        block = render_block(snippets, "python", count, budget)
        assert count(block) <= budget
        assert all(line.startswith("# ") for line in block.splitlines())
        if block:
            assert block.endswith("\n") and block.rstrip("\n").rsplit("# Path: ", 1)[1].startswith("m0.py")
    whole = count(render(snippets[0], "python"))
    assert render_block(snippets, "python", count, whole) == render(snippets[0], "python")
    cut = render_block(snippets, "python", count, whole + 45)  # the second one does not fit whole: cut
    assert cut.startswith("# Path: m1.py\n") and cut.endswith(render(snippets[0], "python"))
    assert snippet_budget(192, BUNDLED_BUDGET) == 192 and snippet_budget(1000, BUNDLED_BUDGET) == BUNDLED_BUDGET // 2


def test_the_prompt_holds_the_budget_and_the_files_own_text_keeps_its_share(tmp_path: Path) -> None:
    helpers = "\n\n".join(f"def helper_{i}(value):\n    return value + {i}" for i in range(200))
    main = "from helpers import helper_3\n\n" + "\n".join(f"total_{i} = helper_3({i})" for i in range(400)) + "\n"
    root = write(tmp_path / "ws", {"helpers.py": helpers, "main.py": main})
    ctx = context(root)
    path = (root / "main.py").resolve()
    for snippet_tokens in (32, 192, 1000):
        prompt = prompt_at(ctx, path, main, len(main), snippet_tokens)
        share = snippet_budget(snippet_tokens, BUNDLED_BUDGET)
        own = "total_" + prompt.split("\ntotal_", 1)[1]
        block = prompt[: len(prompt) - len(own)]
        assert count(prompt) <= BUNDLED_BUDGET
        assert count(block) <= share and "# def helper_3(value):" in block  # the imported name first
        room = BUNDLED_BUDGET - count(block) - SLACK_TOKENS  # the rest is the file's, cut as the window cuts
        window = main[plan(main, len(main), Settings(), invoked=True).ctx.prompt_start :]
        assert own == window[fit_window(window, TOKENIZER.encode_with_offsets, room)[1] :]
        assert count(own) > room // 3  # (fit_window cuts by whole chunks, so that the start stays put)
        assert main.endswith(own)


def test_off_and_not_ready_leave_the_plan_as_it_was(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {"a.py": "def alpha():\n    pass\n", "b.py": "from a import alpha\nal"})
    path = (root / "b.py").resolve()
    text = path.read_text()
    planned = plan(text, len(text), Settings(), invoked=True, language=LANGUAGES["python"])
    ready = context(root)
    off = ready.plan_with_snippets(
        planned, path.as_uri(), text, len(text), snippet_tokens=0, context_tokens=1536, max_new_tokens=64
    )
    assert off is planned and off.prompt == text
    waiting = WorkspaceContext()  # nothing indexed yet: no snippets rather than a wait
    assert (
        waiting.plan_with_snippets(
            planned, path.as_uri(), text, len(text), snippet_tokens=192, context_tokens=1536, max_new_tokens=64
        )
        is planned
    )
    assert prompt_at(ready, path, text, len(text)).startswith("# Path: a.py\n# def alpha():\n")


# -- sources -------------------------------------------------------------------------------------------------


def test_retrieval_finds_the_most_similar_window_of_another_file_and_ignores_stop_words() -> None:
    index = WindowIndex(lines=4, stride=2)
    index.add("/ws/orders.py", "def total(order):\n    return sum(line.price * line.quantity for line in order)\n")
    index.add("/ws/noise.py", "\n".join(f"x = self.value_{i}" for i in range(40)))
    index.add("/ws/here.py", "line.price * line.quantity\n")
    query = "def invoice(order):\n    amount = sum(line.price * line."
    found = index.query(query, k=2, exclude=["/ws/here.py"])
    assert [w.source for w in found] == ["/ws/orders.py"] and "line.quantity" in found[0].text
    assert query_lines("a\nb\nc\nd", lines=2) == "c\nd"


@pytest.mark.parametrize(
    ("files", "current", "expected"),
    [
        ({"geo.h": "struct point { int x; int y; };\nint norm(struct point p);\n",
          "main.c": '#include "geo.h"\nint main(void) {\n    struct point p;\n    return '},
         "main.c", "// Path: geo.h\n// struct point { int x; int y; };\n// int norm(struct point p);\n"),
        ({"shop/price.go": "package shop\n\nfunc Discount(total int) int {\n\treturn total / 10\n}\n",
          "shop/cart.go": "package shop\n\nfunc Checkout(total int) int {\n\treturn "},
         "shop/cart.go", "// Path: shop/price.go\n// func Discount(total int) int {\n"),
        ({"com/shop/Money.java": "package com.shop;\npublic class Money {\n    public int cents() {\n",
          "com/shop/Cart.java": "package com.shop;\nclass Cart {\n    int total(Money m) {\n        return "},
         "com/shop/Cart.java", "// Path: com/shop/Money.java\n// public class Money {\n//     public int cents() {\n"),
        ({"lib/format.js": "export function money(cents) {\n  return cents / 100;\n}\n",
          "app.js": "import { money } from './lib/format';\nconst shown = "},
         "app.js", "// Path: lib/format.js\n// export function money(cents) {\n"),
    ],
)  # fmt: skip
def test_each_language_gets_its_imports_as_comments(tmp_path: Path, files, current, expected) -> None:
    root = write(tmp_path / "ws", files)
    ctx = context(root, sources=frozenset({Source.IMPORTS}))
    path = (root / current).resolve()
    text = path.read_text()
    prompt = prompt_at(ctx, path, text, len(text))
    assert prompt.startswith(expected) and prompt.endswith(text)


def test_ignored_files_and_files_outside_the_workspace_never_reach_the_prompt(tmp_path: Path) -> None:
    secret = "def compute_invoice_total(order_lines):\n    return sum(l.price for l in order_lines)\n"
    root = write(
        tmp_path / "ws",
        {".gitignore": "private/\n", "private/billing.py": secret, "app.py": "def invoice(order_lines):\n    return "},
    )
    write(tmp_path / "elsewhere", {"billing.py": secret})
    ctx = context(root)
    path = (root / "app.py").resolve()
    ctx.opened((tmp_path / "elsewhere" / "billing.py").as_uri(), _Open(secret))  # open, but outside the folders
    text = path.read_text()
    assert prompt_at(ctx, path, text, len(text)) == text  # nothing similar may be shown: no snippets at all
    write(root, {"public/billing.py": secret})
    visible = context(root)
    assert "# Path: public/billing.py" in prompt_at(visible, path, text, len(text))


class _Open:
    language_id = "python"

    def __init__(self, text: str) -> None:
        self.text = text


def test_other_open_documents_of_the_same_language_are_a_source(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {"app.py": "def invoice(order_lines):\n    return "})
    ctx = context(root, sources=frozenset({Source.OPEN}))
    draft = root / "draft.py"  # not saved yet: only the editor has its text
    ctx.opened(draft.as_uri(), _Open("def total(order_lines):\n    return sum(l.price for l in order_lines)\n"))
    other_language = root / "notes.js"
    ctx.opened(other_language.as_uri(), type("Js", (), {"language_id": "javascript", "text": "order_lines"})())
    path = (root / "app.py").resolve()
    text = path.read_text()
    prompt = prompt_at(ctx, path, text, len(text))
    assert prompt.startswith("# Path: draft.py\n# def total(order_lines):") and "notes.js" not in prompt


# -- stability -----------------------------------------------------------------------------------------------


def typed_prompts(ctx: WorkspaceContext, path: Path, before: str, typed: str, after: str = "") -> list[str]:
    return [prompt_at(ctx, path, before + typed[:k] + after, len(before) + k) for k in range(1, len(typed) + 1)]


def test_typing_on_a_line_keeps_the_prompt_a_prefix_of_the_next_so_the_cache_is_reused(tmp_path: Path) -> None:
    helpers = "\n\n".join(f"def helper_{i}(value):\n    return value + {i}" for i in range(60))
    body = "\n".join(f"    total_{i} = helper_{i % 60}(total_{i - 1})" for i in range(1, 200))
    before = "from helpers import helper_1, helper_2\n\n\ndef run(total_0):\n" + body + "\n"
    root = write(tmp_path / "ws", {"helpers.py": helpers, "main.py": before})
    ctx = context(root)
    path = (root / "main.py").resolve()
    prompts = typed_prompts(ctx, path, before, "    result = helper_2(total_199) + helper_1(total_5)")
    assert prompts[0].startswith("# Path: ")
    for earlier, later in zip(prompts, prompts[1:], strict=False):
        assert later.startswith(earlier)  # only what was typed is new: the whole prompt before it is reused
    assert ctx.cache.chosen == 1


def test_each_refresh_policy_chooses_again_only_when_its_key_changes(tmp_path: Path) -> None:
    root = write(tmp_path / "ws", {"helpers.py": "def helper(v):\n    return v\n", "main.py": ""})
    path = (root / "main.py").resolve()
    before = "from helpers import helper\n"
    typed = "x = helper(1)\ny = helper(2)\n"
    chosen = {}
    for policy in RefreshPolicy:
        ctx = context(root, policy)
        ctx.opened(path.as_uri(), _Open(before))
        typed_prompts(ctx, path, before, typed)
        ctx.saved(path.as_uri())
        prompt_at(ctx, path, before + typed, len(before + typed))
        chosen[policy] = ctx.cache.chosen
    assert chosen == {RefreshPolicy.KEYSTROKE: len(typed) + 1, RefreshPolicy.LINE: 4, RefreshPolicy.SAVE: 2}
