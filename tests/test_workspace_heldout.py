"""benchmarks/context.py's held-out set and scores: the same points from the same sources every time, chosen by
the cross-file rule, and CrossCodeEval's metrics. (The benchmark itself is a command, never run by the tests.)"""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.context import bootstrap, build_points, dependencies_folder, edit_similarity, identifier_f1, scores

PROJECT = {
    "models.py": (
        "class Request:\n    def prepare_body(self, data):\n        return data\n\n\n"
        "def build_request(method, url):\n    return Request()\n"
    ),
    "client.py": (
        "from .models import build_request\n\n\nclass Client:\n    def send_request(self, method, url):\n"
        "        prepared = build_request(method, url)\n        body = prepared.prepare_body(None)\n"
        "        counter = len(method) + len(url)\n        again = build_request(method, url)\n"
        "        return body, counter, again\n"
    ),
    "utils.py": "def normalize_url(url):\n    cleaned = url.strip().lower()\n    return cleaned\n",
}


def fake_site(root: Path) -> Path:
    for project in ("httpx", "h11"):  # two of the held-out projects' names
        for name, text in PROJECT.items():
            (root / project / name).parent.mkdir(parents=True, exist_ok=True)
            (root / project / name).write_text(text)
    (root / "not_a_dependency").mkdir()
    (root / "not_a_dependency" / "x.py").write_text("def build_request():\n    pass\n")
    return root


def test_the_held_out_builder_is_deterministic_and_follows_the_cross_file_rule(tmp_path: Path) -> None:
    site = fake_site(tmp_path / "site-packages")
    points = build_points(site, n_cross=6, n_control=4, seed=0)
    assert points == build_points(site, n_cross=6, n_control=4, seed=0)
    assert {p.project for p in points} == {"httpx", "h11"}  # only the held-out projects
    cross = [p for p in points if p.kind == "cross-file"]
    assert {(p.path.name, p.target) for p in cross} == {
        ("client.py", "prepared = build_request(method, url)"),  # defined in models.py, only imported before
        ("client.py", "body = prepared.prepare_body(None)"),  # a method of another file's class
    }  # `again = build_request(...)` is not: build_request was used earlier in the file
    for point in points:
        line = point.path.read_text().split("\n")[point.line]
        assert line[: point.column].strip() == "" and line[point.column :] == point.target
    assert all(p.kind == "control" for p in points if p.path.name == "utils.py")
    everything = build_points(site, n_cross=100, n_control=100, seed=0)
    assert everything == build_points(site, n_cross=100, n_control=100, seed=1)  # all taken: no seed matters
    assert len(build_points(site, n_cross=2, n_control=1, seed=0)) == 3


def test_the_real_held_out_set_is_reproducible(tmp_path: Path) -> None:
    site = dependencies_folder()
    first = build_points(site, n_cross=30, n_control=10, seed=0)
    assert first == build_points(site, n_cross=30, n_control=10, seed=0)
    assert len(first) == 40 and {p.kind for p in first} == {"cross-file", "control"}
    assert all(not re.match(r"\s*(#|import |from )", p.target) for p in first)


def test_crosscodeeval_scores() -> None:
    assert scores("return x + 1", "  return x + 1 ") == {"EM": 1.0, "ES": 1.0, "ID F1": 1.0}
    assert edit_similarity("abcd", "abce") == 0.75 and edit_similarity("", "") == 1.0
    assert identifier_f1("foo(bar)", "foo(baz)") == 0.5
    assert identifier_f1("", "x") == 0.0
    mean, low, high = bootstrap([0.0, 1.0] * 50)
    assert mean == 0.5 and low < 0.5 < high and bootstrap([0.0, 1.0] * 50) == (mean, low, high)
