#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine: system packages, a virtualenv in .venv, the package.
# Sourced by launch/demo.sh and launch/test.sh; safe to run again (it only does what is missing).
# Python packages are installed at the versions tested together (constraints.txt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SPEECHVAE_VENV:-$ROOT/.venv}"

APT_PKGS="espeak-ng libespeak-ng1 flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox libsndfile1"
missing=""
for p in $APT_PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "[setup] installing system packages:$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086  # $missing is a list of package names
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# pip, quietly: errors still show; the "Location ... is ignored" notes of some machines' pip
# configuration are dropped.
pipq() { "$VENV/bin/pip" -q "$@" 2> >(grep -v "^WARNING: Location" >&2); }

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtualenv $VENV"
  python3 -m venv "$VENV"
  pipq install --upgrade pip
fi

# Reinstall only when setup.py, constraints.txt or this script changed since the last successful install.
STAMP="$VENV/.speechvae_setup_stamp"
WANT="$(sha256sum "$ROOT/setup.py" "$ROOT/constraints.txt" "$ROOT/launch/setup.sh" | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ] \
   || ! (cd / && "$VENV/bin/python" -c "import speechvae_jax.configs" 2>/dev/null); then
  echo "[setup] installing python packages into $VENV (first time: a few minutes)"
  pipq install -c "$ROOT/constraints.txt" -e "${ROOT}[eval,torch,tb,test]"
  # resemblyzer pins the old `webrtcvad`, which imports pkg_resources; use webrtcvad-wheels instead.
  pipq install -c "$ROOT/constraints.txt" --no-deps resemblyzer==0.1.4
  "$VENV/bin/pip" uninstall -q -y webrtcvad >/dev/null 2>&1 || true
  pipq install -c "$ROOT/constraints.txt" --force-reinstall --no-deps webrtcvad-wheels
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
