"""Admin SDK Directory v1 through google-api-python-client, pointed at the emulator with
`client_options={"api_endpoint": ...}`.

Users created here are named `conf-…@example.com` so that tests counting the generated
org can leave them out whatever order the tests run in."""

import json

import pytest
from googleapiclient.errors import HttpError

from conftest import ADMIN, DOMAIN, ORG_USERS, SCOPE, error_json, list_all_users, unique

PASSWORD = "correct-horse-battery-staple"


def generated(users):
    return [u for u in users if not u["primaryEmail"].startswith("conf-")]


def new_user_body(**extra):
    local = unique("conf")
    body = {
        "primaryEmail": f"{local}@{DOMAIN}",
        "name": {"givenName": "Conformance", "familyName": local.title()},
        "password": PASSWORD,
        "phones": [{"value": "+1 555 0100", "type": "work"}, {"value": "+1 555 0199", "type": "mobile"}],
        "orgUnitPath": "/",
    }
    body.update(extra)
    return body


def assert_legacy_error(err, code, reason=None):
    assert err.resp.status == code, f"expected HTTP {code}, got {err.resp.status}: {err.content[:400]!r}"
    body = error_json(err)
    e = body["error"]
    assert e["code"] == code
    assert isinstance(e["message"], str) and e["message"]
    assert isinstance(e["errors"], list) and e["errors"], body
    assert "reason" in e["errors"][0] and "message" in e["errors"][0]
    if reason is not None:
        assert e["errors"][0]["reason"] == reason, body
    return e


# --- users.list ----------------------------------------------------------------------


def test_list_pages_through_the_whole_org_sorted_without_duplicates(org_users):
    users = generated(org_users)
    emails = [u["primaryEmail"] for u in users]
    # The generated org: ORG_USERS users (the issue leaves open whether admin@ is one of
    # them or comes on top).
    assert len(emails) in (ORG_USERS, ORG_USERS + 1), len(emails)
    assert len(set(emails)) == len(emails), "duplicate users across pages"
    assert len({u["id"] for u in users}) == len(users), "duplicate ids"
    assert emails == sorted(emails, key=str.lower), "orderBy=email is not respected across pages"
    assert ADMIN in emails
    for u in users:
        assert u["kind"] == "admin#directory#user"
        assert u["primaryEmail"].endswith("@" + DOMAIN)
        assert u.get("etag")


def test_small_pages_give_the_same_users_as_one_big_page(directory, org_users):
    small = generated(list_all_users(directory, maxResults=50, orderBy="email"))
    big = generated(org_users)
    assert [u["id"] for u in small] == [u["id"] for u in big]


def test_small_page_size_is_honoured_and_last_page_has_no_token(directory):
    resp = directory.users().list(customer="my_customer", maxResults=7, orderBy="email").execute()
    assert len(resp["users"]) == 7
    assert resp.get("nextPageToken")
    req = directory.users().list(customer="my_customer", maxResults=500, orderBy="email")
    resp = req.execute()
    assert "nextPageToken" not in resp or not resp["nextPageToken"]
    assert directory.users().list_next(req, resp) is None


def test_list_by_domain_matches_my_customer(directory, org_users):
    by_domain = generated(list_all_users(directory, domain=DOMAIN, customer=None, maxResults=500, orderBy="email"))
    assert [u["id"] for u in by_domain] == [u["id"] for u in generated(org_users)]


def test_sort_order_descending(directory, org_users):
    desc = generated(
        list_all_users(directory, maxResults=500, orderBy="email", sortOrder="DESCENDING")
    )
    assert [u["id"] for u in desc] == [u["id"] for u in reversed(generated(org_users))]


def test_query_is_suspended_false(directory, org_users):
    users = generated(org_users)
    suspended = {u["id"] for u in users if u.get("suspended")}
    assert suspended, "the generated org should have a few suspended users"
    active = generated(list_all_users(directory, maxResults=500, query="isSuspended=false"))
    assert active, "no users match isSuspended=false"
    assert all(not u.get("suspended") for u in active)
    assert {u["id"] for u in active} == {u["id"] for u in users} - suspended


def test_query_is_suspended_true(directory, org_users):
    want = {u["id"] for u in generated(org_users) if u.get("suspended")}
    got = {u["id"] for u in generated(list_all_users(directory, maxResults=500, query="isSuspended=true"))}
    assert got == want


def test_query_org_unit_path_matches_the_subtree(directory, org_users):
    users = generated(org_users)
    tops = {}
    for u in users:
        path = u.get("orgUnitPath", "/")
        if path != "/":
            top = "/" + path.strip("/").split("/")[0]
            tops[top] = tops.get(top, 0) + 1
    assert len(tops) >= 2, f"the generated org should have several org units, saw {tops}"
    ou = "/Engineering" if "/Engineering" in tops else max(tops, key=tops.get)
    want = {u["id"] for u in users if u.get("orgUnitPath") == ou or u.get("orgUnitPath", "").startswith(ou + "/")}
    quoted = ou.replace("'", "\\'")
    got = generated(list_all_users(directory, maxResults=500, query=f"orgUnitPath='{quoted}'"))
    assert {u["id"] for u in got} == want
    assert 0 < len(want) < len(users)


def test_query_is_admin_true_includes_the_admin(directory):
    admins = list_all_users(directory, maxResults=500, query="isAdmin=true")
    assert ADMIN in {u["primaryEmail"] for u in admins}
    assert all(u.get("isAdmin") for u in admins)


def test_query_email_prefix(directory, org_users):
    some = [u for u in generated(org_users) if u["primaryEmail"] != ADMIN][0]
    prefix = some["primaryEmail"].split("@")[0][:3]
    got = list_all_users(directory, maxResults=500, query=f"email:{prefix}*")
    assert some["id"] in {u["id"] for u in got}
    assert all(
        u["primaryEmail"].lower().startswith(prefix.lower())
        or any(a.lower().startswith(prefix.lower()) for a in u.get("aliases", []))
        for u in got
    )


def test_query_given_and_family_name(directory, org_users):
    some = [u for u in generated(org_users) if u["primaryEmail"] != ADMIN][5]
    given, family = some["name"]["givenName"], some["name"]["familyName"]
    g = given.replace("'", "\\'")
    f = family.replace("'", "\\'")
    got = list_all_users(directory, maxResults=500, query=f"givenName='{g}' familyName='{f}'")
    assert some["id"] in {u["id"] for u in got}
    assert all(u["name"]["givenName"].lower() == given.lower() for u in got)
    assert all(u["name"]["familyName"].lower() == family.lower() for u in got)


def test_projection_full_returns_custom_schemas(directory, org_users):
    full = list_all_users(directory, maxResults=500, projection="full")
    assert any(u.get("customSchemas") for u in full), "the generated org has a custom schema with roles"
    basic = list_all_users(directory, maxResults=500, projection="basic")
    assert not any(u.get("customSchemas") for u in basic), "projection=basic must omit custom schemas"


# --- users.get and the user lifecycle -------------------------------------------------


def test_get_by_email_and_by_id(directory, org_users):
    some = generated(org_users)[3]
    by_email = directory.users().get(userKey=some["primaryEmail"]).execute()
    by_id = directory.users().get(userKey=some["id"]).execute()
    assert by_email["id"] == some["id"] == by_id["id"]
    assert by_email["primaryEmail"] == by_id["primaryEmail"] == some["primaryEmail"]


def test_get_unknown_user_is_404_with_googles_envelope(directory):
    with pytest.raises(HttpError) as ei:
        directory.users().get(userKey=f"no-such-user@{DOMAIN}").execute()
    e = assert_legacy_error(ei.value, 404, "notFound")
    assert e["message"] == "Resource Not Found: userKey"
    assert ei.value.reason == "Resource Not Found: userKey"


def test_user_lifecycle_insert_update_rename_delete_undelete(directory):
    users = directory.users()
    body = new_user_body()
    created = users.insert(body=body).execute()
    uid = created["id"]
    assert created["primaryEmail"] == body["primaryEmail"]
    assert "password" not in created
    assert created.get("etag")

    got = users.get(userKey=body["primaryEmail"]).execute()
    assert got["id"] == uid
    assert [p["value"] for p in got["phones"]] == ["+1 555 0100", "+1 555 0199"]
    etag1 = got["etag"]

    # update (PUT) has patch semantics: a name change keeps the phones.
    updated = users.update(userKey=uid, body={"name": {"givenName": "Renamed", "familyName": "Person"}}).execute()
    assert updated["name"]["givenName"] == "Renamed"
    got = users.get(userKey=uid).execute()
    assert got["name"]["givenName"] == "Renamed"
    assert got["name"]["familyName"] == "Person"
    assert [p["value"] for p in got["phones"]] == ["+1 555 0100", "+1 555 0199"]
    assert got["etag"] != etag1, "etag must change when the user changes"

    # patch too.
    patched = users.patch(userKey=uid, body={"orgUnitPath": "/"}).execute()
    assert patched["id"] == uid

    # Rename: the old address keeps working as an alias.
    old_email = body["primaryEmail"]
    new_email = f"{unique('conf')}@{DOMAIN}"
    users.update(userKey=uid, body={"primaryEmail": new_email}).execute()
    by_old = users.get(userKey=old_email).execute()
    assert by_old["id"] == uid
    assert by_old["primaryEmail"] == new_email
    assert users.get(userKey=new_email).execute()["id"] == uid

    # Delete: gone from get and from the default list, visible with showDeleted.
    assert users.delete(userKey=new_email).execute() in ("", None, {})
    with pytest.raises(HttpError) as ei:
        users.get(userKey=uid).execute()
    assert ei.value.resp.status == 404
    assert ei.value.reason == "Resource Not Found: userKey"
    live = list_all_users(directory, maxResults=500, query=f"email:{new_email.split('@')[0]}*")
    assert uid not in {u["id"] for u in live}
    deleted = list_all_users(directory, maxResults=500, showDeleted="true")
    assert uid in {u["id"] for u in deleted}, "showDeleted=true must list the deleted user"

    # Undelete by id.
    users.undelete(userKey=uid, body={"orgUnitPath": "/"}).execute()
    back = users.get(userKey=uid).execute()
    assert back["id"] == uid
    assert back["primaryEmail"] == new_email

    users.delete(userKey=uid).execute()


def test_insert_duplicate_is_409(directory):
    body = new_user_body()
    directory.users().insert(body=body).execute()
    try:
        with pytest.raises(HttpError) as ei:
            directory.users().insert(body=new_user_body(primaryEmail=body["primaryEmail"])).execute()
        assert_legacy_error(ei.value, 409, "duplicate")
    finally:
        directory.users().delete(userKey=body["primaryEmail"]).execute()


def test_insert_without_password_is_400(directory):
    body = new_user_body()
    del body["password"]
    with pytest.raises(HttpError) as ei:
        directory.users().insert(body=body).execute()
    assert_legacy_error(ei.value, 400)


def test_make_admin_lets_the_user_call_directory(emulator, directory):
    body = new_user_body()
    created = directory.users().insert(body=body).execute()
    try:
        before = emulator.directory(subject=body["primaryEmail"])
        with pytest.raises(HttpError) as ei:
            before.users().get(userKey=ADMIN).execute()
        assert ei.value.resp.status == 403

        directory.users().makeAdmin(userKey=created["id"], body={"status": True}).execute()
        assert directory.users().get(userKey=created["id"]).execute()["isAdmin"] is True
        after = emulator.directory(subject=body["primaryEmail"])
        assert after.users().get(userKey=ADMIN).execute()["primaryEmail"] == ADMIN
    finally:
        directory.users().delete(userKey=created["id"]).execute()


# --- bad input --------------------------------------------------------------------------


def test_garbage_page_token_is_400(directory):
    with pytest.raises(HttpError) as ei:
        directory.users().list(customer="my_customer", pageToken="garbage!!not-a-token").execute()
    assert_legacy_error(ei.value, 400)


def test_list_without_customer_or_domain_is_400(directory):
    with pytest.raises(HttpError) as ei:
        directory.users().list().execute()
    assert_legacy_error(ei.value, 400)


def test_non_numeric_max_results_is_400(directory):
    # The client refuses to send maxResults='abc' (it casts to int first), so send the
    # request it would have built, with the service's own authorized http.
    with pytest.raises(ValueError):
        directory.users().list(customer="my_customer", maxResults="abc")
    http = directory._http
    url = f"{directory._baseUrl.rstrip('/')}/admin/directory/v1/users?customer=my_customer&maxResults=abc&alt=json"
    resp, content = http.request(url, "GET")
    assert resp.status == 400, content
    body = json.loads(content)
    assert body["error"]["code"] == 400 and body["error"]["errors"]


def test_malformed_json_body_is_400(directory):
    http = directory._http
    url = f"{directory._baseUrl.rstrip('/')}/admin/directory/v1/users?alt=json"
    resp, content = http.request(
        url, "POST", body=b'{"primaryEmail": ', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400, content
    assert json.loads(content)["error"]["code"] == 400


def test_max_results_zero_is_not_a_server_error(directory):
    # Discovery says minimum 1; Google answers 400 (or clamps). Never a 5xx.
    try:
        resp = directory.users().list(customer="my_customer", maxResults=0).execute()
        assert isinstance(resp.get("users", []), list)
    except HttpError as e:
        assert_legacy_error(e, 400)


# --- groups and members -------------------------------------------------------------------


def all_pages(collection, method, **params):
    items_key = {"groups": "groups", "members": "members"}[method]
    out = []
    req = getattr(collection, "list")(**params)
    while req is not None:
        resp = req.execute()
        out.extend(resp.get(items_key, []))
        req = collection.list_next(req, resp)
    return out


def test_groups_list_and_members(directory):
    groups = all_pages(directory.groups(), "groups", customer="my_customer")
    assert groups, "the generated org has groups"
    for g in groups:
        assert g["kind"] == "admin#directory#group"
        assert g["email"].endswith("@" + DOMAIN)
        assert isinstance(g.get("directMembersCount", "0"), str), "int64 is a JSON string"
    g = max(groups, key=lambda g: int(g.get("directMembersCount", "0")))
    members = all_pages(directory.members(), "members", groupKey=g["email"])
    assert members
    assert len(members) == int(g["directMembersCount"])
    for m in members:
        assert m["kind"] == "admin#directory#member"
        assert m["type"] in ("USER", "GROUP", "CUSTOMER")
        assert m["role"] in ("OWNER", "MANAGER", "MEMBER")
    # groupKey may be the id too.
    by_id = all_pages(directory.members(), "members", groupKey=g["id"])
    assert {m["id"] for m in by_id} == {m["id"] for m in members}


def test_members_small_pages(directory):
    groups = all_pages(directory.groups(), "groups", customer="my_customer")
    g = max(groups, key=lambda g: int(g.get("directMembersCount", "0")))
    assert int(g["directMembersCount"]) > 3
    paged = all_pages(directory.members(), "members", groupKey=g["email"], maxResults=2)
    full = all_pages(directory.members(), "members", groupKey=g["email"])
    assert [m["id"] for m in paged] == [m["id"] for m in full]


def test_include_derived_membership_expands_nested_groups(directory):
    groups = all_pages(directory.groups(), "groups", customer="my_customer")
    nested = None
    for g in groups:
        direct = all_pages(directory.members(), "members", groupKey=g["email"])
        inner = [m for m in direct if m["type"] == "GROUP"]
        if inner:
            nested = (g, direct, inner)
            break
    assert nested, "the generated org should have a group that contains another group"
    g, direct, inner = nested
    derived = all_pages(directory.members(), "members", groupKey=g["email"], includeDerivedMembership=True)
    derived_ids = {m["id"] for m in derived}
    for m in direct:
        if m["type"] == "USER":
            assert m["id"] in derived_ids
    for ig in inner:
        for m in all_pages(directory.members(), "members", groupKey=ig["email"]):
            if m["type"] == "USER":
                assert m["id"] in derived_ids, f"{m['email']} of nested {ig['email']} missing"
    assert len(derived_ids) > len([m for m in direct if m["type"] == "USER"])


def test_unknown_group_is_404(directory):
    with pytest.raises(HttpError) as ei:
        directory.members().list(groupKey=f"no-such-group@{DOMAIN}").execute()
    assert_legacy_error(ei.value, 404, "notFound")


def test_standard_query_parameters_are_accepted(directory):
    # Every Google method takes fields, quotaUser and prettyPrint (discovery `parameters`);
    # the server may implement or ignore them, but must not refuse them.
    got = directory.users().get(
        userKey=ADMIN, fields="id,primaryEmail", quotaUser="conformance", prettyPrint=False
    ).execute()
    assert got["primaryEmail"] == ADMIN and got["id"]
    resp = directory.users().list(
        customer="my_customer", maxResults=3, fields="users(id,primaryEmail),nextPageToken"
    ).execute()
    assert len(resp["users"]) == 3 and all(u.get("primaryEmail") for u in resp["users"])


def test_fields_returns_a_partial_response(directory):
    # https://developers.google.com/admin-sdk/directory/v1/guides/performance#partial-response
    got = directory.users().get(userKey=ADMIN, fields="id,name/fullName").execute()
    assert set(got) == {"id", "name"} and set(got["name"]) == {"fullName"}
    resp = directory.users().list(
        customer="my_customer", maxResults=3, fields="users(id,primaryEmail),nextPageToken"
    ).execute()
    assert set(resp) == {"users", "nextPageToken"}
    assert all(set(u) == {"id", "primaryEmail"} for u in resp["users"])
    # The token still pages: the next page comes back cut the same way.
    more = directory.users().list(
        customer="my_customer", maxResults=3, pageToken=resp["nextPageToken"],
        fields="users(primaryEmail),nextPageToken",
    ).execute()
    assert all(set(u) == {"primaryEmail"} for u in more["users"])
    assert {u["primaryEmail"] for u in more["users"]}.isdisjoint(
        u["primaryEmail"] for u in resp["users"]
    )


def test_an_unparsable_fields_selection_is_a_400(directory):
    with pytest.raises(HttpError) as ei:
        directory.users().list(customer="my_customer", fields="users(id").execute()
    assert ei.value.resp.status == 400
    assert "Invalid field selection" in str(ei.value)


# --- resources.calendars (meeting rooms) ---------------------------------------------


def test_calendar_resources_list_page_get_insert_and_delete_as_google_shapes_them(private_emulator):
    emu = private_emulator(users=60)
    granted = emu.control("GET", "delegation")[0]["scopes"]
    emu.control("PUT", "delegation", {"scopes": granted + [SCOPE + "admin.directory.resource.calendar"]})
    svc = emu.directory(scopes=[SCOPE + "admin.directory.resource.calendar"])
    calendars = svc.resources().calendars()

    # Paging with list_next, as an integrator pages: every room once, in resourceId order.
    rooms, req, pages = [], calendars.list(customer="my_customer", maxResults=1), 0
    while req is not None:
        resp = req.execute()
        assert resp["kind"] == "admin#directory#resources#calendars#calendarResourcesList"
        rooms.extend(resp.get("items", []))
        pages += 1
        req = calendars.list_next(req, resp)
    assert len(rooms) >= 2 and pages == len(rooms), (len(rooms), pages)
    ids = [r["resourceId"] for r in rooms]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    room = rooms[0]
    assert room["kind"] == "admin#directory#resources#calendars#CalendarResource"
    assert room["resourceEmail"].endswith("@resource.calendar.google.com")
    assert room["resourceCategory"] == "CONFERENCE_ROOM"
    assert isinstance(room["capacity"], int)
    assert room["generatedResourceName"].endswith(f"{room['resourceName']} ({room['capacity']})")

    got = calendars.get(customer="my_customer", calendarResourceId=room["resourceId"]).execute()
    assert got == room

    # orderBy and query, as the reference describes them.
    by_capacity = calendars.list(customer="my_customer", orderBy="capacity desc").execute()["items"]
    caps = [r["capacity"] for r in by_capacity]
    assert caps == sorted(caps, reverse=True)
    hq = calendars.list(customer="my_customer", query="buildingId=HQ").execute()["items"]
    assert hq and all(r["buildingId"] == "HQ" for r in hq)
    with pytest.raises(HttpError) as bad:
        calendars.list(customer="my_customer", query="nonsense=1").execute()
    assert_legacy_error(bad.value, 400)

    made = calendars.insert(
        customer="my_customer",
        body={"resourceId": "conf-room-1", "resourceName": "Conformance", "capacity": 5, "buildingId": "HQ", "floorName": "3"},
    ).execute()
    assert made["resourceEmail"].endswith("@resource.calendar.google.com")
    assert made["generatedResourceName"] == "HQ-3-Conformance (5)"
    with pytest.raises(HttpError) as dup:
        calendars.insert(customer="my_customer", body={"resourceId": "conf-room-1", "resourceName": "Again"}).execute()
    assert_legacy_error(dup.value, 409, "duplicate")
    with pytest.raises(HttpError) as missing:
        calendars.insert(customer="my_customer", body={"resourceName": "No id"}).execute()
    assert_legacy_error(missing.value, 400)
    calendars.delete(customer="my_customer", calendarResourceId="conf-room-1").execute()
    with pytest.raises(HttpError) as gone:
        calendars.get(customer="my_customer", calendarResourceId="conf-room-1").execute()
    assert_legacy_error(gone.value, 404)

    # The read scope alone reads; writing needs the full scope.
    ro = emu.directory(scopes=[SCOPE + "admin.directory.resource.calendar.readonly"])
    emu.control("PUT", "delegation", {"scopes": granted + [SCOPE + "admin.directory.resource.calendar.readonly"]})
    assert ro.resources().calendars().list(customer="my_customer").execute()["items"]


def test_schemas_list_get_insert_and_delete_as_google_shapes_them(private_emulator):
    emu = private_emulator(users=8)
    granted = emu.control("GET", "delegation")[0]["scopes"]
    emu.control("PUT", "delegation", {"scopes": granted + [SCOPE + "admin.directory.userschema"]})
    schemas = emu.directory(scopes=[SCOPE + "admin.directory.userschema"]).schemas()

    # The generated org defines the schemas its users carry.
    listed = schemas.list(customerId="my_customer").execute()
    assert listed["kind"] == "admin#directory#schemas"
    names = sorted(s["schemaName"] for s in listed["schemas"])
    assert names == ["EmployeeInfo", "Roles"], names
    roles = next(s for s in listed["schemas"] if s["schemaName"] == "Roles")
    assert roles["kind"] == "admin#directory#schema" and roles["schemaId"]
    assert {f["fieldName"]: f["fieldType"] for f in roles["fields"]} == {
        "admin": "BOOL", "billing": "BOOL", "support": "BOOL"}
    assert all(f["kind"] == "admin#directory#schema#fieldspec" and f["fieldId"] for f in roles["fields"])
    # By name or by id.
    assert schemas.get(customerId="my_customer", schemaKey="Roles").execute() == roles
    assert schemas.get(customerId="my_customer", schemaKey=roles["schemaId"]).execute() == roles

    made = schemas.insert(customerId="my_customer", body={
        "schemaName": "Privacy",
        "fields": [{"fieldName": "HideFromContacts", "fieldType": "BOOL"}],
    }).execute()
    assert made["schemaId"] and made["fields"][0]["fieldId"]
    assert made["fields"][0]["readAccessType"] == "ALL_DOMAIN_USERS"
    with pytest.raises(HttpError) as dup:
        schemas.insert(customerId="my_customer", body={
            "schemaName": "Privacy", "fields": [{"fieldName": "x", "fieldType": "BOOL"}]}).execute()
    assert_legacy_error(dup.value, 409, "duplicate")
    with pytest.raises(HttpError) as bad_type:
        schemas.insert(customerId="my_customer", body={
            "schemaName": "Bad", "fields": [{"fieldName": "x", "fieldType": "TEXT"}]}).execute()
    assert_legacy_error(bad_type.value, 400)
    schemas.delete(customerId="my_customer", schemaKey="Privacy").execute()
    with pytest.raises(HttpError) as gone:
        schemas.get(customerId="my_customer", schemaKey="Privacy").execute()
    assert_legacy_error(gone.value, 404)

    # The read scope reads; it cannot write.
    emu.control("PUT", "delegation", {"scopes": granted + [SCOPE + "admin.directory.userschema.readonly"]})
    ro = emu.directory(scopes=[SCOPE + "admin.directory.userschema.readonly"]).schemas()
    assert ro.list(customerId="my_customer").execute()["schemas"]
    with pytest.raises(HttpError) as denied:
        ro.insert(customerId="my_customer", body={
            "schemaName": "Nope", "fields": [{"fieldName": "x", "fieldType": "BOOL"}]}).execute()
    assert denied.value.resp.status == 403
