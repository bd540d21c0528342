"""`codegen-lsp doctor`: one OK/WARN/FAIL line per fact, exit 0 when the set-up can complete code and 1 with
the reason when it cannot. Run as the editors run it (a process of its own)."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import pytest

from codegen_lsp.inference.model.device import cpu_info, dtype_advice
from tests.lsp_client import run_cli

LEVELS = ("OK ", "WARN ", "FAIL ")


def doctor(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_cli("doctor", *args, timeout=timeout)


def lines_by_topic(stdout: str) -> dict[str, list[str]]:
    topics: dict[str, list[str]] = {}
    for line in stdout.splitlines()[:-1]:
        assert line.startswith(LEVELS), line
        level, _, rest = line.partition(" ")
        topic, _, message = rest.partition(": ")
        topics.setdefault(topic, []).append(f"{level} {message}")
    return topics


def test_the_bundled_model_is_usable_and_timed() -> None:
    run = doctor("--model", "bundled", "--device", "cpu")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "codegen-lsp doctor: usable"
    topics = lines_by_topic(run.stdout)
    assert topics["python"][0].startswith("OK 3.")
    assert topics["torch"][0].startswith("OK ") and "build" in topics["torch"][0]
    assert topics["device"] == ["OK cpu; the device setting"]
    assert topics["dtype"][0].startswith("OK auto -> ") and "auto: this CPU" in topics["dtype"][0]
    advice = dtype_advice(cpu_info()[1])  # this CPU's: said by the doctor exactly where there is one
    assert topics.get("dtype advice") == ([f"OK {advice}"] if advice else None)
    assert topics["model"][0].startswith("OK bundled: ")
    assert topics["load"][0].startswith("OK ") and "bundled" in topics["load"][0]
    (speed,) = topics["speed"]
    assert re.fullmatch(r"(OK|WARN) 16 tokens in \d+ ms: \d+\.\d tokens/s(; slow: .*)?", speed), speed


@pytest.mark.parametrize(
    "flags, says",
    [
        ({"avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8"}, "prefills ~1.9x slower"),
        ({"avx512f", "avx512_bf16", "avx512_vnni"}, "set dtype int8"),
        ({"avx2", "avx_vnni"}, None),  # no native bf16: nothing measured
        (set(), None),
    ],
)
def test_the_dtype_advice_follows_what_was_measured_on_each_cpu_family(flags, says) -> None:
    advice = dtype_advice(flags)
    assert advice is None if says is None else says in advice and len(advice) < 80  # one line of a window


def test_a_missing_model_folder_is_not_usable_and_says_why(tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    run = doctor("--model", str(missing))
    assert run.returncode == 1
    assert f"FAIL model: model folder {missing} does not exist (the model setting)" in run.stdout.splitlines()
    assert (
        run.stdout.splitlines()[-1]
        == f"codegen-lsp doctor: not usable: model: model folder {missing} does not exist (the model setting)"
    )
    assert "speed" not in lines_by_topic(run.stdout)  # nothing is loaded


def test_json_says_the_same(tmp_path) -> None:
    run = doctor("--model", str(tmp_path), "--json", "--no-speed-test")
    data = json.loads(run.stdout)
    assert run.returncode == 1 and data["usable"] is False
    assert {c["level"] for c in data["checks"]} <= {"OK", "WARN", "FAIL"}
    assert data["checks"][-1] == {
        "level": "FAIL",
        "topic": "model",
        "message": f"model folder {tmp_path} has no config.json",
    }


def test_an_uncached_hub_model_offline_says_the_bundled_model_stands_in(tmp_path) -> None:
    run = doctor("--model", "Salesforce/codegen-350M-mono", "--no-speed-test")
    assert run.returncode == 0, run.stdout
    assert lines_by_topic(run.stdout)["model"] == [
        "WARN Salesforce/codegen-350M-mono is not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
        "the bundled model stands in (weaker completions)"
    ]


def test_a_remote_server_that_does_not_answer_is_not_usable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    settings = {"backend": "openai", "backendUrl": url, "model": "bundled", "backendTimeoutMs": 2000}
    run = doctor("--settings", json.dumps(settings))
    assert run.returncode == 1
    assert lines_by_topic(run.stdout)["remote"] == [
        f"FAIL the completion server at {url} is unreachable (ConnectError)"
    ]
    assert "torch" not in lines_by_topic(run.stdout)  # a remote backend needs no torch here


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [("[1]", "--settings must be a JSON object"), ("{", "--settings is not JSON")],
)
def test_bad_arguments_are_usage_errors(settings, complaint) -> None:
    run = doctor("--settings", settings)
    assert run.returncode == 2 and complaint in run.stderr
