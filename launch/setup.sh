#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine: system packages, a virtualenv in .venv, the package.
# Sourced by launch/demo.sh and launch/test.sh; safe to run again (it only does what is missing).
# Python packages are installed at the versions tested together (constraints.txt).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SPEECHVAE_VENV:-$ROOT/.venv}"

APT_PKGS="espeak-ng libespeak-ng1 flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox libsndfile1 alsa-utils asterisk-core-sounds-en asterisk-core-sounds-en-wav shellcheck"
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

# pip, quietly: its output goes to $VENV/setup.log and is shown only when pip fails.
pipq() {
  if ! "$VENV/bin/pip" -q "$@" >>"$VENV/setup.log" 2>&1; then
    grep -v "^WARNING: Location" "$VENV/setup.log" | tail -n 40 >&2
    echo "[setup] pip failed: $* (full log: $VENV/setup.log)" >&2
    return 1
  fi
}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtualenv $VENV"
  python3 -m venv "$VENV"
  : >"$VENV/setup.log"
  pipq install --upgrade pip
fi

# Reinstall only when setup.py, constraints.txt or this script changed since the last successful install.
STAMP="$VENV/.speechvae_setup_stamp"
WANT="$(sha256sum "$ROOT/setup.py" "$ROOT/constraints.txt" "$ROOT/launch/setup.sh" | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ] \
   || ! (cd / && "$VENV/bin/python" -c "import speechvae_jax.configs" 2>/dev/null); then
  echo "[setup] installing python packages into $VENV (first time: a few minutes)"
  pipq install -c "$ROOT/constraints.txt" -e "${ROOT}[eval,torch,tb,gcs,test]"
  # resemblyzer pins the old `webrtcvad`, which imports pkg_resources; use webrtcvad-wheels instead.
  pipq install -c "$ROOT/constraints.txt" --no-deps resemblyzer==0.1.4
  "$VENV/bin/pip" uninstall -q -y webrtcvad >/dev/null 2>&1 || true
  pipq install -c "$ROOT/constraints.txt" --force-reinstall --no-deps webrtcvad-wheels
  echo "$WANT" > "$STAMP"
fi
# The release's PyTorch reference packages (parity tests, peer benchmark), outside the project's
# site-packages: their own pins (an old protobuf, a CUDA torchaudio) must not touch it (docs/models.md).
REF_SITE="${SPEECHVAE_REF_SITE:-$VENV/ref-site}"
if [ ! -d "$REF_SITE/bigvgan" ]; then
  echo "[setup] installing the PyTorch reference packages into $REF_SITE"
  pipq install --no-deps --no-build-isolation --target "$REF_SITE" \
    descript-audio-codec==1.0.0 descript-audiotools==0.7.2 bigvgan==2.4.1 auraloss==0.4.0 nnAudio==0.3.4 \
    torchaudio==2.11.0 flatten-dict==0.5.0 julius==0.2.8 ffmpy==1.0.0 randomname==0.2.1 argbind==0.3.9
fi
export PATH="$VENV/bin:$PATH"
