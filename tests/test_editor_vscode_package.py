"""The VS Code extension as a person installs it: the .vsix that plain `vsce package` builds offline, with its
metadata (repository, license, icon, a README whose links work outside the repository), by the README's own
commands run as written."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.code_server import code_server_launcher
from tests.editor_support import EDITORS

VSCODE = EDITORS / "vscode"
PACKAGE = json.loads((VSCODE / "package.json").read_text())
README = (VSCODE / "README.md").read_text()
SOURCES = (
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    ".vscodeignore",
    "README.md",
    "LICENSE",
    "src",
    "images",
)


def test_metadata_that_vsce_and_the_marketplace_read() -> None:
    assert PACKAGE["repository"]["url"].startswith("https://github.com/")
    assert PACKAGE["license"] == "Apache-2.0"
    assert (VSCODE / "LICENSE").read_text().lstrip().startswith("Apache License")
    icon = (VSCODE / PACKAGE["icon"]).read_bytes()
    assert icon[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", icon[16:24]) == (128, 128)
    assert PACKAGE["scripts"]["package"] == "vsce package"  # no flags that paper over missing metadata
    assert "@vscode/vsce" in PACKAGE["devDependencies"]


def test_readme_links_work_outside_the_repository() -> None:
    """The Marketplace and the extension view show the README alone: every link and image is absolute."""
    targets = re.findall(r"\]\(([^)\s]+)", README)
    assert targets and all(t.startswith(("https://", "#")) for t in targets), targets


def test_extension_source_registers_no_proposed_features() -> None:
    """vscode-languageclient 11 has inline completion as a regular feature: the call was a no-op (issue 19)."""
    assert "registerProposedFeatures" not in (VSCODE / "src" / "extension.ts").read_text()


@pytest.mark.editor
def test_the_readme_install_commands_as_written(tmp_path: Path) -> None:
    """`npm ci`, `npx vsce package`, `code --install-extension` in a fresh copy of the folder (`code` is
    code-server's launcher here): the .vsix holds the compiled extension, its production dependencies, the icon,
    the README and the LICENSE, and nothing of the development tools."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed (editors/setup_tests.sh)")
    launcher = code_server_launcher()
    if launcher is None:
        pytest.skip("code-server is not installed (editors/setup_code_server.sh)")
    snippet = re.search(r"```sh\n(.+?)\n\s*```", README, re.DOTALL).group(1)
    commands = [line.split("#")[0].strip() for line in snippet.splitlines()]
    assert commands[0] == "cd editors/vscode" and commands[-1].startswith("code --install-extension ")

    folder = tmp_path / "editors" / "vscode"
    folder.mkdir(parents=True)
    for name in SOURCES:
        (shutil.copytree if (VSCODE / name).is_dir() else shutil.copy)(VSCODE / name, folder / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    extensions = tmp_path / "extensions"
    (bin_dir / "code").write_text(f'#!/bin/sh\nexec {launcher} --extensions-dir {extensions} "$@"\n')
    (bin_dir / "code").chmod(0o755)
    script = " && ".join(commands)
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())}
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    vsix = folder / f"{PACKAGE['name']}-{PACKAGE['version']}.vsix"
    names = zipfile.ZipFile(vsix).namelist()
    for wanted in ("extension/out/extension.js", "extension/out/status.js", "extension/images/icon.png",
                   "extension/readme.md", "extension/LICENSE.txt",
                   "extension/node_modules/vscode-languageclient/package.json"):  # fmt: skip
        assert wanted in names, wanted
    development = r"^extension/(src/|test/|out/.*\.map$|node_modules/(typescript|@vscode/vsce|@types)/)"
    assert not [n for n in names if re.search(development, n)]
    (installed,) = extensions.glob(f"{PACKAGE['publisher']}.{PACKAGE['name']}-{PACKAGE['version']}*")
    assert json.loads((installed / "package.json").read_text())["version"] == PACKAGE["version"]
