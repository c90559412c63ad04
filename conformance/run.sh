#!/usr/bin/env bash
# Run the conformance suite: Google's own Python client (pinned in requirements.txt)
# drives `orgsync emulator` exactly as an integrator would drive Google.
#
#   conformance/run.sh                 # the default run (what .ci/run calls)
#   conformance/run.sh -k directory    # extra arguments go to pytest
#   ORGSYNC_BIN=target/release/orgsync conformance/run.sh
#
# Creates conformance/.venv on first use and reinstalls only when requirements.txt changes.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "conformance: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi

STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
    echo "conformance: installing pinned Python packages" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --requirement "$HERE/requirements.txt"
    echo "$WANT" >"$STAMP"
fi

if [[ -z "${ORGSYNC_BIN:-}" ]]; then
    (cd "$REPO" && cargo build --quiet -p orgsync)
    ORGSYNC_BIN="$REPO/target/debug/orgsync"
fi
export ORGSYNC_BIN

cd "$HERE"
status=0
"$VENV/bin/python" -m pytest -q -c "$HERE/pytest.ini" "$@" || status=$?
if [[ $status -eq 5 ]]; then
    echo "conformance: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit $status
