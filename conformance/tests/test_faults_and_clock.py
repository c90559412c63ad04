"""Quotas, injected faults and the emulator clock, seen through Google's client.

Each test gets its own small emulator (`private_emulator`) because faults and the clock
are global to an emulator instance. The control API is plain stdlib HTTP, as documented
in the README: `PUT /emulator/v1/faults`, `POST /emulator/v1/clock/advance`."""

import json
import time

import httplib2
import pytest
from googleapiclient.errors import HttpError

from conftest import ADMIN, error_json

NO_FAULTS = {"latency_ms": 0, "error_rate": 0.0, "quota_per_user_per_minute": None}
DAY = 86400


def a_member(emu):
    users = emu.directory().users().list(customer="my_customer", maxResults=500).execute()["users"]
    for u in users:
        if not (u.get("isAdmin") or u.get("suspended") or u.get("archived")):
            return u["primaryEmail"]
    raise AssertionError("no ordinary member in the generated org")


def fast_retries(req):
    """Keep the client's own retry loop, but without its multi-second sleeps."""
    req._sleep = lambda seconds: time.sleep(min(seconds, 0.02))
    return req


# --- quotas -------------------------------------------------------------------------


def test_quota_exceeded_is_429_with_retry_after_and_googles_body(private_emulator):
    emu = private_emulator()
    member = a_member(emu)
    svc = emu.directory()
    people = emu.people(member)
    # Warm up both tokens before the quota is set, so token calls cannot interfere.
    svc.users().get(userKey=ADMIN).execute()
    people.people().connections().list(resourceName="people/me", personFields="names").execute()

    emu.control("PUT", "faults", {**NO_FAULTS, "quota_per_user_per_minute": 5})
    ok, err = 0, None
    for _ in range(12):
        try:
            svc.users().get(userKey=ADMIN).execute()
            ok += 1
        except HttpError as e:
            err = e
            break
    assert err is not None, "no 429 after 12 calls with a quota of 5 per minute"
    assert 5 <= ok <= 10, f"{ok} calls succeeded before the first 429 (quota 5/min)"
    assert err.resp.status == 429
    retry_after = err.resp.get("retry-after")
    assert retry_after is not None, f"429 without Retry-After: {dict(err.resp)}"
    assert 0 < int(retry_after) <= 60
    body = error_json(err)["error"]
    assert body["code"] == 429
    assert body["errors"][0]["reason"] in ("rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded")

    # People answers 429 in its own envelope once its quota is used up too.
    perr = None
    for _ in range(12):
        try:
            people.people().connections().list(resourceName="people/me", personFields="names").execute()
        except HttpError as e:
            perr = e
            break
    assert perr is not None and perr.resp.status == 429
    pbody = error_json(perr)["error"]
    assert pbody["status"] == "RESOURCE_EXHAUSTED"
    assert perr.resp.get("retry-after")

    stats = emu.control("GET", "stats")
    assert stats.get("rate_limited", 0) >= 2, f"stats do not count the 429s: {json.dumps(stats)[:800]}"

    # Lifting the quota takes effect at once.
    emu.control("PUT", "faults", NO_FAULTS)
    assert svc.users().get(userKey=ADMIN).execute()["primaryEmail"] == ADMIN


def test_quota_is_per_user(private_emulator):
    emu = private_emulator()
    members = [
        u["primaryEmail"]
        for u in emu.directory().users().list(customer="my_customer", maxResults=500).execute()["users"]
        if not (u.get("isAdmin") or u.get("suspended") or u.get("archived"))
    ]
    a, b = emu.people(members[0]), emu.people(members[1])
    a.people().connections().list(resourceName="people/me", personFields="names").execute()
    b.people().connections().list(resourceName="people/me", personFields="names").execute()
    emu.control("PUT", "faults", {**NO_FAULTS, "quota_per_user_per_minute": 3})
    with pytest.raises(HttpError) as ei:
        for _ in range(10):
            a.people().connections().list(resourceName="people/me", personFields="names").execute()
    assert ei.value.resp.status == 429
    # Another user is not throttled by the first one's calls.
    b.people().connections().list(resourceName="people/me", personFields="names").execute()


def test_client_retries_ride_out_a_quota_429(private_emulator):
    # The client's num_retries covers 429: with the quota lifted in between, the retry lands.
    emu = private_emulator()
    svc = emu.directory()
    svc.users().get(userKey=ADMIN).execute()
    emu.control("PUT", "faults", {**NO_FAULTS, "quota_per_user_per_minute": 1})
    with pytest.raises(HttpError):
        for _ in range(5):
            svc.users().get(userKey=ADMIN).execute()
    req = svc.users().get(userKey=ADMIN)

    def sleep_then_lift(seconds):
        emu.control("PUT", "faults", NO_FAULTS)

    req._sleep = sleep_then_lift
    assert req.execute(num_retries=2)["primaryEmail"] == ADMIN


# --- injected errors and latency -----------------------------------------------------------


def test_injected_errors_are_retryable_5xx_and_num_retries_rides_them_out(private_emulator):
    emu = private_emulator()
    svc = emu.directory()
    svc.users().get(userKey=ADMIN).execute()

    emu.control("PUT", "faults", {**NO_FAULTS, "error_rate": 1.0})
    failures = []
    for _ in range(5):
        try:
            svc.users().get(userKey=ADMIN).execute()
            failures.append(None)
        except HttpError as e:
            failures.append(e.resp.status)
        except (ConnectionError, httplib2.HttpLib2Error, OSError) as e:
            failures.append(type(e).__name__)
    assert None not in failures, f"error_rate=1.0 let a call through: {failures}"
    statuses = [f for f in failures if isinstance(f, int)]
    assert all(s >= 500 for s in statuses), failures

    emu.control("PUT", "faults", {**NO_FAULTS, "error_rate": 0.25})
    for _ in range(20):
        got = fast_retries(svc.users().get(userKey=ADMIN)).execute(num_retries=8)
        assert got["primaryEmail"] == ADMIN
    emu.control("PUT", "faults", NO_FAULTS)

    stats = emu.control("GET", "stats")
    injected = stats.get("errors_injected")
    assert injected is not None, f"stats have no errors_injected: {json.dumps(stats)[:800]}"
    assert _has_positive_number(injected), f"stats count no injected errors: {injected}"


def test_injected_backend_error_body_is_googles(private_emulator):
    emu = private_emulator()
    svc = emu.directory()
    svc.users().get(userKey=ADMIN).execute()
    emu.control("PUT", "faults", {**NO_FAULTS, "error_rate": 1.0})
    seen = None
    for _ in range(30):
        try:
            svc.users().get(userKey=ADMIN).execute()
        except HttpError as e:
            if e.resp.status == 503:
                seen = e
                break
        except (ConnectionError, httplib2.HttpLib2Error, OSError):
            pass
    emu.control("PUT", "faults", NO_FAULTS)
    assert seen is not None, "30 injected errors and not one 503"
    e = error_json(seen)["error"]
    assert e["code"] == 503
    assert e["errors"][0]["reason"] == "backendError"


def test_latency_is_injected_and_removable(private_emulator):
    emu = private_emulator()
    svc = emu.directory()
    svc.users().get(userKey=ADMIN).execute()
    emu.control("PUT", "faults", {**NO_FAULTS, "latency_ms": 400})
    t0 = time.monotonic()
    svc.users().get(userKey=ADMIN).execute()
    slow = time.monotonic() - t0
    emu.control("PUT", "faults", NO_FAULTS)
    t0 = time.monotonic()
    svc.users().get(userKey=ADMIN).execute()
    fast = time.monotonic() - t0
    assert slow >= 0.4, slow
    assert fast < 0.3, fast


def _has_positive_number(obj) -> bool:
    if isinstance(obj, bool):
        return False
    if isinstance(obj, (int, float)):
        return obj > 0
    if isinstance(obj, dict):
        return any(_has_positive_number(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_positive_number(v) for v in obj)
    return False


# --- the clock: token expiry and sync-token expiry -------------------------------------------


def full_sync(svc, **extra):
    people = []
    req = svc.people().connections().list(
        resourceName="people/me", personFields="names,metadata", pageSize=100, requestSyncToken=True, **extra
    )
    last = None
    while req is not None:
        last = req.execute()
        people.extend(last.get("connections", []))
        req = svc.people().connections().list_next(req, last)
    return people, last.get("nextSyncToken")


def test_expired_access_token_is_401_and_google_auth_refreshes(private_emulator):
    emu = private_emulator()
    svc = emu.directory()
    svc.users().get(userKey=ADMIN).execute()
    creds = svc._http.credentials
    first = creds.token
    assert first

    emu.control("POST", "clock/advance", {"seconds": 2 * 3600})
    # The old token is now expired for the emulator: a raw call gets 401...
    resp, _ = httplib2.Http(timeout=30).request(
        f"{emu.base_url}/admin/directory/v1/users/{ADMIN}?alt=json",
        "GET",
        headers={"Authorization": f"Bearer {first}"},
    )
    assert resp.status == 401
    # ...and the client, seeing 401, refreshes with a new JWT and retries transparently.
    assert svc.users().get(userKey=ADMIN).execute()["primaryEmail"] == ADMIN
    assert creds.token and creds.token != first


def test_sync_token_expires_seven_days_after_the_full_sync(private_emulator):
    emu = private_emulator()
    member = a_member(emu)
    svc = emu.people(member)
    _, token = full_sync(svc)
    assert token

    emu.control("POST", "clock/advance", {"seconds": 6 * DAY})
    c = svc.people().createContact(body={"names": [{"givenName": "Six Days"}]}, personFields="names").execute()
    changed, _ = full_sync(svc, syncToken=token)
    assert [p["resourceName"] for p in changed] == [c["resourceName"]], "a 6-day-old token still works"

    emu.control("POST", "clock/advance", {"seconds": 2 * DAY})
    with pytest.raises(HttpError) as ei:
        full_sync(svc, syncToken=token)
    assert ei.value.resp.status == 400
    content = ei.value.content.decode()
    assert "EXPIRED_SYNC_TOKEN" in content, content
    err = error_json(ei.value)["error"]
    assert err["status"] in ("INVALID_ARGUMENT", "FAILED_PRECONDITION")
    reasons = [d.get("reason") for d in err.get("details", [])]
    assert "EXPIRED_SYNC_TOKEN" in reasons, err

    # Recovery as documented: a full sync without the token, which yields a fresh token.
    people, fresh = full_sync(svc)
    assert fresh and fresh != token
    assert c["resourceName"] in {p["resourceName"] for p in people}
    assert full_sync(svc, syncToken=fresh)[0] == []


def test_garbage_sync_token_is_400_not_500(private_emulator):
    emu = private_emulator()
    svc = emu.people(a_member(emu))
    with pytest.raises(HttpError) as ei:
        full_sync(svc, syncToken="not-a-real-sync-token")
    assert ei.value.resp.status == 400
    assert error_json(ei.value)["error"]["status"]


# --- a disabled API ---------------------------------------------------------------


def test_a_disabled_api_answers_403_access_not_configured_with_the_activation_link(private_emulator):
    emu = private_emulator()
    member = a_member(emu)
    emu.control("PUT", "apis", {"disabled": ["people"]})
    people = emu.people(member)
    with pytest.raises(HttpError) as ei:
        people.people().connections().list(resourceName="people/me", personFields="names").execute()
    err = ei.value
    assert err.resp.status == 403
    # Google's client logs the legacy reason and exposes the rpc details.
    assert err.reason.startswith("People API has not been used in project")
    assert err.error_details[0]["reason"] == "SERVICE_DISABLED"
    body = error_json(err)["error"]
    assert body["errors"][0]["reason"] == "accessNotConfigured"
    assert body["status"] == "PERMISSION_DENIED"
    info = next(d for d in body["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["reason"] == "SERVICE_DISABLED"
    assert info["metadata"]["service"] == "people.googleapis.com"
    assert "people.googleapis.com/overview?project=" in info["metadata"]["activationUrl"]
    # Only that API is off: the Directory still answers, and enabling People restores it.
    emu.directory().users().get(userKey=ADMIN).execute()
    assert emu.control("GET", "apis") == {"disabled": ["people"]}
    emu.control("PUT", "apis", {"disabled": []})
    people.people().connections().list(resourceName="people/me", personFields="names").execute()
