//! Gmail v1 over real loopback HTTP: JSON `raw` and upload sends, byte-exact
//! `format=raw`, the `format=full` MIME tree, drafts, search and paging, delivery to
//! recipients in the domain, and Google's errors for size, recipients and scopes; labels
//! and `messages.modify` in `gmail/labels.rs`.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use orgsync_emulator::EmulatorConfig;
use orgsync_testkit::Emu;
use orgsync_wire::scopes;
use serde_json::{Value, json};

mod labels;

orgsync_testkit::harness!(Env);

async fn env() -> Env {
    let e = Env(Emu::start(EmulatorConfig::for_tests(5)).await);
    assert!(e.users.len() >= 4, "need a few users: {:?}", e.users);
    e
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE
        .decode(s)
        .or_else(|_| URL_SAFE_NO_PAD.decode(s))
        .expect("base64url")
}

impl Env {
    /// A token that may send and read.
    fn rw(&self, user: &str) -> String {
        self.token(
            user,
            &[
                scopes::GMAIL_SEND,
                scopes::GMAIL_READONLY,
                scopes::GMAIL_COMPOSE,
            ],
        )
    }

    async fn send(
        &self,
        tok: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.h.base_url, path))
            .bearer_auth(tok);
        if let Some((b, ct)) = body {
            req = req.header("content-type", ct).body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v, headers)
    }

    async fn post_json(&self, tok: &str, path: &str, body: Value) -> (u16, Value) {
        let (s, v, _) = self
            .send(
                tok,
                reqwest::Method::POST,
                path,
                Some((body.to_string().into_bytes(), "application/json")),
            )
            .await;
        (s, v)
    }

    async fn get(&self, tok: &str, path: &str) -> (u16, Value) {
        let (s, v, _) = self.send(tok, reqwest::Method::GET, path, None).await;
        (s, v)
    }

    async fn send_raw(&self, tok: &str, raw: &[u8]) -> (u16, Value) {
        self.post_json(
            tok,
            "/gmail/v1/users/me/messages/send",
            json!({"raw": b64url(raw)}),
        )
        .await
    }

    async fn list(&self, tok: &str, query: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/gmail/v1/users/me/messages?{query}");
            if let Some(t) = &token {
                path.push_str(&format!("&pageToken={t}"));
            }
            let (s, v) = self.get(tok, &path).await;
            assert_eq!(s, 200, "{v}");
            for m in v["messages"].as_array().into_iter().flatten() {
                ids.push(m["id"].as_str().unwrap().to_string());
            }
            match v["nextPageToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => return ids,
            }
        }
    }

    async fn raw_of(&self, tok: &str, id: &str) -> Vec<u8> {
        let (s, v) = self
            .get(tok, &format!("/gmail/v1/users/me/messages/{id}?format=raw"))
            .await;
        assert_eq!(s, 200, "{v}");
        unb64(v["raw"].as_str().unwrap())
    }
}

fn simple(from: &str, to: &str, subject: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\n{extra}Subject: {subject}\r\nDate: Tue, 3 Mar 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello {subject}, it's body text.\r\n"
    )
    .into_bytes()
}

fn reason(v: &Value) -> &str {
    v["error"]["errors"][0]["reason"].as_str().unwrap_or("")
}

#[tokio::test]
async fn raw_send_is_stored_byte_exact_and_delivered_without_bcc() {
    let e = env().await;
    let (a, b, c) = (&e.users[0], &e.users[1], &e.users[2]);
    let raw = simple(
        a,
        &format!("{b}, outsider@elsewhere.test"),
        "hello1",
        &format!("Bcc: {c}\r\n"),
    );
    let tok_a = e.rw(a);
    let (s, sent) = e.send_raw(&tok_a, &raw).await;
    assert_eq!(s, 200, "{sent}");
    assert_eq!(sent["labelIds"], json!(["SENT"]));
    let id = sent["id"].as_str().unwrap();
    assert_eq!(
        sent["threadId"].as_str(),
        Some(id),
        "a new message starts a thread"
    );
    assert_eq!(id.len(), 16, "Gmail-style 16-hex id: {id}");

    // format=raw is the exact bytes, Bcc included on the sender's copy.
    assert_eq!(e.raw_of(&tok_a, id).await, raw);
    let (_, minimal) = e
        .get(
            &tok_a,
            &format!("/gmail/v1/users/me/messages/{id}?format=minimal"),
        )
        .await;
    assert_eq!(minimal["sizeEstimate"], json!(raw.len()));
    assert_eq!(minimal["snippet"], "Hello hello1, it&#39;s body text.");
    assert!(minimal.get("payload").is_none() && minimal.get("raw").is_none());
    assert!(minimal["internalDate"].is_string() && minimal["historyId"].is_string());

    // b (To) and c (Bcc) got an INBOX copy, without the Bcc header.
    for rcpt in [b, c] {
        let tok = e.rw(rcpt);
        let ids = e.list(&tok, "labelIds=INBOX").await;
        assert_eq!(ids.len(), 1, "{rcpt} inbox");
        let got = e.raw_of(&tok, &ids[0]).await;
        let text = String::from_utf8(got).unwrap();
        assert!(!text.contains("Bcc:"), "Bcc must not be delivered: {text}");
        assert!(text.contains("Subject: hello1"));
        let (_, m) = e
            .get(
                &tok,
                &format!("/gmail/v1/users/me/messages/{}?format=minimal", ids[0]),
            )
            .await;
        assert_eq!(m["labelIds"], json!(["INBOX", "UNREAD"]));
    }
    // Nothing arrived for an uninvolved user.
    assert!(e.list(&e.rw(&e.users[3]), "").await.is_empty());
}

#[tokio::test]
async fn list_searches_and_pages() {
    let e = env().await;
    let (a, b, c) = (&e.users[0], &e.users[1], &e.users[2]);
    let tok = e.rw(a);
    for i in 0..5 {
        let to = if i % 2 == 0 { b } else { c };
        let (s, v) = e
            .send_raw(&tok, &simple(a, to, &format!("report{i}"), ""))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    assert_eq!(e.list(&tok, "maxResults=2").await.len(), 5, "paged 2+2+1");
    let (_, first) = e
        .get(&tok, "/gmail/v1/users/me/messages?maxResults=2")
        .await;
    assert_eq!(first["messages"].as_array().unwrap().len(), 2);
    assert!(first["nextPageToken"].is_string());
    assert_eq!(first["resultSizeEstimate"], 5);
    let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    assert_eq!(
        e.list(&tok, &format!("q={}", q(&format!("to:{b}"))))
            .await
            .len(),
        3
    );
    assert_eq!(
        e.list(&tok, &format!("q={}", q("subject:report3")))
            .await
            .len(),
        1
    );
    assert_eq!(
        e.list(&tok, &format!("q={}", q("in:sent -subject:report3")))
            .await
            .len(),
        4
    );
    assert_eq!(e.list(&tok, &format!("q={}", q("in:inbox"))).await.len(), 0);
    assert_eq!(e.list(&tok, "labelIds=SENT").await.len(), 5);
    let tok_b = e.rw(b);
    assert_eq!(
        e.list(&tok_b, &format!("q={}", q(&format!("from:{a}"))))
            .await
            .len(),
        3
    );
    // Newest first.
    let ids = e.list(&tok, "").await;
    let mut sorted = ids.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(ids, sorted);
    let (s, v) = e
        .get(&tok, "/gmail/v1/users/me/messages?pageToken=garbage")
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = e
        .get(&tok, "/gmail/v1/users/me/messages?maxResults=501")
        .await;
    assert_eq!(s, 400);
}

/// multipart/mixed: a quoted-printable UTF-8 text part and two base64 attachments,
/// with an RFC 2047 encoded subject.
fn multipart_message(from: &str, to: &str, pdf: &[u8], csv: &[u8]) -> Vec<u8> {
    let b64 = |d: &[u8]| {
        let s = base64::engine::general_purpose::STANDARD.encode(d);
        s.as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    format!(
        "From: Ann <{from}>\r\nTo: {to}\r\nSubject: =?UTF-8?B?{subj}?=\r\nDate: Tue, 3 Mar 2026 10:00:00 +0000\r\nMessage-ID: <mp@test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BOUND\"\r\n\r\nThis is a multi-part message.\r\n--BOUND\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n--BOUND\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n--BOUND\r\nContent-Type: text/csv; name=\"data.csv\"\r\nContent-Disposition: attachment; filename=\"data.csv\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{csv}\r\n--BOUND--\r\n",
        subj = base64::engine::general_purpose::STANDARD.encode("Grüße – Bericht ✓"),
        pdf = b64(pdf),
        csv = b64(csv),
    )
    .into_bytes()
}

#[tokio::test]
async fn full_format_is_the_mime_tree_with_attachments() {
    let e = env().await;
    let (a, b) = (&e.users[0], &e.users[1]);
    let pdf: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
    let csv = b"name,n\r\nx,1\r\n".to_vec();
    let raw = multipart_message(a, b, &pdf, &csv);
    let tok = e.rw(a);
    let (s, sent) = e.send_raw(&tok, &raw).await;
    assert_eq!(s, 200, "{sent}");
    let id = sent["id"].as_str().unwrap();
    let (s, m) = e
        .get(&tok, &format!("/gmail/v1/users/me/messages/{id}"))
        .await;
    assert_eq!(s, 200, "{m}");
    let p = &m["payload"];
    assert_eq!(p["partId"], "");
    assert_eq!(p["mimeType"], "multipart/mixed");
    assert_eq!(p["filename"], "");
    assert_eq!(p["body"]["size"], 0);
    let subject = p["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "Subject")
        .unwrap();
    assert_eq!(subject["value"], "Grüße – Bericht ✓");
    assert_eq!(m["snippet"], "Grüße aus Köln");
    let parts = p["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0]["partId"], "0");
    assert_eq!(parts[0]["mimeType"], "text/plain");
    assert_eq!(parts[0]["filename"], "");
    let text = unb64(parts[0]["body"]["data"].as_str().unwrap());
    assert_eq!(String::from_utf8(text.clone()).unwrap(), "Grüße aus Köln");
    assert_eq!(parts[0]["body"]["size"], json!(text.len()));
    for (i, (name, mime, bytes)) in [
        ("report.pdf", "application/pdf", &pdf),
        ("data.csv", "text/csv", &csv),
    ]
    .into_iter()
    .enumerate()
    {
        let part = &parts[i + 1];
        assert_eq!(part["partId"], (i + 1).to_string());
        assert_eq!(part["mimeType"], mime);
        assert_eq!(part["filename"], name);
        assert_eq!(part["body"]["size"], json!(bytes.len()));
        assert!(
            part["body"].get("data").is_none(),
            "attachments carry an id, not data"
        );
        let att = part["body"]["attachmentId"].as_str().unwrap();
        let (s, body) = e
            .get(
                &tok,
                &format!("/gmail/v1/users/me/messages/{id}/attachments/{att}"),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(&unb64(body["data"].as_str().unwrap()), bytes);
        assert_eq!(body["size"], json!(bytes.len()));
        let hdrs = part["headers"].as_array().unwrap();
        assert!(hdrs.iter().any(|h| h["name"] == "Content-Disposition"));
    }
    // metadata: headers only, filtered by metadataHeaders.
    let (_, meta) = e
        .get(
            &tok,
            &format!("/gmail/v1/users/me/messages/{id}?format=metadata&metadataHeaders=subject&metadataHeaders=To"),
        )
        .await;
    let names: Vec<&str> = meta["payload"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["To", "Subject"]);
    assert!(meta["payload"].get("parts").is_none());
    assert_eq!(e.raw_of(&tok, id).await, raw, "raw stays byte-exact");
    let (s, _) = e
        .get(
            &tok,
            &format!("/gmail/v1/users/me/messages/{id}/attachments/ANGjdJbogus"),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn upload_media_and_multipart() {
    let e = env().await;
    let (a, b) = (&e.users[0], &e.users[1]);
    let tok = e.rw(a);
    let first = simple(a, b, "thread-start", "");
    let (s, v, _) = e
        .send(
            &tok,
            reqwest::Method::POST,
            "/upload/gmail/v1/users/me/messages/send?uploadType=media",
            Some((first.clone(), "message/rfc822")),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let thread = v["threadId"].as_str().unwrap().to_string();
    assert_eq!(e.raw_of(&tok, v["id"].as_str().unwrap()).await, first);

    // Multipart: JSON metadata (threadId) then the message, a 6 MiB one: more than the
    // JSON form takes, well within the upload limit.
    let big_body = "x".repeat(76).repeat(6 * 1024 * 1024 / 76);
    let second = [
        simple(a, b, "thread-reply", "").as_slice(),
        big_body.as_bytes(),
    ]
    .concat();
    let mut body = b"--B0\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".to_vec();
    body.extend_from_slice(json!({"threadId": thread}).to_string().as_bytes());
    body.extend_from_slice(b"\r\n--B0\r\nContent-Type: message/rfc822\r\n\r\n");
    body.extend_from_slice(&second);
    body.extend_from_slice(b"\r\n--B0--\r\n");
    let (s, v, _) = e
        .send(
            &tok,
            reqwest::Method::POST,
            "/upload/gmail/v1/users/me/messages/send?uploadType=multipart",
            Some((body, "multipart/related; boundary=B0")),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["threadId"], thread.as_str(), "joined the given thread");
    assert_eq!(e.raw_of(&tok, v["id"].as_str().unwrap()).await, second);

    // The same 6 MiB message in the JSON form is refused with 413.
    let (s, v) = e.send_raw(&tok, &second).await;
    assert_eq!(s, 413, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("/upload/"));

    // Bad upload requests.
    let up = |q: &str| format!("/upload/gmail/v1/users/me/messages/send{q}");
    let (s, v, _) = e
        .send(
            &tok,
            reqwest::Method::POST,
            &up("?uploadType=media"),
            Some((first.clone(), "text/plain")),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("message/*")
    );
    let (s, _, _) = e
        .send(
            &tok,
            reqwest::Method::POST,
            &up(""),
            Some((first.clone(), "message/rfc822")),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _, _) = e
        .send(
            &tok,
            reqwest::Method::POST,
            &up("?uploadType=multipart"),
            Some((
                b"--B0\r\nContent-Type: application/json\r\n\r\n{}\r\n--B0--\r\n".to_vec(),
                "multipart/related; boundary=B0",
            )),
        )
        .await;
    assert_eq!(s, 400, "one part only");
    // An unknown threadId is 404.
    let mut body = b"--B0\r\nContent-Type: application/json\r\n\r\n{\"threadId\":\"ffff\"}\r\n--B0\r\nContent-Type: message/rfc822\r\n\r\n".to_vec();
    body.extend_from_slice(&first);
    body.extend_from_slice(b"\r\n--B0--");
    let (s, _, _) = e
        .send(
            &tok,
            reqwest::Method::POST,
            &up("?uploadType=multipart"),
            Some((body, "multipart/related; boundary=B0")),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn size_limit_is_35_mib_on_the_upload_endpoint() {
    let e = env().await;
    let (a, b) = (&e.users[0], &e.users[1]);
    let tok = e.rw(a);
    let head = simple(a, b, "huge", "");
    let mut raw = head.clone();
    raw.resize(36_700_160 + 1, b'y');
    let (s, v, _) = e
        .send(
            &tok,
            reqwest::Method::POST,
            "/upload/gmail/v1/users/me/messages/send?uploadType=media",
            Some((raw.clone(), "message/rfc822")),
        )
        .await;
    assert_eq!(s, 413, "{v}");
    assert_eq!(reason(&v), "uploadTooLarge");
    raw.truncate(36_700_160);
    let (s, v, _) = e
        .send(
            &tok,
            reqwest::Method::POST,
            "/upload/gmail/v1/users/me/messages/send?uploadType=media",
            Some((raw, "message/rfc822")),
        )
        .await;
    assert_eq!(s, 200, "exactly 35 MiB is accepted: {v}");
}

#[tokio::test]
async fn drafts_create_list_get_send() {
    let e = env().await;
    let (a, b) = (&e.users[0], &e.users[1]);
    let tok = e.token(a, &[scopes::GMAIL_COMPOSE]);
    let raw1 = simple(a, b, "draft-one", "");
    let (s, d1) = e
        .post_json(
            &tok,
            "/gmail/v1/users/me/drafts",
            json!({"message": {"raw": b64url(&raw1)}}),
        )
        .await;
    assert_eq!(s, 200, "{d1}");
    assert!(d1["id"].as_str().unwrap().starts_with('r'));
    assert_eq!(d1["message"]["labelIds"], json!(["DRAFT"]));

    // A second draft through the upload endpoint, and one with no recipient yet.
    let raw2 = simple(a, b, "draft-two", "");
    let (s, d2, _) = e
        .send(
            &tok,
            reqwest::Method::POST,
            "/upload/gmail/v1/users/me/drafts?uploadType=media",
            Some((raw2.clone(), "message/rfc822")),
        )
        .await;
    assert_eq!(s, 200, "{d2}");
    let no_rcpt = b"Subject: later\r\n\r\nnot addressed yet\r\n".to_vec();
    let (s, d3) = e
        .post_json(
            &tok,
            "/gmail/v1/users/me/drafts",
            json!({"message": {"raw": b64url(&no_rcpt)}}),
        )
        .await;
    assert_eq!(s, 200, "drafts need no recipient: {d3}");

    let (s, list) = e.get(&tok, "/gmail/v1/users/me/drafts").await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["drafts"].as_array().unwrap().len(), 3);
    assert_eq!(list["resultSizeEstimate"], 3);
    let (_, paged) = e.get(&tok, "/gmail/v1/users/me/drafts?maxResults=2").await;
    assert_eq!(paged["drafts"].as_array().unwrap().len(), 2);
    assert!(paged["nextPageToken"].is_string());

    let d2_id = d2["id"].as_str().unwrap();
    let (s, got) = e
        .get(
            &tok,
            &format!("/gmail/v1/users/me/drafts/{d2_id}?format=raw"),
        )
        .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(unb64(got["message"]["raw"].as_str().unwrap()), raw2);
    let (_, full) = e
        .get(&tok, &format!("/gmail/v1/users/me/drafts/{d2_id}"))
        .await;
    assert_eq!(full["message"]["payload"]["mimeType"], "text/plain");

    // Sending a draft without recipients fails and keeps it.
    let d3_id = d3["id"].as_str().unwrap();
    let (s, v) = e
        .post_json(&tok, "/gmail/v1/users/me/drafts/send", json!({"id": d3_id}))
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["message"], "Recipient address required");
    let (s, _) = e
        .get(&tok, &format!("/gmail/v1/users/me/drafts/{d3_id}"))
        .await;
    assert_eq!(s, 200);

    let (s, sent) = e
        .post_json(
            &tok,
            "/gmail/v1/users/me/drafts/send",
            json!({"id": d1["id"]}),
        )
        .await;
    assert_eq!(s, 200, "{sent}");
    assert_eq!(sent["labelIds"], json!(["SENT"]));
    assert_eq!(sent["threadId"], d1["message"]["threadId"]);
    let (s, _) = e
        .get(
            &tok,
            &format!("/gmail/v1/users/me/drafts/{}", d1["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, 404, "a sent draft is gone");
    let (s, _) = e
        .post_json(
            &tok,
            "/gmail/v1/users/me/drafts/send",
            json!({"id": d1["id"]}),
        )
        .await;
    assert_eq!(s, 404);
    let tok_b = e.rw(b);
    let inbox = e.list(&tok_b, "labelIds=INBOX").await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(e.raw_of(&tok_b, &inbox[0]).await, raw1);
    // compose may read drafts but gmail.send alone may not.
    let send_only = e.token(a, &[scopes::GMAIL_SEND]);
    let (s, v) = e.get(&send_only, "/gmail/v1/users/me/drafts").await;
    assert_eq!(s, 403, "{v}");
    // Delete.
    let (s, _, _) = e
        .send(
            &tok,
            reqwest::Method::DELETE,
            &format!("/gmail/v1/users/me/drafts/{d3_id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, list) = e.get(&tok, "/gmail/v1/users/me/drafts").await;
    assert_eq!(list["drafts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn errors_match_google() {
    let e = env().await;
    let (a, b) = (&e.users[0], &e.users[1]);
    let tok = e.rw(a);

    let no_rcpt = b"From: x@y.z\r\nSubject: nobody\r\n\r\nbody\r\n";
    let (s, v) = e.send_raw(&tok, no_rcpt).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["message"], "Recipient address required");
    assert_eq!(reason(&v), "invalidArgument");

    let (s, v) = e
        .send_raw(&tok, &simple(a, "not an address", "bad", ""))
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["message"], "Invalid To header");

    let (s, v) = e
        .post_json(
            &tok,
            "/gmail/v1/users/me/messages/send",
            json!({"threadId": "x"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(reason(&v), "badRequest");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'raw' RFC822 payload")
    );

    let (s, _) = e
        .post_json(
            &tok,
            "/gmail/v1/users/me/messages/send",
            json!({"raw": "%%%"}),
        )
        .await;
    assert_eq!(s, 400);

    // Over 5 MiB in the JSON form: 413 pointing at the upload endpoint.
    let mut big = simple(a, b, "big", "");
    big.resize(5 * 1024 * 1024 + 1, b'z');
    let (s, v) = e.send_raw(&tok, &big).await;
    assert_eq!(s, 413, "{v}");

    // Wrong scope: 403 insufficientPermissions; send-only cannot read.
    let cal = e.token(a, &[scopes::CALENDAR]);
    let (s, v) = e.send_raw(&cal, &simple(a, b, "nope", "")).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(reason(&v), "insufficientPermissions");
    let send_only = e.token(a, &[scopes::GMAIL_SEND]);
    let (s, sent) = e.send_raw(&send_only, &simple(a, b, "ok", "")).await;
    assert_eq!(s, 200, "{sent}");
    let (s, _) = e
        .get(
            &send_only,
            &format!(
                "/gmail/v1/users/me/messages/{}",
                sent["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(s, 403);
    // gmail.metadata may read headers but not the body, nor search.
    let meta = e.token(a, &["https://www.googleapis.com/auth/gmail.metadata"]);
    let id = sent["id"].as_str().unwrap();
    let (s, _) = e
        .get(
            &meta,
            &format!("/gmail/v1/users/me/messages/{id}?format=metadata"),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = e
        .get(
            &meta,
            &format!("/gmail/v1/users/me/messages/{id}?format=full"),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, _) = e.get(&meta, "/gmail/v1/users/me/messages?q=hello").await;
    assert_eq!(s, 403);

    // Acting for another user: 403; one's own address works like `me`.
    let (s, v) = e
        .post_json(
            &tok,
            &format!("/gmail/v1/users/{b}/messages/send"),
            json!({"raw": b64url(&simple(b, a, "spoof", ""))}),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Delegation denied")
    );
    let (s, _) = e.get(&tok, &format!("/gmail/v1/users/{a}/messages")).await;
    assert_eq!(s, 200);

    // Unknown message, no token, service account without a subject.
    let (s, v) = e
        .get(&tok, "/gmail/v1/users/me/messages/ffffffffffffffff")
        .await;
    assert_eq!(s, 404);
    assert_eq!(reason(&v), "notFound");
    let (s, _) = e.get("bogus", "/gmail/v1/users/me/messages").await;
    assert_eq!(s, 401);
    let sa =
        orgsync_emulator::oauth::mint_access_token(&e.h.emulator, None, &[scopes::GMAIL_READONLY]);
    let (s, v) = e.get(&sa, "/gmail/v1/users/me/messages").await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn sender_is_always_the_authenticated_user() {
    let e = env().await;
    let (a, b) = (&e.users[0], &e.users[1]);
    let tok = e.rw(a);
    // A From the user may not send as is rewritten, keeping the display name; missing
    // Date and Message-ID are added; the body is untouched.
    let raw = format!(
        "From: Boss <ceo@elsewhere.test>\r\nTo: {b}\r\nSubject: spoof\r\n\r\nbody stays\r\n"
    );
    let (s, v) = e.send_raw(&tok, raw.as_bytes()).await;
    assert_eq!(s, 200, "{v}");
    let stored = String::from_utf8(e.raw_of(&tok, v["id"].as_str().unwrap()).await).unwrap();
    assert!(
        stored.contains(&format!("From: \"Boss\" <{a}>\r\n")),
        "{stored}"
    );
    assert!(!stored.contains("ceo@elsewhere.test"));
    assert!(stored.contains("\r\nDate: ") || stored.starts_with("Date: "));
    assert!(stored.contains("Message-ID: <"));
    assert!(stored.ends_with("\r\n\r\nbody stays\r\n"));
    // No From at all: added.
    let raw = format!("To: {b}\r\nSubject: anon\r\n\r\nx\r\n");
    let (_, v) = e.send_raw(&tok, raw.as_bytes()).await;
    let stored = String::from_utf8(e.raw_of(&tok, v["id"].as_str().unwrap()).await).unwrap();
    assert!(stored.contains(&format!("From: {a}\r\n")), "{stored}");
    // Replies join the recipient's thread through In-Reply-To.
    let tok_b = e.rw(b);
    let first = e.list(&tok_b, "").await;
    let (_, orig) = e
        .get(
            &tok_b,
            &format!("/gmail/v1/users/me/messages/{}?format=minimal", first[1]),
        )
        .await;
    let reply = format!(
        "From: {b}\r\nTo: {a}\r\nSubject: Re: spoof\r\nIn-Reply-To: {}\r\n\r\nreply\r\n",
        {
            let raw = String::from_utf8(e.raw_of(&tok_b, &first[1]).await).unwrap();
            raw.lines()
                .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_string))
                .unwrap()
        }
    );
    let (s, r) = e.send_raw(&tok_b, reply.as_bytes()).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        r["threadId"], orig["threadId"],
        "the reply joins the thread"
    );
}

#[tokio::test]
async fn daily_send_limit_and_stats() {
    let e = env().await;
    let (a, b) = (&e.users[0], &e.users[1]);
    e.h.emulator.gmail.write().settings.daily_send_limit = 2;
    let tok = e.rw(a);
    for i in 0..2 {
        let (s, v) = e.send_raw(&tok, &simple(a, b, &format!("l{i}"), "")).await;
        assert_eq!(s, 200, "{v}");
    }
    let (s, v, headers) = e
        .send(
            &tok,
            reqwest::Method::POST,
            "/gmail/v1/users/me/messages/send",
            Some((
                json!({"raw": b64url(&simple(a, b, "l2", ""))})
                    .to_string()
                    .into_bytes(),
                "application/json",
            )),
        )
        .await;
    assert_eq!(s, 429, "{v}");
    assert_eq!(reason(&v), "rateLimitExceeded");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mail sending")
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 86_000 && retry <= 86_400, "{retry}");
    // The window rolls with the emulator clock.
    e.h.emulator.clock.advance(chrono::Duration::hours(24));
    let tok = e.rw(a);
    let (s, v) = e.send_raw(&tok, &simple(a, b, "l3", "")).await;
    assert_eq!(s, 200, "{v}");

    // Every call was counted under its discovery method id.
    let stats = orgsync_testkit::stats(&e.h).await;
    assert_eq!(
        stats["calls_by_method"]["gmail.users.messages.send"], 4,
        "{stats}"
    );
}

#[tokio::test]
async fn injected_faults_apply_to_gmail() {
    let e = env().await;
    let tok = e.rw(&e.users[0]);
    let r = e
        .http
        .put(format!("{}/emulator/v1/faults", e.h.base_url))
        .json(&json!({"overrides": [{"method": "gmail.users.messages.list", "error_rate": 1.0, "error_kinds": ["backendError"]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (s, v) = e.get(&tok, "/gmail/v1/users/me/messages").await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(reason(&v), "backendError");
    let (s, _) = e.get(&tok, "/gmail/v1/users/me/drafts").await;
    assert_eq!(s, 200, "other methods are unaffected");
}

#[tokio::test]
async fn mailboxes_survive_a_restart_and_reset_clears_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EmulatorConfig::for_tests(2);
    cfg.data_dir = Some(dir.path().to_path_buf());
    let e = Env(Emu::start(cfg.clone()).await);
    let (a, b) = (e.users[0].clone(), e.users[1].clone());
    let raw = [
        simple(&a, &b, "persisted", "").as_slice(),
        b"\xff\x00 binary tail\r\n",
    ]
    .concat();
    let (s, v) = e.send_raw(&e.rw(&a), &raw).await;
    assert_eq!(s, 200, "{v}");
    e.0.h.shutdown().await.unwrap();

    let h = orgsync_emulator::spawn(cfg).await.unwrap();
    let kept = h.emulator.gmail.read().messages(&a);
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0].raw, raw,
        "bytes survive the round trip through the data dir"
    );
    assert_eq!(h.emulator.gmail.read().messages(&b).len(), 1);
    let r = reqwest::Client::new()
        .post(format!("{}/emulator/v1/reset", h.base_url))
        .json(&json!({"state": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(h.emulator.gmail.read().messages(&a).is_empty());
}
