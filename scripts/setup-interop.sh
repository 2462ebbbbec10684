#!/usr/bin/env bash
# Installs the independent clients the tests hold the server to (interop/README.md):
# @stomp/stompjs, ws and playwright-core from interop/package-lock.json into
# interop/node_modules, stomp.py from interop/requirements.txt (hashes required) into the
# virtualenv interop/.venv, and Debian's chromium (the browser the web client is tested in;
# playwright-core drives it, it never downloads a browser of its own). Idempotent and quick when
# done: each step runs again only when its lock file changed since it last ran.
set -euo pipefail
cd "$(dirname "$0")/../interop"

missing() {
  echo "setup-interop: $1 is missing: $2" >&2
  exit 1
}

command -v node >/dev/null || missing node "install Node.js 18 or newer (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || missing npm "install npm (Debian: apt-get install npm)"
command -v python3 >/dev/null || missing python3 "install Python 3.10 or newer (Debian: apt-get install python3 python3-venv)"

digest() { sha256sum "$1" | cut -d' ' -f1; }

if [ ! -x /usr/bin/chromium ]; then
  echo "setup-interop: installing Debian's chromium (apt-get install chromium)" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core \
    || missing chromium "install Debian's chromium (apt-get install chromium): the browser tests run in it"
fi

# npm ci wipes node_modules, so the stamp inside it goes with it.
node_stamp=node_modules/.interop-lock.sha256
if [ ! -f "$node_stamp" ] || [ "$(cat "$node_stamp")" != "$(digest package-lock.json)" ]; then
  echo "setup-interop: npm ci in interop/" >&2
  npm ci --no-audit --no-fund --loglevel=error
  digest package-lock.json >"$node_stamp"
fi

venv_stamp=.venv/.interop-requirements.sha256
if [ -x .venv/bin/python ] && ! .venv/bin/python -c '' 2>/dev/null; then
  # A virtualenv left by a Python that is gone: make it anew.
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup-interop: creating interop/.venv" >&2
  python3 -m venv .venv || {
    rm -rf .venv
    missing "Python's venv module" "install it (Debian: apt-get install python3-venv)"
  }
fi
if [ ! -f "$venv_stamp" ] || [ "$(cat "$venv_stamp")" != "$(digest requirements.txt)" ]; then
  echo "setup-interop: installing interop/requirements.txt into interop/.venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt
  digest requirements.txt >"$venv_stamp"
fi
