"""OAuth: google-auth's service-account JWT-bearer grant against the emulator's /token,
domain-wide delegation, and how API calls check the bearer token
(https://developers.google.com/identity/protocols/oauth2/service-account)."""

import json
from pathlib import Path

import google_auth_httplib2
import googleapiclient
import httplib2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.errors import HttpError

from conftest import ADMIN, CONTACTS_SCOPES, DIRECTORY_SCOPES, SCOPE, error_json


def token_request():
    return google_auth_httplib2.Request(httplib2.Http(timeout=30))


def test_key_file_points_google_auth_at_the_emulator(emulator):
    info = json.loads(emulator.key_file.read_text())
    assert info["type"] == "service_account"
    assert info["token_uri"].startswith(emulator.base_url + "/"), info["token_uri"]
    assert info["private_key"].startswith("-----BEGIN ")
    assert info["client_email"] and info["client_id"] and info["private_key_id"]


def test_token_obtained_from_emulator_and_accepted_by_api(emulator):
    creds = emulator.credentials(ADMIN, DIRECTORY_SCOPES)
    assert creds.token is None
    creds.refresh(token_request())
    assert creds.token, "google-auth got no access token"
    assert creds.valid
    assert creds.expiry is not None

    svc = emulator.directory()
    me = svc.users().get(userKey=ADMIN).execute()
    assert me["primaryEmail"] == ADMIN
    assert me.get("isAdmin") is True
    # The service's credentials were refreshed transparently by the client.
    assert svc._http.credentials.token


def _key_with_foreign_private_key(emulator, tmp_path):
    """The emulator's key file (same client_email, same private_key_id) but signed
    by a key the emulator never issued."""
    info = json.loads(emulator.key_file.read_text())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(info))
    return path


def test_bad_signature_is_invalid_grant(emulator, tmp_path):
    forged = _key_with_foreign_private_key(emulator, tmp_path)
    creds = service_account.Credentials.from_service_account_file(
        str(forged), scopes=DIRECTORY_SCOPES, subject=ADMIN
    )
    with pytest.raises(RefreshError) as ei:
        creds.refresh(token_request())
    assert "invalid_grant" in str(ei.value), ei.value
    assert creds.token is None


def test_bad_signature_surfaces_as_refresh_error_from_api_call(emulator, tmp_path):
    forged = _key_with_foreign_private_key(emulator, tmp_path)
    creds = service_account.Credentials.from_service_account_file(
        str(forged), scopes=DIRECTORY_SCOPES, subject=ADMIN
    )
    from googleapiclient.discovery import build

    svc = build(
        "admin",
        "directory_v1",
        credentials=creds,
        client_options={"api_endpoint": emulator.base_url},
        static_discovery=True,
    )
    with pytest.raises(RefreshError) as ei:
        svc.users().get(userKey=ADMIN).execute()
    assert "invalid_grant" in str(ei.value)


def test_undelegated_scope_is_unauthorized_client(emulator):
    creds = emulator.credentials(ADMIN, [SCOPE + "admin.directory.orgunit"])
    with pytest.raises(RefreshError) as ei:
        creds.refresh(token_request())
    assert "unauthorized_client" in str(ei.value), ei.value


def test_one_undelegated_scope_among_delegated_ones_is_refused(emulator):
    creds = emulator.credentials(ADMIN, DIRECTORY_SCOPES + [SCOPE + "admin.directory.orgunit"])
    with pytest.raises(RefreshError) as ei:
        creds.refresh(token_request())
    msg = str(ei.value)
    assert "unauthorized_client" in msg or "access_denied" in msg, msg


@pytest.mark.parametrize(
    "scope",
    [
        SCOPE + "gmail.settings.sharing",
        SCOPE + "drive",
        SCOPE + "admin.directory.rolemanagement.readonly",
        SCOPE + "calendar.settings.readonly",
    ],
)
def test_undelegated_real_scope_is_unauthorized_client_not_invalid_scope(emulator, scope):
    creds = emulator.credentials(ADMIN, [scope])
    with pytest.raises(RefreshError) as ei:
        creds.refresh(token_request())
    assert "unauthorized_client" in str(ei.value), ei.value


def test_made_up_scope_is_invalid_scope(emulator):
    creds = emulator.credentials(ADMIN, [SCOPE + "gmail.bogus"])
    with pytest.raises(RefreshError) as ei:
        creds.refresh(token_request())
    assert "invalid_scope" in str(ei.value), ei.value


def _discovery_scopes(names=None) -> set[str]:
    """The `auth.oauth2.scopes` keys of the discovery documents the client ships."""
    docs = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
    files = [docs / f"{n}.json" for n in names] if names else sorted(docs.glob("*.json"))
    assert files and all(f.is_file() for f in files), docs
    scopes: set[str] = set()
    for f in files:
        doc = json.loads(f.read_text())
        scopes |= set(doc.get("auth", {}).get("oauth2", {}).get("scopes", {}))
    return scopes


def _grant_error(emulator, scopes) -> str:
    """The token endpoint's refusal for ADMIN and `scopes` ('' when a token is issued)."""
    try:
        emulator.credentials(ADMIN, sorted(scopes)).refresh(token_request())
    except RefreshError as e:
        return str(e)
    return ""


def test_every_scope_in_the_clients_discovery_documents_is_a_known_scope(emulator):
    """Each scope any Google API publishes is recognised: undelegated ones are
    unauthorized_client, never invalid_scope."""
    served = _discovery_scopes(["admin.directory_v1", "people.v1", "gmail.v1", "calendar.v3"])
    every = _discovery_scopes()
    assert served <= every and len(every) > 500, len(every)
    undelegated = every - set(emulator.control("GET", "delegation")[0]["scopes"])
    # One made-up scope among them makes the whole request invalid_scope, so a request
    # answered unauthorized_client had no unknown scope in it.
    bogus = _grant_error(emulator, undelegated | {SCOPE + "gmail.bogus"})
    assert "invalid_scope" in bogus, bogus
    got = _grant_error(emulator, undelegated)
    if "unauthorized_client" not in got:
        # Name the offenders, one request each.
        unknown = [s for s in sorted(undelegated) if "unauthorized_client" not in _grant_error(emulator, {s})]
        pytest.fail(f"{got}; not known as real scopes: {unknown[:20]}")


def test_unknown_subject_is_invalid_grant(emulator):
    creds = emulator.credentials("nobody-at-all@example.com", DIRECTORY_SCOPES)
    with pytest.raises(RefreshError) as ei:
        creds.refresh(token_request())
    assert "invalid_grant" in str(ei.value), ei.value


def test_non_admin_subject_gets_403_from_directory(emulator, members):
    svc = emulator.directory(subject=members[0])
    with pytest.raises(HttpError) as ei:
        svc.users().list(customer="my_customer").execute()
    assert ei.value.resp.status == 403, ei.value
    body = error_json(ei.value)
    assert body["error"]["code"] == 403
    assert body["error"]["errors"][0]["reason"] == "forbidden"
    assert "Not Authorized to access this resource/api" in body["error"]["message"]


def test_token_without_directory_scope_gets_403(emulator):
    # A contacts-only token for the admin: valid token, wrong scope.
    svc = emulator.directory(subject=ADMIN, scopes=CONTACTS_SCOPES)
    with pytest.raises(HttpError) as ei:
        svc.users().get(userKey=ADMIN).execute()
    assert ei.value.resp.status == 403, ei.value
    assert "error" in error_json(ei.value)


@pytest.mark.parametrize(
    "path",
    ["/admin/directory/v1/users?customer=my_customer&alt=json", "/v1/people/me/connections?personFields=names&alt=json"],
)
def test_missing_or_unknown_bearer_token_is_401(emulator, path):
    http = httplib2.Http(timeout=30)
    resp, content = http.request(emulator.base_url + path, "GET")
    assert resp.status == 401, content
    body = json.loads(content)
    assert body["error"]["code"] == 401

    resp, content = http.request(
        emulator.base_url + path, "GET", headers={"Authorization": "Bearer ya29.not-a-token"}
    )
    assert resp.status == 401, content
    assert json.loads(content)["error"]["code"] == 401


def test_revoked_token_on_a_large_post_is_refreshed_and_retried(emulator, members):
    # An access token the emulator does not know (revoked, or issued before a restart):
    # google-auth-httplib2 sees 401, refreshes on the same connection pool and retries.
    # The 401 must leave the keep-alive connection usable (or say `Connection: close`),
    # even when the server answers before reading a large request body.
    import datetime as dt

    svc = emulator.people(members[-4])
    creds = svc._http.credentials
    creds.token = "ya29.revoked-token-the-emulator-never-issued"
    creds.expiry = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(hours=1)
    contacts = [
        {"contactPerson": {"names": [{"givenName": f"Large{i:03d}", "familyName": "x" * 400}]}}
        for i in range(200)
    ]
    resp = svc.people().batchCreateContacts(body={"contacts": contacts, "readMask": "names"}).execute()
    assert len(resp["createdPeople"]) == 200
    assert creds.token != "ya29.revoked-token-the-emulator-never-issued"
