"""Fixtures for driving `orgsync emulator` with Google's own Python client.

Everything here is what a Google Workspace integrator would write against the real
Google endpoints, except two things: the service-account key file is the one the
emulator wrote (its `token_uri` points at the emulator), and `build()` gets
`client_options={"api_endpoint": base_url}`. The client libraries are pinned in
`conformance/requirements.txt` and are used unchanged.

Emulator instances are real subprocesses of the `orgsync` binary (`$ORGSYNC_BIN`,
default `target/debug/orgsync`). One session-wide instance serves most tests; tests
that change global state (faults, the clock) get their own short-lived instance so
they cannot disturb the others.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google.oauth2 import service_account
from googleapiclient.discovery import build

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "example.com"
ADMIN = f"admin@{DOMAIN}"
ORG_USERS = 120
PERSONAL_CONTACTS = 2

SCOPE = "https://www.googleapis.com/auth/"
DIRECTORY_SCOPES = [
    SCOPE + "admin.directory.user",
    SCOPE + "admin.directory.group.readonly",
]
CONTACTS_SCOPES = [SCOPE + "contacts"]

# Nothing may hang the suite: every socket the client opens times out.
socket.setdefaulttimeout(30)


@dataclass
class Emulator:
    """A running `orgsync emulator` subprocess."""

    base_url: str
    data_dir: Path
    proc: subprocess.Popen
    stderr_path: Path
    stdout_lines: list[str] = field(default_factory=list)

    @property
    def key_file(self) -> Path:
        return self.data_dir / "service-account.json"

    def control(self, method: str, path: str, body: object | None = None):
        """Call the control API (`/emulator/v1/<path>`); returns parsed JSON or None."""
        return control_call(self.base_url, method, path, body)

    def stderr_tail(self, lines: int = 200) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except OSError:
            return "(no stderr captured)"
        return "\n".join(text.splitlines()[-lines:])

    # -- credentials and services, exactly as an integrator would write them --

    def credentials(self, subject: str | None = ADMIN, scopes=None):
        creds = service_account.Credentials.from_service_account_file(
            str(self.key_file),
            scopes=scopes or DIRECTORY_SCOPES,
            subject=subject,
        )
        return creds

    def directory(self, subject: str = ADMIN, scopes=None):
        return build(
            "admin",
            "directory_v1",
            credentials=self.credentials(subject, scopes or DIRECTORY_SCOPES),
            client_options={"api_endpoint": self.base_url},
            static_discovery=True,
            cache_discovery=False,
        )

    def people(self, subject: str, scopes=None):
        return build(
            "people",
            "v1",
            credentials=self.credentials(subject, scopes or CONTACTS_SCOPES),
            client_options={"api_endpoint": self.base_url},
            static_discovery=True,
            cache_discovery=False,
        )


def control_call(base_url: str, method: str, path: str, body: object | None = None):
    """Plain stdlib HTTP to the emulator's control API. Raises on a non-2xx answer."""
    url = f"{base_url}/emulator/v1/{path.lstrip('/')}"
    data = None
    headers = {}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")
        raise AssertionError(f"control API {method} {path} -> {e.code}: {detail}") from e
    if not raw.strip():
        return None
    return json.loads(raw)


def orgsync_bin() -> str:
    path = os.environ.get("ORGSYNC_BIN") or str(REPO / "target" / "debug" / "orgsync")
    if not Path(path).is_file():
        pytest.exit(
            f"orgsync binary not found at {path}: run `cargo build -p orgsync` "
            "or set ORGSYNC_BIN (conformance/run.sh does this)",
            returncode=3,
        )
    return path


def start_emulator(users: int, personal_contacts: int, extra_args=()) -> Emulator:
    """Start an emulator on an ephemeral port and wait until it answers."""
    data_dir = Path(tempfile.mkdtemp(prefix="orgsync-conformance-"))
    stderr_path = data_dir.parent / (data_dir.name + ".stderr.log")
    stderr_file = open(stderr_path, "wb")
    args = [
        orgsync_bin(),
        "emulator",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
        "--users",
        str(users),
        "--personal-contacts",
        str(personal_contacts),
        *extra_args,
    ]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=stderr_file,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )
    stderr_file.close()

    # The first stdout line is machine-readable: "orgsync emulator listening on http://…".
    first = _readline_with_timeout(proc, 60)
    prefix = "orgsync emulator listening on "
    if not first.startswith(prefix):
        proc.kill()
        proc.wait()
        raise RuntimeError(
            f"unexpected first line from emulator: {first!r}\nstderr:\n"
            + stderr_path.read_text(errors="replace")
        )
    emu = Emulator(first[len(prefix):].strip().rstrip("/"), data_dir, proc, stderr_path)
    emu.stdout_lines.append(first)
    # Keep draining stdout so the emulator can never block on a full pipe.
    threading.Thread(target=_drain, args=(proc, emu.stdout_lines), daemon=True).start()

    # The binary binds and bootstraps (key files) before printing its first line, so the
    # server should answer at once. Any HTTP answer means it is serving.
    deadline = time.monotonic() + 20
    last_err: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"emulator exited with {proc.returncode} during start-up\nstderr:\n"
                + emu.stderr_tail()
            )
        try:
            urllib.request.urlopen(f"{emu.base_url}/emulator/v1/stats", timeout=5).close()
            answered = True
        except urllib.error.HTTPError:
            answered = True
        except OSError as e:
            answered, last_err = False, e
        if answered:
            if emu.key_file.is_file():
                return emu
            last_err = FileNotFoundError(f"{emu.key_file} was not written")
        time.sleep(0.1)
    stop_emulator(emu)
    raise RuntimeError(f"emulator not ready after 20 s: {last_err}\nstderr:\n{emu.stderr_tail()}")


def _readline_with_timeout(proc: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []

    def read():
        out.append(proc.stdout.readline().decode(errors="replace"))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    if not out:
        proc.kill()
        raise RuntimeError(f"emulator printed nothing within {timeout} s")
    return out[0]


def _drain(proc: subprocess.Popen, sink: list[str]) -> None:
    for line in proc.stdout:
        sink.append(line.decode(errors="replace"))


def stop_emulator(emu: Emulator) -> None:
    if emu.proc.poll() is None:
        emu.proc.send_signal(signal.SIGTERM)
        try:
            emu.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            emu.proc.kill()
            emu.proc.wait()
    shutil.rmtree(emu.data_dir, ignore_errors=True)
    emu.stderr_path.unlink(missing_ok=True)


def _dump_if_failed(request, emu: Emulator, label: str) -> None:
    failed = request.session.testsfailed > 0
    code = emu.proc.poll()
    if failed or (code not in (None, 0, -signal.SIGTERM)):
        print(f"\n----- {label} emulator stderr (tail) -----\n{emu.stderr_tail()}\n-----")


@pytest.fixture(scope="session")
def emulator(request) -> Emulator:
    """The session-wide emulator: a generated org of ORG_USERS users."""
    emu = start_emulator(ORG_USERS, PERSONAL_CONTACTS)
    yield emu
    crashed = emu.proc.poll()
    _dump_if_failed(request, emu, "session")
    stop_emulator(emu)
    if crashed is not None:
        pytest.fail(f"the emulator died during the session (exit {crashed})")


@pytest.fixture
def private_emulator(request):
    """A fresh, small emulator for tests that change global state (faults, clock)."""
    started: list[Emulator] = []

    def make(users: int = 8, personal_contacts: int = 1, extra_args=()) -> Emulator:
        emu = start_emulator(users, personal_contacts, extra_args)
        started.append(emu)
        return emu

    yield make
    failed = getattr(request.node, "rep_call_failed", False)
    for emu in started:
        if failed:
            print(f"\n----- private emulator stderr (tail) -----\n{emu.stderr_tail()}\n-----")
        stop_emulator(emu)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call_failed = rep.failed


# --- shared helpers -----------------------------------------------------------------


@pytest.fixture(scope="session")
def directory(emulator):
    """Directory service as the domain admin."""
    return emulator.directory()


def list_all_users(directory, **params) -> list[dict]:
    """Page through users.list with list_next until it returns None."""
    params.setdefault("customer", "my_customer")
    users: list[dict] = []
    req = directory.users().list(**params)
    pages = 0
    while req is not None:
        resp = req.execute()
        assert resp.get("kind") == "admin#directory#users", resp.get("kind")
        users.extend(resp.get("users", []))
        pages += 1
        assert pages < 10_000, "paging never ends"
        req = directory.users().list_next(req, resp)
    return users


@pytest.fixture(scope="session")
def org_users(directory) -> list[dict]:
    """Every live user of the generated org, as first seen (before any test mutates it)."""
    return list_all_users(directory, maxResults=500, orderBy="email")


@pytest.fixture(scope="session")
def members(org_users) -> list[str]:
    """Primary emails of ordinary members: not admins, not suspended, not archived."""
    out = [
        u["primaryEmail"]
        for u in org_users
        if not u.get("isAdmin")
        and not u.get("isDelegatedAdmin")
        and not u.get("suspended")
        and not u.get("archived")
    ]
    assert len(out) >= 10, f"expected at least 10 ordinary members in the generated org, got {len(out)}"
    return out


def unique(prefix: str = "conf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_json(err) -> dict:
    """The parsed body of a googleapiclient HttpError."""
    body = err.content.decode() if isinstance(err.content, bytes) else err.content
    try:
        return json.loads(body)
    except ValueError as e:
        raise AssertionError(f"error body is not JSON: {body[:500]!r}") from e
