#!/usr/bin/env bash
# Screenshots of the Prefect UI for the README, taken from a real `homelab demo`:
#   docs/ui-deployments.png   the deployments (schedules, the per-node recovery deployments)
#   docs/ui-sweep.png         the health sweep's table artifact (DEGRADED, nas/small DOWN)
#   docs/ui-recovery.png      the recover-node run the automation started on homelab.node.down
#   docs/ui-alerts.png        the alert automations `homelab up` keeps from the cluster file's notify:
# Runs the demo in a folder of its own (HOMELAB_DEMO_DIR, default a temporary one), points
# headless Chromium (Debian `chromium`, installed here when missing) at the UI, and stops the
# demo afterwards unless KEEP_DEMO=1. Needs scripts/setup.sh to have run. Loopback only:
# Chromium is started with everything that phones home switched off.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HOMELAB_VENV:-$ROOT/.venv}"
OUT="${SCREENSHOT_DIR:-$ROOT/docs}"
WIDTH="${SCREENSHOT_WIDTH:-1440}"
HEIGHT="${SCREENSHOT_HEIGHT:-900}"
MAX_BYTES=300000

sudo_if_needed() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if ! command -v chromium >/dev/null; then
    echo "==> apt-get install chromium" >&2
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >&2
fi

DEMO_DIR="${HOMELAB_DEMO_DIR:-$(mktemp -d -t homelab-demo.XXXXXX)}"
PROFILE="$(mktemp -d -t homelab-chromium.XXXXXX)"
cleanup() {
    rm -rf "$PROFILE"
    if [[ "${KEEP_DEMO:-0}" != 1 ]]; then
        "$VENV/bin/homelab" demo --stop --dir "$DEMO_DIR" >&2 || true
    fi
}
trap cleanup EXIT

echo "==> homelab demo --dir $DEMO_DIR" >&2
summary="$DEMO_DIR.summary.json"
"$VENV/bin/homelab" demo --dir "$DEMO_DIR" --json > "$summary"

field() {  # field a.b.c: that value of the summary
    "$VENV/bin/python" -c 'import functools, json, sys
print(functools.reduce(lambda d, k: d[k], sys.argv[2].split("."), json.load(open(sys.argv[1]))))' "$summary" "$1"
}

shot() {  # shot NAME URL
    local png="$OUT/$1.png"
    echo "==> $png  <-  $2" >&2
    # --virtual-time-budget lets the single-page app fetch from the API and render before the shot.
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
        --user-data-dir="$PROFILE" --no-first-run --no-default-browser-check --disable-extensions \
        --disable-background-networking --disable-component-update --disable-sync --disable-default-apps \
        --disable-domain-reliability --metrics-recording-only --no-pings \
        --window-size="$WIDTH,$HEIGHT" --virtual-time-budget=20000 \
        --screenshot="$png" "$2" 2>/dev/null
    # Keep the repository light: a palette PNG when the full-colour one is too big.
    "$VENV/bin/python" - "$png" "$MAX_BYTES" <<'EOF'
import os, sys
from PIL import Image
path, limit = sys.argv[1], int(sys.argv[2])
if os.path.getsize(path) > limit:
    Image.open(path).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
print(f"{path}: {os.path.getsize(path) // 1024} KiB", file=sys.stderr)
EOF
}

mkdir -p "$OUT"
shot ui-deployments "$(field deployments_url)"
shot ui-sweep "$(field sweep.artifact_urls.health-sweep)"
shot ui-recovery "$(field recovery.url)"
shot ui-alerts "$(field ui_url)automations"
echo "==> the demo's summary: $summary" >&2
