#!/usr/bin/env bash
# Install everything dppo_robot needs into a project venv: Debian packages (libusb for
# pyrealsense2, OSMesa for headless MuJoCo rendering, chromium for report screenshots) where
# missing, then pinned wheels.
# Usage: scripts/setup.sh [VENV_DIR]   (ORT=gpu installs onnxruntime-gpu instead of onnxruntime)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
ORT=${ORT:-cpu}
PYTHON=${PYTHON:-python3}

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# --- Debian packages -------------------------------------------------------------------
# chromium: headless rendering of the HTML trial reports (tests/sim2real).
missing=()
for pkg in libusb-1.0-0 libosmesa6 libgl1 libegl1 chromium; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python venv -----------------------------------------------------------------------
"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"dppo_robot needs Python >= 3.10, found {sys.version.split()[0]}")
PY
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
log "installing pinned wheels (torch CPU, onnxruntime-$ORT, ROS 2 Kilted, robosuite, Ray, ...)"
ort_req="onnxruntime==1.31.1"
[ "$ORT" = gpu ] && ort_req="onnxruntime-gpu==1.31.1"
"${PIP[@]}" -c requirements/constraints.txt -r requirements/core.txt -r requirements/ros.txt \
  -r requirements/dev.txt -r requirements/ray.txt "$ort_req" 2>&1 | grep -v "^WARNING: Location" || true
"${PIP[@]}" -c requirements/constraints.txt --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import torch, onnxruntime, rclpy, robosuite, gymnasium, pyrealsense2, ray, dppo_robot" \
  || { echo "setup: the venv $VENV is incomplete (an import above failed)" >&2; exit 1; }
log "ready: $VENV"
