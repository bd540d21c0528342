"""pipeline/plan.py and the end of postprocess.py: what the server and the CLI share (pure functions, no model)."""

from __future__ import annotations

from codegen_lsp.inference.protocol import Candidate, CompletionResult, StopReason, Timings
from codegen_lsp.lsp_server.pipeline import (
    Mode,
    complete_lines,
    completed_language,
    engine_request,
    finish_items,
    max_prompt_chars,
    plan,
)
from codegen_lsp.lsp_server.pipeline.plan import CHARS_PER_TOKEN
from codegen_lsp.lsp_server.settings import parse_settings

TEXT = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    ret\n"


def settings(**raw):
    parsed, warnings = parse_settings(raw)
    assert not warnings
    return parsed


def result(*texts: str) -> CompletionResult:
    candidates = tuple(Candidate((1,), text, StopReason.EOS) for text in texts)
    return CompletionResult(7, candidates, 10, 0, Timings())


def test_a_mono_model_completes_python_only_and_the_others_all_six_languages() -> None:
    mono = settings(model="Salesforce/codegen-350M-mono")
    assert completed_language("python", mono).name == "python"
    assert completed_language("Python3", mono).name == "python"
    assert completed_language("go", mono) is None and completed_language("javascript", mono) is None
    for model in ["Salesforce/codegen-2B-multi", "Salesforce/codegen-350M-nl", "/models/my-finetune"]:
        multi = settings(model=model)
        for language_id, name in [("c", "c"), ("cpp", "cpp"), ("go", "go"), ("java", "java"),
                                  ("javascript", "javascript"), ("javascriptreact", "javascript"),
                                  ("python", "python")]:  # fmt: skip
            assert completed_language(language_id, multi).name == name, (model, language_id)
    assert completed_language("python", settings(model="bundled")).name == "python"
    assert completed_language("go", settings(model="bundled")) is None


def test_other_documents_get_no_language() -> None:
    multi = settings(model="Salesforce/codegen-350M-multi")
    for language_id in ["rust", "typescript", "", None, "plaintext"]:
        assert completed_language(language_id, multi) is None


def test_the_languages_setting_overrides_the_model() -> None:
    only_go = settings(model="Salesforce/codegen-350M-multi", languages=["go"])
    assert completed_language("go", only_go).name == "go"
    assert completed_language("python", only_go) is None
    assert completed_language("javascriptreact", settings(languages=["javascript"])) is None
    assert completed_language("go", settings(model="Salesforce/codegen-350M-mono", languages=["go"])).name == "go"
    assert completed_language("python", settings(languages=[])) is None


def test_prompt_budget_follows_context_tokens() -> None:
    assert max_prompt_chars(settings(contextTokens=100)) == 100 * CHARS_PER_TOKEN


def test_plan_decides_then_builds_the_context() -> None:
    cursor = TEXT.index("ret\n") + 3
    planned = plan(TEXT, cursor, settings(), invoked=False)
    assert planned is not None and planned.mode is Mode.MULTI_LINE
    assert planned.ctx.prompt == TEXT[:cursor] and planned.ctx.line_prefix == "    ret"
    # In front of a word: nothing automatically, something when asked.
    inside = TEXT.index("add")
    assert plan(TEXT, inside, settings(), invoked=False) is None
    assert plan(TEXT, inside, settings(), invoked=True).mode is Mode.SINGLE_LINE


def test_engine_request_carries_settings_and_rule() -> None:
    s = settings(maxNewTokens=5, temperature=0.5, numCandidates=2)
    planned = plan(TEXT, len(TEXT), s, invoked=True)
    request = engine_request(planned, s, request_id=3, document="file:///a.py")
    assert request.request_id == 3 and request.document == "file:///a.py" and request.prompt == TEXT
    assert request.options.max_new_tokens == 5 and request.options.num_candidates == 2
    assert request.options.stop_rule == planned.rule


def test_finish_postprocesses_and_deduplicates() -> None:
    cursor = TEXT.index("ret\n") + 3
    planned = plan(TEXT, cursor, settings(), invoked=True)
    items = finish_items(result("urn a - b\n\n\n\nprint(1)", "urn a - b   ", "   ", "urn b"), planned.ctx, planned.rule)
    assert items == ["urn a - b", "urn b"]


def test_a_completion_cut_by_the_token_limit_keeps_its_complete_lines_only() -> None:
    def cut(text: str, reason: StopReason = StopReason.MAX_TOKENS) -> str:
        return complete_lines(Candidate((1,), text, reason))

    assert cut("x = 1\n    if sel") == "x = 1"
    assert cut("\n    a = 1\n    b = fo") == "\n    a = 1"
    assert cut("x = 1\n    y = 2\n") == "x = 1\n    y = 2\n"  # the last line is complete
    assert cut("return sel") == "return sel"  # one partial line is all there is
    assert cut("\n    return sel") == "\n    return sel"
    assert cut("x = 1\n    if sel", StopReason.EOS) == "x = 1\n    if sel"  # the model ended it itself
    assert cut("x = 1\n    if sel", StopReason.STOP_RULE) == "x = 1\n    if sel"
