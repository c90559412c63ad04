//! The subset of Gmail's search syntax (`q`) the emulator understands: `from:`, `to:`,
//! `cc:`, `bcc:`, `subject:`, `in:`/`label:` (`sent`, `inbox`, `draft(s)`, `trash`,
//! `spam`, `anywhere`, or a label id), `is:unread|read|starred`, `has:attachment`,
//! `rfc822msgid:`, `-term` negation, quoted values, and bare words (matched against the
//! subject, addresses and snippet). Terms are ANDed, matching is case-insensitive
//! substring matching; unknown operators are treated as bare words, as Gmail does.

/// What one message offers to a search.
pub struct Searchable<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub cc: &'a str,
    pub bcc: &'a str,
    pub subject: &'a str,
    pub snippet: &'a str,
    pub message_id: &'a str,
    pub labels: &'a [String],
    pub has_attachment: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Term {
    negated: bool,
    op: Option<String>,
    value: String,
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    terms: Vec<Term>,
}

impl Query {
    pub fn parse(q: &str) -> Query {
        let mut terms = Vec::new();
        let mut chars = q.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut token = String::new();
            let mut in_quotes = false;
            while let Some(&c) = chars.peek() {
                if c == '"' {
                    in_quotes = !in_quotes;
                    chars.next();
                    continue;
                }
                if c.is_whitespace() && !in_quotes {
                    break;
                }
                token.push(c);
                chars.next();
            }
            let (negated, token) = match token.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => (true, rest.to_string()),
                _ => (false, token),
            };
            if token.is_empty() || token == "OR" || token == "AND" {
                continue;
            }
            let (op, value) = match token.split_once(':') {
                Some((op, v)) if is_operator(op) && !v.is_empty() => {
                    (Some(op.to_ascii_lowercase()), v.to_string())
                }
                _ => (None, token),
            };
            terms.push(Term {
                negated,
                op,
                value: value.to_lowercase(),
            });
        }
        Query { terms }
    }

    /// Whether the query names the mailbox part explicitly (`in:`/`label:`), so the
    /// default exclusion of spam and trash does not apply to it.
    pub fn names_spam_or_trash(&self) -> bool {
        self.terms.iter().any(|t| {
            matches!(t.op.as_deref(), Some("in") | Some("label"))
                && matches!(t.value.as_str(), "spam" | "trash" | "anywhere")
        })
    }

    pub fn matches(&self, m: &Searchable<'_>) -> bool {
        self.terms.iter().all(|t| term_matches(t, m) != t.negated)
    }
}

fn is_operator(op: &str) -> bool {
    matches!(
        op.to_ascii_lowercase().as_str(),
        "from" | "to" | "cc" | "bcc" | "subject" | "in" | "label" | "is" | "has" | "rfc822msgid"
    )
}

fn contains(hay: &str, needle: &str) -> bool {
    hay.to_lowercase().contains(needle)
}

fn has_label(labels: &[String], l: &str) -> bool {
    labels.iter().any(|x| x.eq_ignore_ascii_case(l))
}

fn term_matches(t: &Term, m: &Searchable<'_>) -> bool {
    let v = t.value.as_str();
    match t.op.as_deref() {
        Some("from") => contains(m.from, v),
        Some("to") => contains(m.to, v) || contains(m.cc, v) || contains(m.bcc, v),
        Some("cc") => contains(m.cc, v),
        Some("bcc") => contains(m.bcc, v),
        Some("subject") => contains(m.subject, v),
        Some("rfc822msgid") => contains(m.message_id, v),
        Some("in") | Some("label") => match v {
            "anywhere" => true,
            "draft" | "drafts" => has_label(m.labels, "DRAFT"),
            "unread" => has_label(m.labels, "UNREAD"),
            other => has_label(m.labels, other),
        },
        Some("is") => match v {
            "unread" => has_label(m.labels, "UNREAD"),
            "read" => !has_label(m.labels, "UNREAD"),
            "starred" => has_label(m.labels, "STARRED"),
            "important" => has_label(m.labels, "IMPORTANT"),
            "draft" => has_label(m.labels, "DRAFT"),
            _ => false,
        },
        Some("has") => v == "attachment" && m.has_attachment,
        _ => {
            contains(m.subject, v)
                || contains(m.snippet, v)
                || contains(m.from, v)
                || contains(m.to, v)
                || contains(m.cc, v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(labels: &[String]) -> Searchable<'_> {
        Searchable {
            from: "Alice <alice@example.com>",
            to: "bob@example.com",
            cc: "",
            bcc: "",
            subject: "Quarterly report",
            snippet: "numbers inside",
            message_id: "<abc@x>",
            labels,
            has_attachment: true,
        }
    }

    #[test]
    fn operators_quotes_and_negation() {
        let labels = vec!["SENT".to_string()];
        let m = msg(&labels);
        assert!(Query::parse("from:alice to:bob").matches(&m));
        assert!(Query::parse("subject:\"quarterly report\" in:sent").matches(&m));
        assert!(!Query::parse("in:inbox").matches(&m));
        assert!(Query::parse("-in:inbox has:attachment numbers").matches(&m));
        assert!(!Query::parse("from:carol").matches(&m));
        assert!(Query::parse("").matches(&m));
        assert!(Query::parse("in:anywhere").names_spam_or_trash());
    }
}
