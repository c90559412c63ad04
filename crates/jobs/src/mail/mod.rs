//! Mail through the Gmail API: the CLI's `mail send`, the jobs' run reports and welcome
//! mail all go through here.
//!
//! Why this shape:
//! - **MIME from a library.** [`build_mime`] uses mail-builder: RFC 2047 encoded UTF-8
//!   headers, RFC 2231 file names, base64/quoted-printable chosen per part,
//!   `multipart/alternative` when there is HTML, `multipart/mixed` around attachments.
//!   Hand-built MIME is where "Subject: =?utf-8?…" bugs come from.
//! - **Limits before any call** ([`check_limits`]): Gmail accepts at most 35 MiB per
//!   message (discovery `maxSize`) and Workspace 100 recipients per message; going over
//!   either should fail here with a message saying so, not after an upload. Messages over
//!   5 MB go to the media-upload endpoint (the JSON `raw` form inflates them by a third).
//! - **Sends are not retried** (the client never repeats a send whose outcome is
//!   unknown): a duplicate mail cannot be taken back.
//! - **Templates fail loudly.** [`render_template`] refuses a placeholder it has no value
//!   for, naming it, instead of mailing a new hire "Hello {given_nmae}".
//!
//! `address.rs` parses what people type, `compose.rs` builds the message, `send.rs`
//! hands it to Gmail, `template.rs` renders the welcome mail.

mod address;
mod compose;
mod send;
mod template;

pub use address::{Mailbox, parse_address_list, parse_mailbox};
pub use compose::{Attachment, OutgoingMail, build_mime, check_limits, read_file_bounded};
pub use send::{
    SendPath, Sent, create_draft, send_draft, send_path, send_raw_message, send_report,
};
pub use template::{
    WELCOME_FIELDS, WelcomeTemplate, render_template, welcome_fields, welcome_mail,
};

use orgsync_wire::gmail::MAX_UPLOAD_BYTES;

/// Largest message Gmail accepts through `messages.send` / `drafts.*` (35 MiB).
pub const MAX_MESSAGE_BYTES: usize = MAX_UPLOAD_BYTES;
/// Above this the message goes through the upload endpoint instead of JSON `raw`.
pub const SIMPLE_SEND_MAX_BYTES: usize = 5 * 1024 * 1024;
/// Workspace: at most 100 recipients (To + Cc + Bcc) per message sent through the API.
pub const MAX_RECIPIENTS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{0}")]
    Invalid(String),
    /// No To, Cc or Bcc address.
    #[error("no recipients")]
    NoRecipients,
    #[error("attachment {path}: {problem}")]
    Attachment { path: String, problem: String },
    #[error(
        "the message is {size} bytes; Gmail accepts at most {MAX_MESSAGE_BYTES} bytes (35 MiB) \
         including attachments after encoding. Nothing was sent: share large files as links \
         (e.g. Google Drive) instead"
    )]
    TooLarge { size: usize },
    #[error(
        "{count} recipients (To + Cc + Bcc); Google Workspace accepts at most {MAX_RECIPIENTS} \
         per message. Nothing was sent: split the list or mail a group address"
    )]
    TooManyRecipients { count: usize },
    #[error("template: {0}")]
    Template(String),
    #[error("cannot build the message: {0}")]
    Build(std::io::Error),
    #[error(transparent)]
    Api(#[from] orgsync_client::Error),
}

impl MailError {
    pub fn kind(&self) -> crate::error::FailureKind {
        match self {
            MailError::Api(e) => crate::error::FailureKind::Google(e.kind()),
            _ => crate::error::FailureKind::Config,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    use mail_parser::{MessageParser, MimeHeaders as _};
    use orgsync_wire::directory::User;

    #[test]
    fn a_device_is_refused_before_a_byte_is_read() {
        for path in ["/dev/zero", "/dev/urandom"] {
            let e = Attachment::from_path(Path::new(path))
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a regular file"), "{path}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let e = Attachment::from_path(dir.path()).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
    }

    #[test]
    fn a_huge_attachment_is_refused_from_its_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        // Sparse: 3 GB of metadata, no data on disk. Reading it would take 3 GB of memory.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(3 * 1024 * 1024 * 1024)
            .unwrap();
        let e = Attachment::from_paths(&[&path]).unwrap_err();
        assert!(matches!(e, MailError::TooLarge { .. }), "{e}");
        let e = Attachment::from_path(&path).unwrap_err().to_string();
        assert!(e.contains("3221225472 bytes"), "{e}");
        // Several attachments that fit one by one but not together.
        let a = dir.path().join("a.bin");
        std::fs::File::create(&a)
            .unwrap()
            .set_len(20 * 1024 * 1024)
            .unwrap();
        let e = Attachment::from_paths(&[&a, &a]).unwrap_err();
        assert!(matches!(e, MailError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn comma_separated_recipients_are_counted_one_by_one() {
        let m = OutgoingMail {
            to: vec!["a@example.com,b@example.com, c@example.com".into()],
            cc: vec!["\"Doe, Jane\" <jane@example.com>".into()],
            ..OutgoingMail::default()
        };
        assert_eq!(m.recipient_count(), 4);
    }

    #[test]
    fn malformed_domains_and_dot_strings_are_refused() {
        for bad in [
            "a@-example..com",
            "a@example..com",
            "a@-example.com",
            "a@example-.com",
            "a@.example.com",
            "a@example.com.",
            "a@exa_mple.com",
            ".a@example.com",
            "a..b@example.com",
            "a.@example.com",
        ] {
            assert!(parse_mailbox(bad).is_err(), "{bad} was accepted");
        }
        for good in [
            "a@example.com",
            "a.b+tag@sub.ex-ample.com",
            "x@xn--bcher-kva.example",
        ] {
            assert!(parse_mailbox(good).is_ok(), "{good} was refused");
        }
    }

    fn sample() -> OutgoingMail {
        OutgoingMail {
            from: Some("Ada Lovelace <ada@example.com>".into()),
            to: vec!["Ελένη Παπαδοπούλου <eleni@example.com>, bob@example.com".into()],
            cc: vec!["carol@example.com".into()],
            bcc: vec!["dave@example.com".into()],
            subject: "Καλημέρα — résumé ✓ 日本語".into(),
            text: "Γεια σου,\nline two\n".into(),
            html: None,
            attachments: vec![
                Attachment {
                    filename: "report.pdf".into(),
                    content_type: "application/pdf".into(),
                    data: (0..=255u8).cycle().take(10_000).collect(),
                },
                Attachment {
                    filename: "σημειώσεις.txt".into(),
                    content_type: "text/plain".into(),
                    data: "plain\nlines\n".as_bytes().to_vec(),
                },
            ],
        }
    }

    #[test]
    fn mime_round_trips_through_a_parser() {
        let raw = build_mime(&sample()).unwrap();
        assert!(raw.is_ascii(), "headers and bodies must be 7-bit encoded");
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(msg.subject(), Some("Καλημέρα — résumé ✓ 日本語"));
        let to: Vec<_> = msg
            .to()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a.name().map(str::to_string),
                    a.address().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            to,
            [
                (
                    Some("Ελένη Παπαδοπούλου".into()),
                    "eleni@example.com".into()
                ),
                (None, "bob@example.com".into())
            ]
        );
        assert_eq!(
            msg.cc().unwrap().first().unwrap().address(),
            Some("carol@example.com")
        );
        assert_eq!(
            msg.bcc().unwrap().first().unwrap().address(),
            Some("dave@example.com")
        );
        assert_eq!(
            msg.from().unwrap().first().unwrap().name(),
            Some("Ada Lovelace")
        );
        assert_eq!(
            msg.body_text(0).unwrap().replace("\r\n", "\n"),
            "Γεια σου,\nline two\n"
        );
        assert_eq!(msg.attachment_count(), 2);
        let a0 = msg.attachment(0).unwrap();
        assert_eq!(a0.attachment_name(), Some("report.pdf"));
        assert_eq!(a0.content_type().unwrap().ctype(), "application");
        assert_eq!(a0.contents(), sample().attachments[0].data.as_slice());
        let a1 = msg.attachment(1).unwrap();
        assert_eq!(a1.attachment_name(), Some("σημειώσεις.txt"));
        assert_eq!(a1.contents(), b"plain\nlines\n");
    }

    #[test]
    fn html_makes_multipart_alternative() {
        let mut m = sample();
        m.attachments.clear();
        m.html = Some("<p>Γεια</p>".into());
        let raw = build_mime(&m).unwrap();
        let msg = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(
            msg.content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))),
            Some("multipart/alternative".into())
        );
        assert_eq!(msg.body_html(0).as_deref(), Some("<p>Γεια</p>"));
        assert!(msg.body_text(0).unwrap().contains("line two"));
    }

    #[test]
    fn attachment_type_is_guessed() {
        let dir = tempfile::tempdir().unwrap();
        for (name, ty) in [
            ("a.pdf", "application/pdf"),
            ("b.png", "image/png"),
            ("c.csv", "text/csv"),
            ("d.unknownext", "application/octet-stream"),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, b"x").unwrap();
            assert_eq!(
                Attachment::from_path(&p).unwrap().content_type,
                ty,
                "{name}"
            );
        }
        let e = Attachment::from_path(&dir.path().join("missing.bin")).unwrap_err();
        assert!(e.to_string().contains("missing.bin"), "{e}");
    }

    #[test]
    fn limits_are_checked_up_front() {
        let mut m = sample();
        m.bcc = (0..99).map(|i| format!("u{i}@example.com")).collect();
        let e = build_mime(&m).unwrap_err();
        assert!(
            matches!(e, MailError::TooManyRecipients { count: 102 }),
            "{e}"
        );
        assert!(e.to_string().contains("at most 100"));

        let mut big = sample();
        big.attachments = vec![Attachment {
            filename: "big.bin".into(),
            content_type: "application/octet-stream".into(),
            data: vec![7u8; 27 * 1024 * 1024], // ~36.5 MB after base64
        }];
        let e = build_mime(&big).unwrap_err();
        assert!(matches!(e, MailError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("35 MiB"), "{e}");

        assert_eq!(send_path(SIMPLE_SEND_MAX_BYTES), SendPath::Raw);
        assert_eq!(send_path(SIMPLE_SEND_MAX_BYTES + 1), SendPath::Upload);
    }

    #[test]
    fn bad_addresses_are_named() {
        for bad in [
            "nobody",
            "a b@example.com",
            "@example.com",
            "x@",
            "a@@b.com",
        ] {
            let e = parse_mailbox(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        let mut m = sample();
        m.to = vec![];
        m.cc = vec![];
        m.bcc = vec![];
        assert!(
            build_mime(&m)
                .unwrap_err()
                .to_string()
                .contains("no recipients")
        );
        assert_eq!(
            parse_mailbox("\"Doe, Jane\" <jane@example.com>").unwrap(),
            Mailbox {
                name: Some("Doe, Jane".into()),
                email: "jane@example.com".into()
            }
        );
        assert_eq!(
            parse_address_list(&["\"Doe, Jane\" <jane@example.com>, x@example.com"])
                .unwrap()
                .len(),
            2
        );
    }

    fn fields() -> BTreeMap<String, String> {
        [("given_name", "Ada"), ("email", "ada@example.com")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn template_renders_and_escapes() {
        assert_eq!(
            render_template("Hello {given_name} <{email}> {{literal}} é", &fields()).unwrap(),
            "Hello Ada <ada@example.com> {literal} é"
        );
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let e = render_template("Hi {given_nmae}, {team} {team}", &fields())
            .unwrap_err()
            .to_string();
        assert!(e.contains("{given_nmae}") && e.contains("{team}"), "{e}");
        assert!(e.contains("given_name"), "lists the known names: {e}");
        assert!(render_template("oops {", &fields()).is_err());
        assert!(render_template("oops }", &fields()).is_err());
        assert!(render_template("{not a name}", &fields()).is_err());
    }

    #[test]
    fn welcome_template_is_checked_when_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("welcome.txt");
        let mut cfg = crate::config::WelcomeConfig::default();
        assert_eq!(WelcomeTemplate::from_config(&cfg).unwrap(), None);
        cfg.enabled = true;
        let e = WelcomeTemplate::from_config(&cfg).unwrap_err().to_string();
        assert!(e.contains("template_file"), "{e}");
        cfg.template_file = Some(file.clone());
        std::fs::write(&file, "Hi {given_name}, welcome to {departmnet}").unwrap();
        let e = WelcomeTemplate::from_config(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("{departmnet}") && e.contains("welcome.txt"),
            "{e}"
        );
        std::fs::write(&file, "Hi {given_name} ({email})").unwrap();
        let t = WelcomeTemplate::from_config(&cfg).unwrap().unwrap();
        assert_eq!(t.subject, "Welcome, {given_name}!");
        let user: User = serde_json::from_value(serde_json::json!({
            "primaryEmail": "n@example.com", "name": {"givenName": "N"}
        }))
        .unwrap();
        let m = t.render("it@example.com", &user).unwrap();
        assert_eq!(
            (m.subject.as_str(), m.text.as_str()),
            ("Welcome, N!", "Hi N (n@example.com)")
        );
        for f in WELCOME_FIELDS {
            assert!(welcome_fields(&user).contains_key(*f), "{f}");
        }
    }

    #[test]
    fn welcome_mail_uses_directory_fields() {
        let user: User = serde_json::from_value(serde_json::json!({
            "primaryEmail": "new@example.com",
            "name": {"givenName": "Νίκος", "familyName": "Ito"},
            "orgUnitPath": "/Sales",
            "organizations": [{"title": "Rep", "department": "Sales", "primary": true}]
        }))
        .unwrap();
        let m = welcome_mail(
            "it@example.com",
            &user,
            "Welcome, {given_name}",
            "{full_name} ({email}) joins {org_unit} as {title}.",
        )
        .unwrap();
        assert_eq!(m.to, ["new@example.com"]);
        assert_eq!(m.subject, "Welcome, Νίκος");
        assert_eq!(m.text, "Νίκος Ito (new@example.com) joins /Sales as Rep.");
        let raw = build_mime(&m).unwrap();
        let parsed = MessageParser::default().parse(&raw).unwrap();
        assert_eq!(parsed.subject(), Some("Welcome, Νίκος"));
    }
}
