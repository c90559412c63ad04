"""Photos through google-api-python-client: Directory `users.photos` (get, update,
patch, delete) and People `updateContactPhoto` / `deleteContactPhoto`.

A private emulator keeps the photo writes away from the session-wide org."""

import base64
import struct
import urllib.error
import urllib.request
import zlib

import pytest
from googleapiclient.errors import HttpError

from conftest import error_json


def tiny_png(rgb=(200, 30, 30), size=4) -> bytes:
    """A valid size x size RGB PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def web_safe_decode(data: str) -> bytes:
    """Directory's photoData: web-safe base64, padding `=`, `*`, `.` or none."""
    data = data.rstrip("=*.")
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def a_member(emu) -> str:
    users = emu.directory().users().list(customer="my_customer", maxResults=500).execute()["users"]
    return next(
        u["primaryEmail"]
        for u in users
        if not (u.get("isAdmin") or u.get("suspended") or u.get("archived"))
    )


def test_directory_users_photos_get_update_patch_delete(private_emulator):
    emu = private_emulator()
    svc = emu.directory()
    member = a_member(emu)
    photos = svc.users().photos()

    with pytest.raises(HttpError) as ei:
        photos.get(userKey=member).execute()
    assert ei.value.resp.status == 404
    assert error_json(ei.value)["error"]["errors"][0]["reason"] == "notFound"

    png = tiny_png()
    body = {"photoData": base64.urlsafe_b64encode(png).decode(), "mimeType": "PNG"}
    put = photos.update(userKey=member, body=body).execute()
    assert put["kind"] == "admin#directory#user#photo"
    assert put["primaryEmail"] == member
    assert put["mimeType"] == "image/png"
    assert (put["width"], put["height"]) == (4, 4)

    got = photos.get(userKey=member).execute()
    assert got["etag"] == put["etag"]
    assert web_safe_decode(got["photoData"]) == png

    user = svc.users().get(userKey=member).execute()
    assert user["thumbnailPhotoEtag"] == got["etag"]
    assert fetch(user["thumbnailPhotoUrl"]) == (200, png)

    # patch with new data replaces the photo (new etag); the old URL stops serving.
    png2 = tiny_png((10, 120, 200))
    patched = photos.patch(
        userKey=member, body={"photoData": base64.urlsafe_b64encode(png2).decode()}
    ).execute()
    assert patched["etag"] != got["etag"]
    assert web_safe_decode(photos.get(userKey=member).execute()["photoData"]) == png2
    assert fetch(user["thumbnailPhotoUrl"])[0] == 404

    # Not an image: 400 in the legacy envelope.
    with pytest.raises(HttpError) as ei:
        photos.update(
            userKey=member, body={"photoData": base64.urlsafe_b64encode(b"text").decode()}
        ).execute()
    assert ei.value.resp.status == 400

    photos.delete(userKey=member).execute()
    with pytest.raises(HttpError) as ei:
        photos.get(userKey=member).execute()
    assert ei.value.resp.status == 404
    assert "thumbnailPhotoEtag" not in svc.users().get(userKey=member).execute()


def test_people_update_and_delete_contact_photo(private_emulator):
    emu = private_emulator()
    member = a_member(emu)
    people = emu.people(member).people()

    created = people.createContact(
        body={"names": [{"givenName": "Photo", "familyName": "Conformance"}]},
        personFields="names,photos",
    ).execute()
    name = created["resourceName"]
    assert created["photos"][0]["default"] is True

    full = people.connections().list(
        resourceName="people/me", personFields="names,photos", requestSyncToken=True
    ).execute()
    token = full["nextSyncToken"]

    png = tiny_png()
    resp = people.updateContactPhoto(
        resourceName=name,
        body={"photoBytes": base64.b64encode(png).decode(), "personFields": "photos,metadata"},
    ).execute()
    person = resp["person"]
    assert person["etag"] != created["etag"]
    photo = person["photos"][0]
    assert "default" not in photo
    assert photo["metadata"]["source"]["type"] == "CONTACT"
    assert fetch(photo["url"]) == (200, png)

    # Without personFields the read-back is skipped.
    assert people.updateContactPhoto(
        resourceName=name, body={"photoBytes": base64.b64encode(png).decode()}
    ).execute() == {}

    listed = people.connections().list(resourceName="people/me", personFields="photos").execute()
    mine = [p for p in listed["connections"] if p["resourceName"] == name]
    assert "default" not in mine[0]["photos"][0]

    changed = people.connections().list(
        resourceName="people/me",
        personFields="names,photos",
        requestSyncToken=True,
        syncToken=token,
    ).execute()
    assert [p["resourceName"] for p in changed["connections"]] == [name]

    with pytest.raises(HttpError) as ei:
        people.updateContactPhoto(
            resourceName=name, body={"photoBytes": base64.b64encode(b"no image").decode()}
        ).execute()
    assert ei.value.resp.status == 400
    assert error_json(ei.value)["error"]["status"] == "INVALID_ARGUMENT"

    deleted = people.deleteContactPhoto(resourceName=name, personFields="photos").execute()
    assert deleted["person"]["photos"][0]["default"] is True
