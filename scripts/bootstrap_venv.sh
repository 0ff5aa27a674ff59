#!/usr/bin/env bash
# Create or refresh .venv from pyproject.toml. Usage: scripts/bootstrap_venv.sh [runtime|dev]
# Re-installs only when pyproject.toml changed since the last install (a stamp file records its hash).
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-runtime}"
pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}
if [ ! -x .venv/bin/python ]; then
  py="$(pick_python)"
  echo "creating .venv with $py" >&2
  "$py" -m venv .venv
fi
spec="."
[ "$extra" = "dev" ] && spec=".[dev]"
stamp=".venv/.installed-$extra"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing $spec into .venv (first run takes a minute)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" >&2
  echo "$want" > "$stamp"
fi
