#!/usr/bin/env bash
# Install the pinned scim2-server (requirements.txt) into scim/.venv and print the absolute
# path of its `scim2-server` executable as the last line of stdout (everything else goes to
# stderr), so callers can do:
#
#   ORGSYNC_SCIM_SERVER="$(bash scim/setup.sh | tail -n1)"
#
# Creates scim/.venv on first use and reinstalls only when requirements.txt changes.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "scim: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV" >&2
fi

STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
    echo "scim: installing pinned Python packages" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --requirement "$HERE/requirements.txt" >&2
    echo "$WANT" >"$STAMP"
fi

SERVER="$VENV/bin/scim2-server"
if [[ ! -x "$SERVER" ]]; then
    echo "scim: $SERVER is missing after install" >&2
    exit 1
fi
echo "$SERVER"
