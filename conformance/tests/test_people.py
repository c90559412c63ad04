"""People v1 through google-api-python-client, impersonating ordinary members
(https://developers.google.com/people/v1/contacts). Each test works in its own
member's contacts, so tests do not see each other's writes."""

import pytest
from googleapiclient.errors import HttpError

from conftest import PERSONAL_CONTACTS, error_json, unique

READ = "names,emailAddresses,clientData,memberships,metadata"


@pytest.fixture
def member_people(emulator, members, request):
    """People service as a member no other test in this module uses."""
    names = [
        "test_connections_list_pages_and_returns_a_sync_token_on_the_last_page",
        "test_create_get_update_delete_contact",
        "test_stale_etag_is_failed_precondition",
        "test_batch_create_update_delete_and_batch_get",
        "test_batch_create_over_200_is_400",
        "test_incremental_sync_returns_exactly_the_changes",
        "test_contact_groups_crud_and_members_modify",
        "test_missing_person_fields_is_400",
        "test_people_error_envelope_has_status",
    ]
    idx = names.index(request.node.originalname)
    email = members[1 + idx]
    return email, emulator.people(email)


def person(given, family=None, email=None, marker=None):
    p = {"names": [{"givenName": given, "familyName": family or "Conformance"}]}
    if email:
        p["emailAddresses"] = [{"value": email, "type": "work"}]
    if marker:
        p["clientData"] = [{"key": "orgsync.source", "value": marker}]
    return p


def full_listing(svc, page_size=1000, fields=READ, **extra):
    """All connections via list_next, plus each page's tokens."""
    people, pages = [], []
    req = svc.people().connections().list(
        resourceName="people/me", personFields=fields, pageSize=page_size, **extra
    )
    while req is not None:
        resp = req.execute()
        pages.append(resp)
        people.extend(resp.get("connections", []))
        req = svc.people().connections().list_next(req, resp)
        assert len(pages) < 1000
    return people, pages


def test_connections_list_pages_and_returns_a_sync_token_on_the_last_page(member_people):
    _, svc = member_people
    # A few more contacts than fit in one page of 2.
    for i in range(3):
        svc.people().createContact(body=person(f"Paging{i}"), personFields="names").execute()
    people, pages = full_listing(svc, page_size=2, requestSyncToken=True)
    assert len(people) == PERSONAL_CONTACTS + 3
    assert len({p["resourceName"] for p in people}) == len(people), "duplicates across pages"
    assert len(pages) == (len(people) + 1) // 2
    for page in pages[:-1]:
        assert page.get("nextPageToken")
        assert "nextSyncToken" not in page, "nextSyncToken only on the last page"
    assert pages[-1].get("nextSyncToken")
    assert "nextPageToken" not in pages[-1]
    assert all(p["resourceName"].startswith("people/c") for p in people)
    assert all(p.get("etag") for p in people)
    assert pages[0].get("totalItems") == len(people)


def test_create_get_update_delete_contact(member_people):
    _, svc = member_people
    marker = unique("dir")
    created = svc.people().createContact(
        body=person("Ada", "Lovelace", "ada@example.org", marker), personFields=READ
    ).execute()
    rn = created["resourceName"]
    assert rn.startswith("people/c")
    assert created["names"][0]["givenName"] == "Ada"
    assert created["emailAddresses"][0]["value"] == "ada@example.org"
    assert {"key": "orgsync.source", "value": marker}.items() <= created["clientData"][0].items()
    groups = [m["contactGroupMembership"]["contactGroupResourceName"] for m in created["memberships"]]
    assert "contactGroups/myContacts" in groups, "a new contact lands in myContacts"

    got = svc.people().get(resourceName=rn, personFields=READ).execute()
    assert got["resourceName"] == rn and got["etag"] == created["etag"]

    body = {"etag": got["etag"], "names": [{"givenName": "Augusta Ada", "familyName": "King"}]}
    updated = svc.people().updateContact(
        resourceName=rn, updatePersonFields="names", personFields=READ, body=body
    ).execute()
    assert updated["names"][0]["givenName"] == "Augusta Ada"
    assert updated["emailAddresses"][0]["value"] == "ada@example.org", "fields outside the mask are kept"
    assert updated["etag"] != got["etag"]

    # Sequential updates use the etag of the previous response.
    again = svc.people().updateContact(
        resourceName=rn,
        updatePersonFields="emailAddresses",
        personFields=READ,
        body={"etag": updated["etag"], "emailAddresses": [{"value": "ada@example.net"}]},
    ).execute()
    assert [e["value"] for e in again["emailAddresses"]] == ["ada@example.net"]

    assert svc.people().deleteContact(resourceName=rn).execute() in ({}, "", None)
    with pytest.raises(HttpError) as ei:
        svc.people().get(resourceName=rn, personFields="names").execute()
    assert ei.value.resp.status == 404
    listed, _ = full_listing(svc)
    assert rn not in {p["resourceName"] for p in listed}


def test_stale_etag_is_failed_precondition(member_people):
    _, svc = member_people
    created = svc.people().createContact(body=person("Stale"), personFields="names").execute()
    rn, etag0 = created["resourceName"], created["etag"]
    svc.people().updateContact(
        resourceName=rn, updatePersonFields="names", body={"etag": etag0, "names": [{"givenName": "Fresh"}]}
    ).execute()
    with pytest.raises(HttpError) as ei:
        svc.people().updateContact(
            resourceName=rn, updatePersonFields="names", body={"etag": etag0, "names": [{"givenName": "Lost"}]}
        ).execute()
    assert ei.value.resp.status == 400
    content = ei.value.content.decode()
    assert "FAILED_PRECONDITION" in content or "failedPrecondition" in content, content
    assert error_json(ei.value)["error"]["status"] == "FAILED_PRECONDITION"
    # The write was refused.
    got = svc.people().get(resourceName=rn, personFields="names").execute()
    assert got["names"][0]["givenName"] == "Fresh"

    # No etag at all is refused too (metadata.sources/etag required).
    with pytest.raises(HttpError) as ei:
        svc.people().updateContact(
            resourceName=rn, updatePersonFields="names", body={"names": [{"givenName": "NoEtag"}]}
        ).execute()
    assert ei.value.resp.status == 400


def test_batch_create_update_delete_and_batch_get(member_people):
    _, svc = member_people
    contacts = [{"contactPerson": person(f"Batch{i:03d}", marker=f"m{i}")} for i in range(200)]
    resp = svc.people().batchCreateContacts(
        body={"contacts": contacts, "readMask": "names,clientData"}
    ).execute()
    created = resp["createdPeople"]
    assert len(created) == 200
    names = [c["person"]["resourceName"] for c in created]
    assert len(set(names)) == 200
    assert {c["person"]["names"][0]["givenName"] for c in created} == {f"Batch{i:03d}" for i in range(200)}

    # getBatchGet with repeated resourceNames.
    sample = names[:5]
    got = svc.people().getBatchGet(resourceNames=sample, personFields="names").execute()
    responses = got["responses"]
    assert [r["requestedResourceName"] for r in responses] == sample
    assert all(r["person"]["resourceName"] in sample for r in responses)
    etags = {r["person"]["resourceName"]: r["person"]["etag"] for r in responses}

    # batchUpdateContacts with an updateMask.
    upd = {
        rn: {"etag": etags[rn], "names": [{"givenName": f"Updated{i}", "familyName": "Batch"}]}
        for i, rn in enumerate(sample)
    }
    resp = svc.people().batchUpdateContacts(
        body={"contacts": upd, "updateMask": "names", "readMask": "names,clientData"}
    ).execute()
    result = resp["updateResult"]
    assert set(result) == set(sample)
    for i, rn in enumerate(sample):
        assert result[rn]["person"]["names"][0]["givenName"] == f"Updated{i}"
        assert result[rn]["person"]["clientData"], "clientData outside the mask is kept"

    # batchDeleteContacts.
    svc.people().batchDeleteContacts(body={"resourceNames": names[:150]}).execute()
    left, _ = full_listing(svc)
    left_names = {p["resourceName"] for p in left}
    assert not left_names & set(names[:150])
    assert set(names[150:]) <= left_names

    with pytest.raises(HttpError) as ei:
        svc.people().batchDeleteContacts(body={"resourceNames": [f"people/c{i}" for i in range(501)]}).execute()
    assert ei.value.resp.status == 400


def test_batch_create_over_200_is_400(member_people):
    _, svc = member_people
    contacts = [{"contactPerson": person(f"Over{i}")} for i in range(201)]
    with pytest.raises(HttpError) as ei:
        svc.people().batchCreateContacts(body={"contacts": contacts, "readMask": "names"}).execute()
    assert ei.value.resp.status == 400
    assert error_json(ei.value)["error"]["status"] == "INVALID_ARGUMENT"
    listed, _ = full_listing(svc)
    assert not any(p.get("names", [{}])[0].get("givenName", "").startswith("Over") for p in listed), (
        "a refused batch must create nothing"
    )


def test_incremental_sync_returns_exactly_the_changes(member_people):
    _, svc = member_people
    keep = svc.people().createContact(body=person("Keep"), personFields="names").execute()
    change = svc.people().createContact(body=person("Change"), personFields="names").execute()
    gone = svc.people().createContact(body=person("Gone"), personFields="names").execute()

    people, pages = full_listing(svc, page_size=3, requestSyncToken=True)
    token = pages[-1]["nextSyncToken"]
    assert {keep["resourceName"], change["resourceName"], gone["resourceName"]} <= {
        p["resourceName"] for p in people
    }

    # Nothing changed yet: an incremental sync is empty but still hands out a token.
    inc, inc_pages = full_listing(svc, page_size=3, requestSyncToken=True, syncToken=token)
    assert inc == []
    assert inc_pages[-1].get("nextSyncToken")

    added = svc.people().createContact(body=person("Added"), personFields="names").execute()
    svc.people().updateContact(
        resourceName=change["resourceName"],
        updatePersonFields="names",
        body={"etag": change["etag"], "names": [{"givenName": "Changed"}]},
    ).execute()
    svc.people().deleteContact(resourceName=gone["resourceName"]).execute()

    inc, inc_pages = full_listing(svc, page_size=3, requestSyncToken=True, syncToken=token)
    by_name = {p["resourceName"]: p for p in inc}
    assert set(by_name) == {added["resourceName"], change["resourceName"], gone["resourceName"]}
    assert by_name[gone["resourceName"]]["metadata"]["deleted"] is True
    assert not by_name[added["resourceName"]].get("metadata", {}).get("deleted")
    assert by_name[change["resourceName"]]["names"][0]["givenName"] == "Changed"
    new_token = inc_pages[-1]["nextSyncToken"]
    assert new_token

    # And from the new token, nothing again.
    inc2, _ = full_listing(svc, page_size=3, requestSyncToken=True, syncToken=new_token)
    assert inc2 == []


def test_contact_groups_crud_and_members_modify(member_people):
    _, svc = member_people
    cg = svc.contactGroups()
    name = unique("Directory")
    group = cg.create(body={"contactGroup": {"name": name}}).execute()
    rn = group["resourceName"]
    assert rn.startswith("contactGroups/")
    assert group["name"] == name
    assert group.get("groupType") == "USER_CONTACT_GROUP"

    listed = []
    req = cg.list(pageSize=1000)
    while req is not None:
        resp = req.execute()
        listed.extend(resp.get("contactGroups", []))
        req = cg.list_next(req, resp)
    by_rn = {g["resourceName"]: g for g in listed}
    assert rn in by_rn
    assert "contactGroups/myContacts" in by_rn
    assert by_rn["contactGroups/myContacts"]["groupType"] == "SYSTEM_CONTACT_GROUP"

    with pytest.raises(HttpError) as ei:
        cg.create(body={"contactGroup": {"name": name}}).execute()
    assert ei.value.resp.status == 409
    assert error_json(ei.value)["error"]["status"] == "ALREADY_EXISTS"

    got = cg.get(resourceName=rn).execute()
    renamed = cg.update(
        resourceName=rn, body={"contactGroup": {"name": name + " renamed", "etag": got["etag"]}}
    ).execute()
    assert renamed["name"] == name + " renamed"
    assert cg.get(resourceName=rn).execute()["name"] == name + " renamed"

    c = svc.people().createContact(body=person("Member"), personFields="names").execute()
    resp = cg.members().modify(resourceName=rn, body={"resourceNamesToAdd": [c["resourceName"], "people/c999999999"]}).execute()
    assert resp.get("notFoundResourceNames") == ["people/c999999999"]
    got = cg.get(resourceName=rn, maxMembers=100).execute()
    assert got["memberResourceNames"] == [c["resourceName"]]
    assert got["memberCount"] == 1
    p = svc.people().get(resourceName=c["resourceName"], personFields="memberships").execute()
    assert rn in [m["contactGroupMembership"]["contactGroupResourceName"] for m in p["memberships"]]

    cg.members().modify(resourceName=rn, body={"resourceNamesToRemove": [c["resourceName"]]}).execute()
    got = cg.get(resourceName=rn, maxMembers=100).execute()
    assert not got.get("memberResourceNames")

    cg.delete(resourceName=rn).execute()
    with pytest.raises(HttpError) as ei:
        cg.get(resourceName=rn).execute()
    assert ei.value.resp.status == 404
    # The contact itself survives the group (deleteContacts defaults to false).
    assert svc.people().get(resourceName=c["resourceName"], personFields="names").execute()


def test_missing_person_fields_is_400(member_people):
    _, svc = member_people
    # personFields is required by the API but not by the client's discovery document.
    with pytest.raises(HttpError) as ei:
        svc.people().connections().list(resourceName="people/me").execute()
    assert ei.value.resp.status == 400


def test_people_error_envelope_has_status(member_people):
    _, svc = member_people
    with pytest.raises(HttpError) as ei:
        svc.people().get(resourceName="people/c123456789012", personFields="names").execute()
    assert ei.value.resp.status == 404
    e = error_json(ei.value)["error"]
    assert e["code"] == 404
    assert e["status"] == "NOT_FOUND"
    assert isinstance(e["message"], str) and e["message"]
    assert "errors" not in e, "People uses google.rpc.Status, not the legacy errors[] shape"


def test_contacts_are_per_impersonated_user(emulator, members):
    a, b = members[-1], members[-2]
    sa, sb = emulator.people(a), emulator.people(b)
    c = sa.people().createContact(body=person(unique("Private")), personFields="names").execute()
    b_people, _ = full_listing(sb)
    assert c["resourceName"] not in {p["resourceName"] for p in b_people}
    with pytest.raises(HttpError) as ei:
        sb.people().get(resourceName=c["resourceName"], personFields="names").execute()
    assert ei.value.resp.status == 404


def test_standard_query_parameters_are_accepted(emulator, members):
    svc = emulator.people(members[-3])
    resp = svc.people().connections().list(
        resourceName="people/me", personFields="names", fields="connections,nextPageToken", quotaUser="c"
    ).execute()
    assert isinstance(resp.get("connections", []), list)
