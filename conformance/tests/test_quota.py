"""Google's quota model (`--quota-profile google`, `"quota_profile"` in the control API),
seen through Google's own client.

Google charges each method a cost per quota metric (a `batchCreateContacts` costs 6
critical reads and 6 critical writes, whatever its size) and enforces limits per user
and per project over sliding one-minute windows. A refused call is an HTTP 429 with
status RESOURCE_EXHAUSTED, the "Quota exceeded for quota metric …" message and an
ErrorInfo naming the metric and the limit's value, and it consumes nothing.

Each test runs its own emulator: quota windows are global to an instance."""

import re
import time

import pytest
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from conftest import ADMIN, SCOPE, error_json

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
QUOTA_MESSAGE = re.compile(
    r"^Quota exceeded for quota metric '(?P<metric>[^']+)' and limit '(?P<limit>[^']+)' "
    r"of service '(?P<service>[^']+)' for consumer 'project_number:\d+'\.$"
)
WRITES = "Critical write requests (Contact and Profile Updates)"
READS = "Critical read requests (Contact and Profile Reads)"


def members_of(emu):
    users = emu.directory().users().list(customer="my_customer", maxResults=500).execute()["users"]
    out = [
        u["primaryEmail"]
        for u in users
        if not (u.get("isAdmin") or u.get("suspended") or u.get("archived"))
    ]
    assert len(out) >= 3, f"need three ordinary members, got {out}"
    return out


def set_quota(emu, quota=None, profile=None, minute_secs=60):
    """Replace the fault settings with a quota model; windows and counters restart."""
    settings = {
        "latency_ms": 0,
        "error_rate": 0.0,
        "quota_profile": profile,
        "quota": quota or {},
        "quota_minute_secs": minute_secs,
    }
    emu.control("PUT", "faults", settings)
    emu.control("POST", "reset", {})


def batch(n, tag):
    return {
        "contacts": [{"contactPerson": {"names": [{"givenName": f"{tag}{i}"}]}} for i in range(n)],
        "readMask": "names",
    }


def list_page(svc):
    return svc.people().connections().list(resourceName="people/me", personFields="names").execute()


def refused(call) -> HttpError:
    with pytest.raises(HttpError) as ei:
        call()
    assert ei.value.resp.status == 429, f"expected a quota 429, got {ei.value.resp.status}: {ei.value.content!r}"
    return ei.value


def error_info(err: HttpError) -> dict:
    details = err.error_details
    assert isinstance(details, list) and details, f"no error details: {err.content!r}"
    infos = [d for d in details if d.get("@type") == ERROR_INFO]
    assert infos, f"no ErrorInfo in {details}"
    return infos[0]


def quota_stats(emu) -> dict:
    return emu.control("GET", "stats")["quota"]


# --- the 429 ----------------------------------------------------------------------------


def test_quota_429_is_googles_answer_as_the_client_sees_it(private_emulator):
    # Set from the command line: the google profile with one limit lowered.
    emu = private_emulator(
        users=6, extra_args=["--quota-profile", "google", "--quota", "people.write.user=12"]
    )
    svc = emu.people(members_of(emu)[0])
    list_page(svc)  # token fetched before the writes
    for i in range(2):  # a batch of 200 costs 6 writes: two fit in 12
        svc.people().batchCreateContacts(body=batch(200, f"b{i}-")).execute()
    err = refused(lambda: svc.people().batchCreateContacts(body=batch(1, "over")).execute())

    assert err.status_code == 429
    assert "retry-after" not in err.resp, f"a quota 429 carries no Retry-After: {dict(err.resp)}"
    m = QUOTA_MESSAGE.match(err.reason)
    assert m, f"not Google's quota message: {err.reason!r}"
    assert m["metric"] == WRITES
    assert m["limit"] == f"{WRITES} per minute per user"
    assert m["service"] == "people.googleapis.com"

    body = error_json(err)["error"]
    assert body["code"] == 429
    assert body["status"] == "RESOURCE_EXHAUSTED"
    assert body["message"] == err.reason
    info = error_info(err)
    assert info["reason"] == "RATE_LIMIT_EXCEEDED"
    assert info["domain"] == "googleapis.com"
    meta = info["metadata"]
    assert meta["quota_metric"] == "people.googleapis.com/critical_write_requests"
    assert meta["quota_limit"] == "CriticalWritesPerMinutePerProjectPerUser"
    assert meta["quota_limit_value"] == "12"
    assert meta["service"] == "people.googleapis.com"
    assert re.fullmatch(r"projects/\d+", meta["consumer"]), meta["consumer"]

    # The profile's other numbers are in force and reported.
    stats = quota_stats(emu)
    assert stats["people.write"]["limit_per_user"] == 12
    assert stats["people.write"]["limit_per_project"] == 3000
    assert stats["people.read"]["limit_per_user"] == 90
    assert stats["people.daily_write"]["limit_per_user"] == 100000
    assert stats["people.daily_write"]["units"] == 400, "one daily write per contact"
    assert stats["people.write"]["units"] == 12
    assert stats["people.write"]["rejected"] == 1


def test_directory_and_gmail_quota_429s_use_their_services_and_the_legacy_errors(private_emulator):
    emu = private_emulator(users=4)
    svc = emu.directory()
    svc.users().get(userKey=ADMIN).execute()
    set_quota(emu, {"directory.query.user": 2})
    svc.users().get(userKey=ADMIN).execute()
    svc.users().list(customer="my_customer", maxResults=10).execute()
    err = refused(lambda: svc.users().get(userKey=ADMIN).execute())
    assert "retry-after" not in err.resp
    m = QUOTA_MESSAGE.match(err.reason)
    assert m and m["service"] == "admin.googleapis.com", err.reason
    assert m["limit"] == "Queries per minute per user"
    body = error_json(err)["error"]
    assert body["status"] == "RESOURCE_EXHAUSTED"
    assert body["errors"][0]["reason"] == "userRateLimitExceeded"
    assert body["errors"][0]["domain"] == "usageLimits"
    assert error_info(err)["metadata"]["quota_limit_value"] == "2"

    # Gmail charges Google's units per method: messages.list 5, getProfile 1.
    gmail = build(
        "gmail",
        "v1",
        credentials=emu.credentials(ADMIN, [SCOPE + "gmail.readonly"]),
        client_options={"api_endpoint": emu.base_url},
        static_discovery=True,
    )
    gmail.users().getProfile(userId="me").execute()
    set_quota(emu, {"gmail.units.user": 7})
    gmail.users().messages().list(userId="me").execute()
    gmail.users().getProfile(userId="me").execute()
    gmail.users().getProfile(userId="me").execute()
    err = refused(lambda: gmail.users().getProfile(userId="me").execute())
    m = QUOTA_MESSAGE.match(err.reason)
    assert m and m["service"] == "gmail.googleapis.com", err.reason
    assert quota_stats(emu)["gmail.units"]["units"] == 7


# --- costs --------------------------------------------------------------------------------


def test_costs_batches_six_writes_singles_one_and_the_next_call_is_refused_at_the_limit(private_emulator):
    emu = private_emulator(users=6)
    svc = emu.people(members_of(emu)[0])
    list_page(svc)
    set_quota(emu, {"people.write.user": 30}, profile="google")
    for i in range(5):  # 5 batches of 6 writes: exactly the limit of 30
        svc.people().batchCreateContacts(body=batch(2, f"n{i}-")).execute()
    err = refused(lambda: svc.people().batchCreateContacts(body=batch(2, "sixth")).execute())
    assert QUOTA_MESSAGE.match(err.reason)["metric"] == WRITES
    stats = quota_stats(emu)
    assert stats["people.write"]["units"] == 30
    assert stats["people.read"]["units"] == 30
    assert stats["people.daily_write"]["units"] == 10
    assert stats["people.write"]["max_user_window_units"] == 30

    # One batch (6) and two single creates (1 each) fill a limit of 8 exactly.
    set_quota(emu, {"people.write.user": 8})
    svc.people().batchCreateContacts(body=batch(3, "mix")).execute()
    created = [
        svc.people().createContact(body={"names": [{"givenName": f"single{i}"}]}).execute()["resourceName"]
        for i in range(2)
    ]
    refused(lambda: svc.people().createContact(body={"names": [{"givenName": "ninth"}]}).execute())

    # A batch delete costs 10 "deletes and group writes", a single delete 1.
    set_quota(emu, {"people.delete_group_write.user": 11})
    svc.people().batchDeleteContacts(body={"resourceNames": [created[0]]}).execute()
    svc.people().deleteContact(resourceName=created[1]).execute()
    err = refused(lambda: svc.contactGroups().create(body={"contactGroup": {"name": "over"}}).execute())
    assert QUOTA_MESSAGE.match(err.reason)["metric"] == "Write requests (Contact Deletes and Contact Group Writes)"
    assert quota_stats(emu)["people.delete_group_write"]["units"] == 11


def test_a_refused_call_consumes_nothing(private_emulator):
    emu = private_emulator(users=6)
    svc = emu.people(members_of(emu)[0])
    list_page(svc)
    # A batch costs 6 reads and 6 writes. After one, a second fits the reads (12) but
    # not the writes (6): it is refused, and must not have charged its 6 reads.
    set_quota(emu, {"people.read.user": 12, "people.write.user": 6})
    svc.people().batchCreateContacts(body=batch(2, "first")).execute()
    err = refused(lambda: svc.people().batchCreateContacts(body=batch(2, "second")).execute())
    assert QUOTA_MESSAGE.match(err.reason)["metric"] == WRITES
    for _ in range(6):  # reads left: 12 - 6 = 6
        list_page(svc)
    err = refused(lambda: list_page(svc))
    assert QUOTA_MESSAGE.match(err.reason)["metric"] == READS
    stats = quota_stats(emu)
    assert stats["people.read"]["units"] == 12
    assert stats["people.read"]["rejected"] == 1
    assert stats["people.write"]["units"] == 6
    assert stats["people.write"]["rejected"] == 1
    assert stats["people.daily_write"]["units"] == 2


# --- windows ----------------------------------------------------------------------------


def test_a_refused_call_succeeds_once_the_short_quota_minute_slides(private_emulator):
    emu = private_emulator(users=4, extra_args=["--quota-minute-secs", "1", "--quota", "people.read.user=3"])
    svc = emu.people(members_of(emu)[0])
    list_page(svc)
    emu.control("POST", "reset", {})
    # Three reads fit in any one-second window; call until one is refused (on a slow
    # machine the window may slide in between, so count rather than assume).
    ok, err = 0, None
    while err is None and ok < 50:
        try:
            list_page(svc)
            ok += 1
        except HttpError as e:
            err = e
    assert err is not None and err.resp.status == 429, f"no 429 after {ok} reads with a limit of 3 per second"
    assert ok >= 3
    assert quota_stats(emu)["people.read"]["max_user_window_units"] == 3
    time.sleep(1.1)
    list_page(svc)  # the window has slid: admitted again


def test_windows_slide_rather_than_reset_each_minute(private_emulator):
    emu = private_emulator(users=4)
    svc = emu.people(members_of(emu)[0])
    list_page(svc)
    set_quota(emu, {"people.read.user": 3})
    list_page(svc)  # t = 0
    emu.control("POST", "clock/advance", {"seconds": 30})
    list_page(svc)  # t = 30
    list_page(svc)  # t = 30
    refused(lambda: list_page(svc))
    emu.control("POST", "clock/advance", {"seconds": 30})
    # t = 60: only the call made at t = 0 has left the window; a minute that reset
    # would allow three.
    list_page(svc)
    refused(lambda: list_page(svc))
    emu.control("POST", "clock/advance", {"seconds": 30})
    list_page(svc)  # t = 90: the two from t = 30 have left
    list_page(svc)
    refused(lambda: list_page(svc))


def test_daily_contact_writes_reset_the_next_day(private_emulator):
    emu = private_emulator(users=4)
    svc = emu.people(members_of(emu)[0])
    list_page(svc)
    set_quota(emu, {"people.daily_write.user": 5})
    svc.people().batchCreateContacts(body=batch(3, "day1-")).execute()
    err = refused(lambda: svc.people().batchCreateContacts(body=batch(3, "day1b-")).execute())
    m = QUOTA_MESSAGE.match(err.reason)
    assert m["limit"] == "Daily contact writes per day per user", err.reason
    emu.control("POST", "clock/advance", {"seconds": 86400})
    svc.people().batchCreateContacts(body=batch(3, "day2-")).execute()


# --- per user and per project -------------------------------------------------------------


def test_per_user_and_per_project_limits(private_emulator):
    emu = private_emulator(users=8)
    a, b, c = (emu.people(m) for m in members_of(emu)[:3])
    for svc in (a, b, c):
        list_page(svc)
    set_quota(emu, {"people.read.user": 3, "people.read.project": 5})
    for _ in range(3):
        list_page(a)
    err = refused(lambda: list_page(a))
    assert QUOTA_MESSAGE.match(err.reason)["limit"] == f"{READS} per minute per user"
    assert error_info(err)["metadata"]["quota_limit"] == "CriticalReadsPerMinutePerProjectPerUser"

    # b has a user budget of its own, but the project has only 2 reads left.
    list_page(b)
    list_page(b)
    err = refused(lambda: list_page(b))
    assert QUOTA_MESSAGE.match(err.reason)["limit"] == f"{READS} per minute"
    meta = error_info(err)["metadata"]
    assert meta["quota_limit"] == "CriticalReadsPerMinutePerProject"
    assert meta["quota_limit_value"] == "5"
    refused(lambda: list_page(c))  # c has used nothing, but the project is spent

    s = quota_stats(emu)["people.read"]
    assert s["units"] == 5
    assert s["rejected_by_user_limit"] == 1
    assert s["rejected_by_project_limit"] == 2
    assert s["max_user_window_units"] == 3
    assert s["max_project_window_units"] == 5


def test_quota_settings_round_trip_and_bad_ones_are_400(private_emulator):
    emu = private_emulator(users=2)
    set_quota(emu, {"people.write.user": 10}, profile="google", minute_secs=2)
    got = emu.control("GET", "faults")
    assert got["quota_profile"] == "google"
    assert got["quota"] == {"people.write.user": 10}
    assert got["quota_minute_secs"] == 2
    with pytest.raises(AssertionError) as ei:
        emu.control("PUT", "faults", {"quota": {"people.writes.user": 10}})
    assert "400" in str(ei.value) and "people.writes.user" in str(ei.value)
    with pytest.raises(AssertionError) as ei:
        emu.control("PUT", "faults", {"quota_profile": "gogle"})
    assert "400" in str(ei.value)
