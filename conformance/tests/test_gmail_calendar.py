"""Gmail v1 and Calendar v3 through Google's client, pointed at the emulator with
`client_options={"api_endpoint": ...}`."""

import base64
from email.message import EmailMessage

import pytest
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from conftest import SCOPE, unique

GMAIL_SCOPES = [SCOPE + "gmail.send", SCOPE + "gmail.readonly"]
CALENDAR_SCOPES = [SCOPE + "calendar.readonly"]
CALENDAR_WRITE_SCOPES = [SCOPE + "calendar.events"]


def gmail(emulator, subject):
    return build(
        "gmail",
        "v1",
        credentials=emulator.credentials(subject, GMAIL_SCOPES),
        client_options={"api_endpoint": emulator.base_url},
        static_discovery=True,
    )


def calendar(emulator, subject, scopes=CALENDAR_SCOPES):
    # Calendar's servicePath is `calendar/v3/`, which api_endpoint replaces: pass it back.
    return build(
        "calendar",
        "v3",
        credentials=emulator.credentials(subject, scopes),
        client_options={"api_endpoint": emulator.base_url + "/calendar/v3/"},
        static_discovery=True,
    )


def test_gmail_send_raw_and_read_it_back(emulator, members):
    sender, to = members[0], members[1]
    subject = unique("Conformance")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Hello from google-api-python-client.\n")
    msg.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream", filename="a.bin")
    raw = base64.urlsafe_b64encode(msg.as_bytes()).decode()

    svc = gmail(emulator, sender)
    sent = svc.users().messages().send(userId="me", body={"raw": raw}).execute()
    assert sent["id"]
    assert "SENT" in sent.get("labelIds", [])

    got = svc.users().messages().get(userId="me", id=sent["id"], format="raw").execute()
    back = base64.urlsafe_b64decode(got["raw"] + "=" * (-len(got["raw"]) % 4))
    assert f"Subject: {subject}".encode() in back
    assert b"Hello from google-api-python-client." in back
    assert back.count(b"a.bin") >= 1

    meta = svc.users().messages().get(userId="me", id=sent["id"], format="metadata").execute()
    headers = {h["name"].lower(): h["value"] for h in meta["payload"]["headers"]}
    assert headers["subject"] == subject
    assert headers["to"] == to


def test_gmail_drafts_create_and_send(emulator, members):
    sender = members[2]
    msg = EmailMessage()
    msg["To"] = members[3]
    msg["Subject"] = unique("Draft")
    msg.set_content("draft body")
    raw = base64.urlsafe_b64encode(msg.as_bytes()).decode()
    svc = build(
        "gmail",
        "v1",
        credentials=emulator.credentials(sender, [SCOPE + "gmail.compose"]),
        client_options={"api_endpoint": emulator.base_url},
        static_discovery=True,
    )
    draft = svc.users().drafts().create(userId="me", body={"message": {"raw": raw}}).execute()
    assert draft["id"] and draft["message"]["id"]
    sent = svc.users().drafts().send(userId="me", body={"id": draft["id"]}).execute()
    assert sent["id"]


def test_gmail_unknown_message_is_404_legacy_envelope(emulator, members):
    svc = gmail(emulator, members[0])
    with pytest.raises(HttpError) as ei:
        svc.users().messages().get(userId="me", id="ffffffffffffffff").execute()
    assert ei.value.resp.status == 404
    assert ei.value.error_details and ei.value.error_details[0]["reason"] == "notFound"


# --- users.labels -----------------------------------------------------------------

SYSTEM_LABELS = {
    "INBOX", "SENT", "DRAFT", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT", "CHAT",
    "CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS", "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
}


def gmail_with(emulator, subject, scopes):
    return build(
        "gmail",
        "v1",
        credentials=emulator.credentials(subject, scopes),
        client_options={"api_endpoint": emulator.base_url},
        static_discovery=True,
    )


def send_text(svc, to, subject):
    msg = EmailMessage()
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("labels test body")
    raw = base64.urlsafe_b64encode(msg.as_bytes()).decode()
    return svc.users().messages().send(userId="me", body={"raw": raw}).execute()


def test_gmail_quickstart_lists_labels(emulator, members):
    # Google's Gmail Python quickstart, with its scope, against the emulator.
    service = gmail_with(emulator, members[6], [SCOPE + "gmail.readonly"])
    results = service.users().labels().list(userId="me").execute()
    labels = results.get("labels", [])
    assert SYSTEM_LABELS <= {label["name"] for label in labels}, labels
    for label in labels:
        assert label["type"] in ("system", "user"), label
        assert "messagesTotal" not in label, "list carries no counts"


def test_gmail_label_get_counts_a_delivered_message(emulator, members):
    sender, rcpt = members[6], members[7]
    reader = gmail_with(emulator, rcpt, [SCOPE + "gmail.readonly"])
    before = reader.users().labels().get(userId="me", id="INBOX").execute()
    send_text(gmail(emulator, sender), rcpt, unique("Counted"))
    after = reader.users().labels().get(userId="me", id="INBOX").execute()
    assert after["id"] == "INBOX" and after["type"] == "system"
    for field in ("messagesTotal", "messagesUnread", "threadsTotal", "threadsUnread"):
        assert after[field] == before[field] + 1, (field, before, after)
    sent = gmail(emulator, sender).users().labels().get(userId="me", id="SENT").execute()
    assert sent["messagesTotal"] >= 1


def test_gmail_user_label_create_patch_apply_delete(emulator, members):
    owner, sender = members[8], members[6]
    svc = gmail_with(emulator, owner, [SCOPE + "gmail.modify"])
    name = unique("Label")
    label = svc.users().labels().create(
        userId="me",
        body={"name": name, "labelListVisibility": "labelShow", "messageListVisibility": "show"},
    ).execute()
    assert label["id"].startswith("Label_") and label["type"] == "user"
    assert label["name"] == name

    with pytest.raises(HttpError) as ei:
        svc.users().labels().create(userId="me", body={"name": name.upper()}).execute()
    assert ei.value.resp.status == 409, ei.value
    assert "Label name exists or conflicts" in str(ei.value)

    renamed = name + "/sub"
    patched = svc.users().labels().patch(
        userId="me",
        id=label["id"],
        body={"name": renamed, "color": {"textColor": "#ffffff", "backgroundColor": "#16a766"}},
    ).execute()
    assert patched["name"] == renamed
    assert patched["labelListVisibility"] == "labelShow"
    assert patched["color"] == {"textColor": "#ffffff", "backgroundColor": "#16a766"}

    send_text(gmail(emulator, sender), owner, unique("Tagged"))
    mid = svc.users().messages().list(userId="me", maxResults=1).execute()["messages"][0]["id"]
    svc.users().messages().modify(userId="me", id=mid, body={"addLabelIds": [label["id"]]}).execute()
    got = svc.users().labels().get(userId="me", id=label["id"]).execute()
    assert got["messagesTotal"] == 1 and got["threadsTotal"] == 1, got

    svc.users().labels().delete(userId="me", id=label["id"]).execute()
    names = {l["name"] for l in svc.users().labels().list(userId="me").execute()["labels"]}
    assert renamed not in names
    msg = svc.users().messages().get(userId="me", id=mid, format="minimal").execute()
    assert label["id"] not in msg["labelIds"], msg
    with pytest.raises(HttpError) as ei:
        svc.users().labels().get(userId="me", id=label["id"]).execute()
    assert ei.value.resp.status == 404


def test_gmail_system_labels_are_protected(emulator, members):
    svc = gmail_with(emulator, members[8], [SCOPE + "gmail.modify"])
    with pytest.raises(HttpError) as ei:
        svc.users().labels().delete(userId="me", id="INBOX").execute()
    assert ei.value.resp.status == 400
    assert ei.value.reason == "Invalid delete request"
    with pytest.raises(HttpError) as ei:
        svc.users().labels().patch(userId="me", id="STARRED", body={"name": "Fav"}).execute()
    assert ei.value.resp.status == 400
    assert ei.value.reason == "Invalid update request"
    with pytest.raises(HttpError) as ei:
        svc.users().labels().create(userId="me", body={"name": "Inbox"}).execute()
    assert ei.value.resp.status == 409


def test_gmail_label_writes_need_a_label_scope(emulator, members):
    svc = gmail_with(emulator, members[8], [SCOPE + "gmail.readonly"])
    with pytest.raises(HttpError) as ei:
        svc.users().labels().create(userId="me", body={"name": unique("nope")}).execute()
    assert ei.value.resp.status == 403
    assert ei.value.error_details[0]["reason"] == "insufficientPermissions"


def test_calendar_events_list_single_events_ordered_by_start(emulator, members):
    # Seed the calendar through the client: a weekly series across Berlin's DST change
    # (29 March 2026), an all-day event and a one-off, inserted out of order.
    writer = calendar(emulator, members[0], CALENDAR_WRITE_SCOPES)
    tag = unique("agenda")
    series = writer.events().insert(calendarId="primary", body={
        "summary": f"{tag} weekly",
        "start": {"dateTime": "2026-03-16T10:00:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": "2026-03-16T10:30:00", "timeZone": "Europe/Berlin"},
        "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=4"],
    }).execute()
    writer.events().insert(calendarId="primary", body={
        "summary": f"{tag} one-off",
        "start": {"dateTime": "2026-03-25T12:00:00Z"}, "end": {"dateTime": "2026-03-25T13:00:00Z"},
    }).execute()
    writer.events().insert(calendarId="primary", body={
        "summary": f"{tag} all-day", "start": {"date": "2026-03-20"}, "end": {"date": "2026-03-21"},
    }).execute()

    svc = calendar(emulator, members[0])
    time_min = "2026-03-01T00:00:00+01:00"
    events, req = [], svc.events().list(
        calendarId="primary", singleEvents=True, orderBy="startTime", timeMin=time_min,
        timeMax="2026-05-01T00:00:00Z", timeZone="Europe/Berlin", q=tag, maxResults=2
    )
    while req is not None:
        resp = req.execute()
        assert resp["kind"] == "calendar#events"
        events.extend(resp.get("items", []))
        req = svc.events().list_next(req, resp)
    starts = [e["start"].get("dateTime") or e["start"].get("date") for e in events]
    assert starts == [
        "2026-03-16T10:00:00+01:00",
        "2026-03-20",
        "2026-03-23T10:00:00+01:00",
        "2026-03-25T13:00:00+01:00",
        "2026-03-30T10:00:00+02:00",
        "2026-04-06T10:00:00+02:00",
    ]
    weekly = [e for e in events if e.get("recurringEventId") == series["id"]]
    assert [e["id"] for e in weekly][2] == series["id"] + "_20260330T080000Z"


def test_calendar_order_by_start_time_requires_single_events(emulator, members):
    svc = calendar(emulator, members[0])
    with pytest.raises(HttpError) as ei:
        svc.events().list(calendarId="primary", orderBy="startTime").execute()
    assert ei.value.resp.status == 400
