#!/usr/bin/env bash
# The Slicer module's tests on Python 3.12, the Python of Slicer 5.10 and later.
#
# The venv holds exactly what the module declares: SlicerGISTRisk/Resources/requirements.txt (what
# the module installs into Slicer's Python), Resources/slicer-provided.txt (what Slicer's Python
# ships, installed here in Slicer's place), slicer-core (Slicer's MRML classes) and pytest, at the
# versions requirements/lock.txt pins for those two. gistrisk and qupath_bridge come from this
# checkout (PYTHONPATH), as the module finds them in a source checkout; the install-layout test
# runs the module from its install tree instead.
#
# Like the Makefile's venv it is built once and cached, keyed by the hash of those lists:
# ~/.cache/gistrisk/py312-<hash>. PyPI (or a mirror pip is configured for) must be reachable for
# the first build; pyradiomics-bhklab is compiled from source then (a C compiler is needed).
#
# Usage: tests/slicer/run_py312.sh [pytest arguments]     PY312=/path/to/python3.12 picks the interpreter
set -euo pipefail
cd "$(dirname "$0")/../.."

is_312() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; }
PY=""
for cand in "${PY312:-}" python3.12 "$(command -v pyenv >/dev/null && pyenv root)"/versions/3.12*/bin/python3.12 \
            /usr/local/bin/python3.12 /usr/bin/python3.12; do
  if [ -n "$cand" ] && is_312 "$cand"; then PY=$cand; break; fi
done
if [ -z "$PY" ]; then
  echo "run_py312.sh: no Python 3.12 found (set PY312=/path/to/python3.12)" >&2
  exit 2
fi

RES=SlicerGISTRisk/Resources
PINS=$(grep -E '^(slicer-core|pytest)==' requirements/lock.txt | sort)
HASH=$(cat "$RES/requirements.txt" "$RES/slicer-provided.txt" <(echo "$PINS") | sha256sum | cut -c1-16)
VENV="$HOME/.cache/gistrisk/py312-$HASH"

if [ ! -f "$VENV/.installed" ]; then
  echo "run_py312.sh: building $VENV (first run for these requirements; minutes)" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -qq --upgrade pip
  # shellcheck disable=SC2086  # PINS is a list of requirements
  "$VENV/bin/python" -m pip install -qq -r "$RES/requirements.txt" -r "$RES/slicer-provided.txt" $PINS
  "$VENV/bin/python" -m pip check
  touch "$VENV/.installed"
fi

PYTHONPATH="$PWD/core:$PWD" exec "$VENV/bin/python" -m pytest -q -rs tests/slicer "$@"
