#!/usr/bin/env bash
# The test command (README, and .ci/run calls exactly this): set-up, lint, then the whole suite.
# Extra arguments go to pytest, e.g. `bash launch/test.sh -k alignment`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=launch/setup.sh
source "$ROOT/launch/setup.sh"
cd "$ROOT"
echo "[test] ruff check"
ruff check .
set +e
python -m pytest -q -ra --durations=15 tests "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$rc"
