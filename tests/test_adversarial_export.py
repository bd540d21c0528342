"""`codegen-lsp export` against an unlucky OUTDIR: refused in one line before anything is read or written, and the
hidden folder a killed export left behind removed by the next export."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from codegen_lsp.inference.checkpoint.export_gptj import ExportError, export_gptj
from codegen_lsp.inference.checkpoint.hub import BUNDLED
from tests.lsp_client import REPO, run_cli


def export_cli(*args: str, cwd=REPO) -> subprocess.CompletedProcess[str]:
    return run_cli("export", *args, cwd=cwd)


def test_a_symlink_to_an_empty_folder_is_refused_before_the_write(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(ExportError, match="symbolic link"):
        export_gptj(BUNDLED, tmp_path / "link")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "link"]  # no partial export was written


def test_a_dangling_symlink_is_refused_and_its_target_parents_are_not_created(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "deeper" / "gptj")
    with pytest.raises(ExportError, match="symbolic link"):
        export_gptj(BUNDLED, tmp_path / "dangling")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("outdir", [".", "..", "sub/.."])
def test_a_name_that_is_not_a_new_folder_is_refused_in_one_line(tmp_path, outdir):
    (tmp_path / "sub").mkdir()
    done = export_cli(BUNDLED, outdir, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("codegen-lsp export: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "names no new folder" in done.stderr and "Traceback" not in done.stderr


def test_the_partial_folder_of_a_killed_export_is_removed_by_the_next_one(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that is no longer running (as after kill -9)
    stale = tmp_path / f".gptj.partial-{gone.pid}-0badcafe"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 4096)
    live = tmp_path / f".gptj.partial-{os.getpid()}-feedf00d"  # an export still running: left alone
    live.mkdir()
    export_gptj(BUNDLED, tmp_path / "gptj")
    assert not stale.exists() and live.exists()
    assert (tmp_path / "gptj" / "model.safetensors").is_file()
