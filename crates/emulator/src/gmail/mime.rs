//! The stored RFC 2822 bytes seen the way Gmail shows them: the `MessagePart` tree of
//! `format=full`, header values, recipients, the snippet, attachment bodies, and the
//! few header edits Gmail makes on send (adding `From`/`Date`/`Message-ID`, rewriting a
//! `From` the user may not send as, dropping `Bcc` from delivered copies).
//!
//! Messages are parsed with `mail-parser` on every read instead of storing a parsed
//! form: the raw bytes are the one truth (`format=raw` must be byte-exact), and parsing
//! a message is cheap next to an HTTP round trip.

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use mail_parser::parsers::MessageStream;
use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use serde_json::{Value, json};

/// Parse a message; None when it has no header section at all.
pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    let m = MessageParser::default().parse(raw)?;
    if m.parts.first().is_none_or(|p| p.headers.is_empty()) {
        return None;
    }
    Some(m)
}

/// A header value as Gmail shows it: unfolded, RFC 2047 encoded words decoded.
fn display_value(raw: &[u8]) -> String {
    let mut with_end = raw.to_vec();
    if !with_end.ends_with(b"\n") {
        with_end.extend_from_slice(b"\r\n");
    }
    match MessageStream::new(&with_end).parse_unstructured() {
        HeaderValue::Text(t) => t.trim().to_string(),
        HeaderValue::TextList(l) => l.join(" ").trim().to_string(),
        _ => String::new(),
    }
}

/// `(name, value)` of every header of one part, in order.
fn part_headers(raw: &[u8], part: &mail_parser::MessagePart<'_>) -> Vec<(String, String)> {
    part.headers
        .iter()
        .map(|h| {
            let start = (h.offset_start as usize).min(raw.len());
            let end = (h.offset_end as usize).clamp(start, raw.len());
            (h.name().to_string(), display_value(&raw[start..end]))
        })
        .collect()
}

/// Top-level headers as `(name, decoded value)`.
pub fn headers(raw: &[u8], m: &Message<'_>) -> Vec<(String, String)> {
    m.parts
        .first()
        .map(|p| part_headers(raw, p))
        .unwrap_or_default()
}

pub fn header_json(headers: &[(String, String)]) -> Vec<Value> {
    headers
        .iter()
        .map(|(n, v)| json!({"name": n, "value": v}))
        .collect()
}

fn mime_type(part: &mail_parser::MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => match part.body {
            PartType::Multipart(_) => "multipart/mixed".into(),
            PartType::Message(_) => "message/rfc822".into(),
            _ => "text/plain".into(),
        },
    }
}

/// The attachment id of one part: opaque to clients, decodable by us.
pub fn attachment_id(message_id: &str, part_id: &str) -> String {
    format!(
        "ANGjdJ{}",
        URL_SAFE_NO_PAD.encode(format!("{message_id}/{part_id}"))
    )
}

/// `(message id, part id)` from an attachment id.
pub fn parse_attachment_id(id: &str) -> Option<(String, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(id.strip_prefix("ANGjdJ")?).ok()?;
    let s = String::from_utf8(bytes).ok()?;
    let (m, p) = s.split_once('/')?;
    Some((m.to_string(), p.to_string()))
}

/// Whether a part is shown with an `attachmentId` instead of inline `data`: it has a
/// file name, or it is not text.
fn is_attachment(part: &mail_parser::MessagePart<'_>) -> bool {
    part.attachment_name().is_some_and(|n| !n.is_empty())
        || matches!(
            part.body,
            PartType::Binary(_) | PartType::InlineBinary(_) | PartType::Message(_)
        )
}

/// The `payload` of `format=full`: the MessagePart tree.
pub fn payload(raw: &[u8], m: &Message<'_>, message_id: &str) -> Value {
    part_json(raw, m, 0, String::new(), message_id, 0)
}

fn part_json(
    raw: &[u8],
    m: &Message<'_>,
    index: usize,
    part_id: String,
    message_id: &str,
    depth: usize,
) -> Value {
    let Some(part) = m.parts.get(index) else {
        return json!({});
    };
    let mut out = json!({
        "partId": part_id,
        "mimeType": mime_type(part),
        "filename": part.attachment_name().unwrap_or(""),
        "headers": header_json(&part_headers(raw, part)),
    });
    match &part.body {
        PartType::Multipart(children) => {
            out["body"] = json!({"size": 0});
            let parts: Vec<Value> = if depth > 32 {
                Vec::new()
            } else {
                children
                    .iter()
                    .enumerate()
                    .map(|(i, &child)| {
                        let id = if part_id.is_empty() {
                            i.to_string()
                        } else {
                            format!("{part_id}.{i}")
                        };
                        part_json(raw, m, child as usize, id, message_id, depth + 1)
                    })
                    .collect()
            };
            out["parts"] = Value::Array(parts);
        }
        _ => {
            let contents = part.contents();
            if is_attachment(part) {
                out["body"] = json!({
                    "attachmentId": attachment_id(message_id, &part_id),
                    "size": contents.len(),
                });
            } else {
                out["body"] = json!({
                    "size": contents.len(),
                    "data": URL_SAFE.encode(contents),
                });
            }
        }
    }
    out
}

/// The decoded body of the part `part_id` (`""`, `"0"`, `"1.0"`…), if it is a leaf.
pub fn part_body(m: &Message<'_>, part_id: &str) -> Option<Vec<u8>> {
    let mut index = 0usize;
    if !part_id.is_empty() {
        for step in part_id.split('.') {
            let n: usize = step.parse().ok()?;
            let children = m.parts.get(index)?.sub_parts()?;
            index = *children.get(n)? as usize;
        }
    }
    let part = m.parts.get(index)?;
    if part.is_multipart() {
        return None;
    }
    Some(part.contents().to_vec())
}

/// Gmail's snippet: the start of the text body, whitespace collapsed, HTML-escaped.
pub fn snippet(m: &Message<'_>) -> String {
    let text = m
        .body_text(0)
        .map(|t| t.into_owned())
        .or_else(|| m.body_html(0).map(|h| h.into_owned()))
        .unwrap_or_default();
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = collapsed.chars().take(200).collect();
    let mut out = String::with_capacity(cut.len());
    for c in cut.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Addresses of one address header (To, Cc, Bcc, From); `Err` with the raw value when
/// it holds something that is not an address.
pub fn addresses(m: &Message<'_>, header: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let values = m
        .parts
        .first()
        .map(|p| {
            p.headers
                .iter()
                .filter(|h| h.name().eq_ignore_ascii_case(header))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for h in values {
        let addrs: Vec<Option<String>> = match h.value() {
            HeaderValue::Address(Address::List(list)) => list
                .iter()
                .map(|a| a.address.as_ref().map(|s| s.to_string()))
                .collect(),
            HeaderValue::Address(Address::Group(groups)) => groups
                .iter()
                .flat_map(|g| g.addresses.iter())
                .map(|a| a.address.as_ref().map(|s| s.to_string()))
                .collect(),
            HeaderValue::Empty => Vec::new(),
            other => vec![other.as_text().map(str::to_string)],
        };
        for a in addrs {
            match a {
                Some(a) if valid_address(&a) => out.push(a.trim().to_ascii_lowercase()),
                Some(a) => return Err(a),
                None => return Err(String::new()),
            }
        }
    }
    Ok(out)
}

fn valid_address(a: &str) -> bool {
    let a = a.trim();
    match a.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !a.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        }
        None => false,
    }
}

/// The display name of the first From address, if any.
pub fn from_name(m: &Message<'_>) -> Option<String> {
    m.from()?.first()?.name.as_ref().map(|n| n.to_string())
}

/// Line ending the message uses (CRLF unless it only ever uses LF).
fn eol(raw: &[u8]) -> &'static str {
    match raw.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && raw[i - 1] == b'\r' => "\r\n",
        Some(_) => "\n",
        None => "\r\n",
    }
}

/// Byte ranges (with continuation lines and line end) of every top-level header
/// called `name`.
fn header_spans(raw: &[u8], name: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut pos = 0usize;
    let mut current: Option<(usize, bool)> = None; // (start, matches)
    while pos < raw.len() {
        let line_end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i + 1)
            .unwrap_or(raw.len());
        let line = &raw[pos..line_end];
        let blank = line == b"\n" || line == b"\r\n";
        let continuation = matches!(line.first(), Some(b' ') | Some(b'\t'));
        if !continuation {
            if let Some((start, true)) = current.take() {
                spans.push((start, pos));
            }
            if blank {
                break;
            }
            let is_match = line
                .iter()
                .position(|&b| b == b':')
                .map(|c| line[..c].trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
                .unwrap_or(false);
            current = Some((pos, is_match));
        }
        pos = line_end;
    }
    if let Some((start, true)) = current {
        spans.push((start, pos.min(raw.len())));
    }
    spans
}

/// Remove every top-level header `name`.
pub fn remove_header(raw: &[u8], name: &str) -> Vec<u8> {
    let spans = header_spans(raw, name);
    if spans.is_empty() {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut last = 0;
    for (s, e) in spans {
        out.extend_from_slice(&raw[last..s]);
        last = e;
    }
    out.extend_from_slice(&raw[last..]);
    out
}

pub fn has_header(raw: &[u8], name: &str) -> bool {
    !header_spans(raw, name).is_empty()
}

/// Put `name: value` first in the header section (after removing any existing one).
pub fn set_header(raw: &[u8], name: &str, value: &str) -> Vec<u8> {
    let nl = eol(raw);
    let rest = remove_header(raw, name);
    let mut out = format!("{name}: {value}{nl}").into_bytes();
    out.extend_from_slice(&rest);
    out
}

/// An RFC 5322 mailbox for a From header: `"Name" <addr>` or `addr`.
pub fn mailbox(name: Option<&str>, addr: &str) -> String {
    match name
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.is_ascii())
    {
        Some(n) => format!(
            "\"{}\" <{addr}>",
            n.replace('\\', "\\\\").replace('"', "\\\"")
        ),
        None => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: a@x.com\r\nTo: b@x.com,\r\n c@x.com\r\nBcc: d@x.com\r\nSubject: =?UTF-8?B?w4ljb2xl?= news\r\n\r\nHello <world> & 'you'\r\n";

    #[test]
    fn headers_are_unfolded_and_decoded() {
        let m = parse(MSG).unwrap();
        let h = headers(MSG, &m);
        assert_eq!(h[1], ("To".to_string(), "b@x.com, c@x.com".to_string()));
        assert_eq!(h[3].1, "École news");
        assert_eq!(
            addresses(&m, "to").unwrap(),
            vec!["b@x.com".to_string(), "c@x.com".to_string()]
        );
        assert_eq!(snippet(&m), "Hello &lt;world&gt; &amp; &#39;you&#39;");
    }

    #[test]
    fn header_edits_keep_the_rest_byte_exact() {
        let without = remove_header(MSG, "bcc");
        assert!(!has_header(&without, "Bcc"));
        assert_eq!(without.len(), MSG.len() - b"Bcc: d@x.com\r\n".len());
        let set = set_header(MSG, "From", "z@x.com");
        assert!(set.starts_with(b"From: z@x.com\r\nTo: b@x.com,\r\n c@x.com\r\n"));
        assert!(!header_spans(MSG, "To").is_empty());
        // A body line that looks like a header is not a header.
        assert!(!has_header(b"A: 1\r\n\r\nFrom: x\r\n", "From"));
    }

    #[test]
    fn attachment_ids_round_trip() {
        let id = attachment_id("18f0", "1.2");
        assert_eq!(
            parse_attachment_id(&id),
            Some(("18f0".into(), "1.2".into()))
        );
        assert_eq!(parse_attachment_id("nope"), None);
    }
}
