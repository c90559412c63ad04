//! `users.labels` and `messages.modify`: Gmail's system labels, user labels and their
//! rules, counts computed from the mailbox, and the scopes of each method.

use orgsync_wire::scopes;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Env, env, reason, simple};

const LABELS: &str = "https://www.googleapis.com/auth/gmail.labels";
const METADATA: &str = "https://www.googleapis.com/auth/gmail.metadata";

const SYSTEM: [&str; 14] = [
    "INBOX",
    "SENT",
    "DRAFT",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "CHAT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
];

impl Env {
    async fn create_label(&self, tok: &str, body: Value) -> (u16, Value) {
        self.call(tok, Method::POST, "/gmail/v1/users/me/labels", Some(body))
            .await
    }

    async fn label(&self, tok: &str, id: &str) -> (u16, Value) {
        self.get(tok, &format!("/gmail/v1/users/me/labels/{id}"))
            .await
    }

    async fn label_names(&self, tok: &str) -> Vec<String> {
        let (s, v) = self.get(tok, "/gmail/v1/users/me/labels").await;
        assert_eq!(s, 200, "{v}");
        v["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect()
    }

    async fn modify(&self, tok: &str, id: &str, body: Value) -> (u16, Value) {
        self.call(
            tok,
            Method::POST,
            &format!("/gmail/v1/users/me/messages/{id}/modify"),
            Some(body),
        )
        .await
    }

    /// A token that may read mail and manage labels.
    fn modify_token(&self, user: &str) -> String {
        self.token(user, &[scopes::GMAIL_MODIFY, scopes::GMAIL_SEND])
    }
}

#[tokio::test]
async fn gmail_labels_list_has_system_labels() {
    let e = env().await;
    // The Python quickstart's first call, with its read-only scope.
    let tok = e.token(&e.users[0], &[scopes::GMAIL_READONLY]);
    let (s, v) = e.get(&tok, "/gmail/v1/users/me/labels").await;
    assert_eq!(s, 200, "{v}");
    let labels = v["labels"].as_array().unwrap();
    assert_eq!(labels.len(), SYSTEM.len(), "{v}");
    for id in SYSTEM {
        let l = labels
            .iter()
            .find(|l| l["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {v}"));
        assert_eq!(l["name"], id);
        assert_eq!(l["type"], "system");
        // list carries no counts; `get` does.
        assert!(l.get("messagesTotal").is_none(), "{l}");
    }
    let trash = labels.iter().find(|l| l["id"] == "TRASH").unwrap();
    assert_eq!(trash["labelListVisibility"], "labelHide");
    assert_eq!(trash["messageListVisibility"], "hide");

    // The address works as userId too; another user's mailbox does not.
    let (s, _) = e
        .get(&tok, &format!("/gmail/v1/users/{}/labels", e.users[0]))
        .await;
    assert_eq!(s, 200);
    let (s, _) = e
        .get(&tok, &format!("/gmail/v1/users/{}/labels", e.users[1]))
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn gmail_label_get_counts_messages_and_threads_of_the_mailbox() {
    let e = env().await;
    let (a, b) = (&e.users[0], &e.users[1]);
    for subject in ["one", "two"] {
        let (s, v) = e.send_raw(&e.rw(a), &simple(a, b, subject, "")).await;
        assert_eq!(s, 200, "{v}");
    }
    // A reply in the first thread, so b has three messages in two threads.
    let reply = simple(a, b, "three", "In-Reply-To: <one@test>\r\n");
    let (s, v) = e.send_raw(&e.rw(a), &reply).await;
    assert_eq!(s, 200, "{v}");

    let tok_b = e.token(b, &[METADATA]);
    let (s, inbox) = e.label(&tok_b, "INBOX").await;
    assert_eq!(s, 200, "{inbox}");
    assert_eq!(inbox["id"], "INBOX");
    assert_eq!(inbox["type"], "system");
    assert_eq!(inbox["messagesTotal"], 3, "{inbox}");
    assert_eq!(inbox["messagesUnread"], 3);
    assert_eq!(inbox["threadsTotal"], 2);
    assert_eq!(inbox["threadsUnread"], 2);

    // Reading one message (removing UNREAD) lowers only the unread counts.
    let ids = e.list(&e.rw(b), "q=subject:two").await;
    assert_eq!(ids.len(), 1);
    let (s, v) = e
        .modify(
            &e.modify_token(b),
            &ids[0],
            json!({"removeLabelIds": ["UNREAD"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["labelIds"], json!(["INBOX"]));
    let (_, inbox) = e.label(&tok_b, "INBOX").await;
    assert_eq!(
        (
            &inbox["messagesTotal"],
            &inbox["messagesUnread"],
            &inbox["threadsTotal"],
            &inbox["threadsUnread"]
        ),
        (&json!(3), &json!(2), &json!(2), &json!(1)),
        "{inbox}"
    );

    let (_, sent) = e.label(&e.rw(a), "SENT").await;
    assert_eq!(sent["messagesTotal"], 3, "{sent}");
    assert_eq!(sent["messagesUnread"], 0);
    let (_, spam) = e.label(&tok_b, "SPAM").await;
    assert_eq!(spam["messagesTotal"], 0, "{spam}");
    let (s, v) = e.label(&tok_b, "Label_404").await;
    assert_eq!((s, reason(&v)), (404, "notFound"), "{v}");
}

#[tokio::test]
async fn gmail_user_labels_create_patch_update_delete() {
    let e = env().await;
    let (a, b) = (&e.users[0], &e.users[1]);
    let tok = e.token(b, &[LABELS]);
    let (s, work) = e
        .create_label(
            &tok,
            json!({"name": "Work", "labelListVisibility": "labelShow", "messageListVisibility": "show"}),
        )
        .await;
    assert_eq!(s, 200, "{work}");
    assert_eq!(work["id"], "Label_1");
    assert_eq!(work["type"], "user");
    assert_eq!(work["labelListVisibility"], "labelShow");
    let (s, _) = e.create_label(&tok, json!({"name": "Projects/2026"})).await;
    assert_eq!(s, 200);
    assert_eq!(
        e.label_names(&tok).await[SYSTEM.len()..],
        ["Work", "Projects/2026"]
    );

    // Names are unique ignoring case, system names included.
    for taken in ["work", "INBOX", "Category_Social"] {
        let (s, v) = e.create_label(&tok, json!({"name": taken})).await;
        assert_eq!(s, 409, "{taken}: {v}");
        assert_eq!(v["error"]["message"], "Label name exists or conflicts");
    }
    for bad in [json!({}), json!({"name": "  "}), json!({"name": 7})] {
        let (s, v) = e.create_label(&tok, bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, v) = e
        .create_label(
            &tok,
            json!({"name": "x", "labelListVisibility": "sometimes"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");

    // Colors come from Gmail's palette, both of them.
    let path = "/gmail/v1/users/me/labels/Label_1";
    let (s, v) = e
        .call(
            &tok,
            Method::PATCH,
            path,
            Some(json!({"color": {"textColor": "#123456", "backgroundColor": "#ffffff"}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["message"],
        "Label color #123456 is not on the allowed color palette"
    );
    let (s, v) = e
        .call(
            &tok,
            Method::PATCH,
            path,
            Some(json!({"color": {"textColor": "#000000"}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");

    // patch changes only what it names.
    let (s, v) = e
        .call(
            &tok,
            Method::PATCH,
            path,
            Some(json!({"name": "Work stuff", "color": {"textColor": "#FFFFFF", "backgroundColor": "#4a86e8"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"], "Work stuff");
    assert_eq!(v["labelListVisibility"], "labelShow", "kept: {v}");
    assert_eq!(
        v["color"],
        json!({"textColor": "#ffffff", "backgroundColor": "#4a86e8"})
    );
    // Renaming to its own name in another case is fine; to another label's is not.
    let (s, _) = e
        .call(
            &tok,
            Method::PATCH,
            path,
            Some(json!({"name": "WORK STUFF"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = e
        .call(
            &tok,
            Method::PATCH,
            path,
            Some(json!({"name": "projects/2026"})),
        )
        .await;
    assert_eq!(s, 409);

    // update replaces the label: what the body leaves out is gone.
    let (s, v) = e
        .call(
            &tok,
            Method::PUT,
            path,
            Some(json!({"id": "Label_1", "name": "Work"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"id": "Label_1", "name": "Work", "type": "user"}));
    let (s, _) = e
        .call(
            &tok,
            Method::PUT,
            path,
            Some(json!({"labelListVisibility": "labelHide"})),
        )
        .await;
    assert_eq!(s, 400, "update needs the name");

    // Label a delivered message, then delete the label: the message loses it.
    let (s, _) = e.send_raw(&e.rw(a), &simple(a, b, "tagged", "")).await;
    assert_eq!(s, 200);
    let id = e.list(&e.rw(b), "").await.remove(0);
    let (s, v) = e
        .modify(
            &e.modify_token(b),
            &id,
            json!({"addLabelIds": ["Label_1", "STARRED"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["labelIds"],
        json!(["INBOX", "UNREAD", "Label_1", "STARRED"])
    );
    assert_eq!(e.list(&e.rw(b), "labelIds=Label_1").await, vec![id.clone()]);
    let (_, got) = e.label(&tok, "Label_1").await;
    assert_eq!(
        (got["messagesTotal"].clone(), got["threadsUnread"].clone()),
        (json!(1), json!(1))
    );

    let (s, v) = e.call(&tok, Method::DELETE, path, None).await;
    assert_eq!(s, 204, "{v}");
    let (s, _) = e.label(&tok, "Label_1").await;
    assert_eq!(s, 404);
    let (s, _) = e.call(&tok, Method::DELETE, path, None).await;
    assert_eq!(s, 404);
    let (_, m) = e
        .get(
            &e.rw(b),
            &format!("/gmail/v1/users/me/messages/{id}?format=minimal"),
        )
        .await;
    assert_eq!(m["labelIds"], json!(["INBOX", "UNREAD", "STARRED"]));
    assert!(e.list(&e.rw(b), "labelIds=Label_1").await.is_empty());
    // Ids are not reused, and the freed name is free again.
    let (s, v) = e.create_label(&tok, json!({"name": "work"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["id"], "Label_3");
}

#[tokio::test]
async fn gmail_system_labels_cannot_be_changed_or_deleted() {
    let e = env().await;
    let tok = e.token(&e.users[0], &[scopes::MAIL_GOOGLE_COM]);
    for id in ["INBOX", "CATEGORY_SOCIAL", "UNREAD"] {
        let path = format!("/gmail/v1/users/me/labels/{id}");
        for method in [Method::PATCH, Method::PUT] {
            let (s, v) = e
                .call(
                    &tok,
                    method.clone(),
                    &path,
                    Some(json!({"name": "Renamed"})),
                )
                .await;
            assert_eq!(s, 400, "{method} {id}: {v}");
            assert_eq!(v["error"]["message"], "Invalid update request");
        }
        let (s, v) = e.call(&tok, Method::DELETE, &path, None).await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(v["error"]["message"], "Invalid delete request");
    }
    let (s, v) = e.label(&tok, "INBOX").await;
    assert_eq!((s, &v["name"]), (200, &json!("INBOX")), "unchanged: {v}");
}

#[tokio::test]
async fn gmail_message_modify_refuses_unknown_and_gmail_only_labels() {
    let e = env().await;
    let (a, b) = (&e.users[0], &e.users[1]);
    let (s, sent) = e.send_raw(&e.rw(a), &simple(a, b, "m", "")).await;
    assert_eq!(s, 200);
    let id = sent["id"].as_str().unwrap();
    let tok = e.modify_token(a);
    for (body, message) in [
        (
            json!({"addLabelIds": ["Label_9"]}),
            "Invalid label: Label_9",
        ),
        (json!({"removeLabelIds": ["SENT"]}), "Invalid label: SENT"),
        (json!({"addLabelIds": ["DRAFT"]}), "Invalid label: DRAFT"),
        (json!({}), "No label add or removes specified"),
    ] {
        let (s, v) = e.modify(&tok, id, body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(v["error"]["message"], message);
    }
    let (s, _) = e
        .modify(
            &tok,
            "0000000000000000",
            json!({"addLabelIds": ["STARRED"]}),
        )
        .await;
    assert_eq!(s, 404);
    // messages.modify needs gmail.modify (or mail.google.com), not gmail.labels.
    let (s, v) = e
        .modify(
            &e.token(a, &[LABELS]),
            id,
            json!({"addLabelIds": ["STARRED"]}),
        )
        .await;
    assert_eq!((s, reason(&v)), (403, "insufficientPermissions"), "{v}");
}

#[tokio::test]
async fn gmail_label_methods_follow_the_discovery_scopes() {
    let e = env().await;
    let a = &e.users[0];
    let path = "/gmail/v1/users/me/labels";
    // Read: labels, metadata, readonly, modify, mail.google.com; not send or compose.
    for scope in [
        LABELS,
        METADATA,
        scopes::GMAIL_READONLY,
        scopes::GMAIL_MODIFY,
        scopes::MAIL_GOOGLE_COM,
    ] {
        let (s, v) = e.get(&e.token(a, &[scope]), path).await;
        assert_eq!(s, 200, "{scope}: {v}");
    }
    for scope in [scopes::GMAIL_SEND, scopes::GMAIL_COMPOSE] {
        let (s, v) = e.get(&e.token(a, &[scope]), path).await;
        assert_eq!(
            (s, reason(&v)),
            (403, "insufficientPermissions"),
            "{scope}: {v}"
        );
    }
    // Write: labels, modify, mail.google.com; not readonly or metadata.
    for (i, scope) in [LABELS, scopes::GMAIL_MODIFY, scopes::MAIL_GOOGLE_COM]
        .iter()
        .enumerate()
    {
        let (s, v) = e
            .create_label(&e.token(a, &[scope]), json!({"name": format!("l{i}")}))
            .await;
        assert_eq!(s, 200, "{scope}: {v}");
    }
    for scope in [scopes::GMAIL_READONLY, METADATA] {
        let tok = e.token(a, &[scope]);
        let (s, _) = e.create_label(&tok, json!({"name": "nope"})).await;
        assert_eq!(s, 403, "{scope}");
        let (s, _) = e
            .call(&tok, Method::DELETE, &format!("{path}/Label_1"), None)
            .await;
        assert_eq!(s, 403, "{scope}");
    }
}
