#!/usr/bin/env bash
# Installs everything homelab needs on a fresh Debian machine, idempotently:
# the Debian packages of the real services the tests drive, a virtualenv with the
# project and its extras, and the llama-server binary (built once, cached outside the repo).
# Sourced by scripts/test and scripts/demo; safe to run again (then it takes seconds).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HOMELAB_VENV:-$ROOT/.venv}"
DEBIAN_PACKAGES=(docker.io iptables openssh-server busybox-static postgresql)

sudo_if_needed() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "==> apt-get install ${missing[*]}" >&2
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> python3 -m venv $VENV" >&2
    python3 -m venv "$VENV"
fi
stamp="$VENV/.homelab-installed"
if [[ ! -f "$stamp" || "$ROOT/pyproject.toml" -nt "$stamp" ]]; then
    echo "==> pip install -e .[gateway,test]" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[gateway,test]" >&2
    touch "$stamp"
fi

# scripts/demo sets HOMELAB_SETUP_SKIP_LLAMA=1: `homelab demo` builds it with a progress bar.
if [[ -z "${HOMELAB_SETUP_SKIP_LLAMA:-}" ]]; then
    echo "==> llama-server (first build takes about 12 minutes on 2 cores; cached afterwards)" >&2
    LLAMA_SERVER="$(bash "$ROOT/scripts/build-llama-server.sh")"
    export LLAMA_SERVER
fi
export PATH="$VENV/bin:$PATH"
