//! E-mail destinations: the SMTP connection (`SMTP_URL`, `MAIL_FROM`) and the mail one lead
//! becomes, with a text and an HTML part.
//!
//! lettre reads the URL forms we document (`smtps://` for implicit TLS,
//! `smtp://…?tls=required` for STARTTLS, plain `smtp://host:25` for a relay) and writes UTF-8
//! header values as RFC 2047 encoded words, so a name such as "Zoë Ødegård" arrives intact.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Attempt;
use crate::config::Secret;
use crate::logging::escaped;
use crate::model::Lead;

/// What sends mail: the transport built from `SMTP_URL`, and who the mail is from.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The dashboard's address, for the link to the lead (`PUBLIC_URL`).
    public_url: Option<String>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it holds the SMTP password.
        write!(f, "Mailer(from {})", self.from)
    }
}

impl Mailer {
    /// From the settings; the error names the setting at fault and never repeats the URL.
    pub fn new(
        smtp_url: &Secret,
        mail_from: &str,
        public_url: Option<String>,
        timeout: Duration,
    ) -> Result<Mailer, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url.expose())
            .map_err(|_| {
                "SMTP_URL must look like smtps://user:pass@host:465, \
                 smtp://user:pass@host:587?tls=required or smtp://host:25"
                    .to_string()
            })?
            .timeout(Some(timeout))
            .build();
        let from = mail_from
            .trim()
            .parse::<Mailbox>()
            .map_err(|_| format!("MAIL_FROM is not an e-mail address: {mail_from:?}"))?;
        Ok(Mailer {
            transport,
            from,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    /// One try: the mail about `lead` to every address of `to`.
    pub async fn send(&self, to: &[String], lead: &Lead, test: bool) -> Attempt {
        let message = match self.message(to, lead, test) {
            Ok(m) => m,
            Err(e) => return Attempt::failed(None, e),
        };
        match self.transport.send(message).await {
            Ok(answer) => Attempt::delivered(answer.code().to_string().parse().unwrap_or(250)),
            Err(e) => {
                let code = e.status().and_then(|c| c.to_string().parse::<i64>().ok());
                Attempt::failed(code, format!("SMTP: {}", escaped(e)))
            }
        }
    }

    fn message(&self, to: &[String], lead: &Lead, test: bool) -> Result<Message, String> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject(lead, test));
        for a in to {
            b = b.to(a
                .parse::<Mailbox>()
                .map_err(|_| format!("{:?} is not an e-mail address", a))?);
        }
        let link = self.public_url.as_ref().map(|u| lead_link(u, lead));
        b.multipart(MultiPart::alternative_plain_html(
            text_part(lead, link.as_deref()),
            html_part(lead, link.as_deref()),
        ))
        .map_err(|e| format!("the mail could not be made: {e}"))
    }
}

/// `New lead: NAME — FORM` (a test says so first).
pub fn subject(lead: &Lead, test: bool) -> String {
    let name = lead.display_name();
    let name = if name.is_empty() {
        format!("#{}", lead.leadgen_id)
    } else {
        name
    };
    let form = lead
        .form_name
        .clone()
        .or_else(|| lead.form_id.as_ref().map(|f| format!("form {f}")))
        .unwrap_or_else(|| "unknown form".into());
    let subject = format!("New lead: {name} — {form}");
    // Header values are one line.
    let subject: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if test {
        format!("[test] {subject}")
    } else {
        subject
    }
}

/// The lead on the dashboard: the list searched for its Meta id.
fn lead_link(public_url: &str, lead: &Lead) -> String {
    format!("{public_url}/?q={}", lead.leadgen_id)
}

fn text_part(lead: &Lead, link: Option<&str>) -> String {
    let mut t = String::new();
    for f in &lead.field_data {
        t.push_str(&format!("{}: {}\n", f.name, f.values.join(", ")));
    }
    t.push('\n');
    if let Some(form) = &lead.form_name {
        t.push_str(&format!("Form: {form}\n"));
    }
    t.push_str(&format!(
        "Submitted: {}\nMeta lead id: {}\n",
        lead.created_time, lead.leadgen_id
    ));
    if let Some(l) = link {
        t.push_str(&format!("\nOpen in leadstream: {l}\n"));
    }
    t
}

fn html_part(lead: &Lead, link: Option<&str>) -> String {
    let mut rows = String::new();
    for f in &lead.field_data {
        let value = f.values.join(", ");
        let shown = match linked(&f.name, &value) {
            Some(href) => format!("<a href=\"{}\">{}</a>", html(&href), html(&value)),
            None => html(&value),
        };
        rows.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            html(&f.name),
            shown
        ));
    }
    let mut h = format!(
        "<!doctype html>\n<html><body>\n<h2>New lead: {}</h2>\n<table>\n{rows}</table>\n\
         <p>Form: {} &middot; submitted {} &middot; Meta lead id {}</p>\n",
        html(&lead.display_name()),
        html(
            lead.form_name
                .as_deref()
                .or(lead.form_id.as_deref())
                .unwrap_or("?")
        ),
        html(&lead.created_time),
        html(&lead.leadgen_id),
    );
    if let Some(l) = link {
        h.push_str(&format!(
            "<p><a href=\"{}\">Open in leadstream</a></p>\n",
            html(l)
        ));
    }
    h.push_str("</body></html>\n");
    h
}

/// A `tel:` or `mailto:` link for an answer that is plainly a phone number or an address,
/// and nothing for anything else (a link made from arbitrary text could point anywhere).
fn linked(name: &str, value: &str) -> Option<String> {
    let v = value.trim();
    let name = name.to_ascii_lowercase();
    if name.contains("email") && plain_address(v) {
        return Some(format!("mailto:{v}"));
    }
    if name.contains("phone") && plain_phone(v) {
        let digits: String = v
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        return Some(format!("tel:{digits}"));
    }
    None
}

fn plain_address(v: &str) -> bool {
    v.len() <= 254
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.-_+".contains(c))
        && v.matches('@').count() == 1
        && v.parse::<lettre::Address>().is_ok()
}

fn plain_phone(v: &str) -> bool {
    let digits = v.chars().filter(char::is_ascii_digit).count();
    v.len() <= 32
        && (5..=20).contains(&digits)
        && v.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        && !v[1..].contains('+')
}

/// `s` safe as HTML text and as a quoted attribute value.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_numbers_and_addresses_become_links() {
        assert_eq!(
            linked("phone_number", "+49 (30) 123-456").as_deref(),
            Some("tel:+4930123456")
        );
        assert_eq!(
            linked("email", "ana@example.com").as_deref(),
            Some("mailto:ana@example.com")
        );
        assert_eq!(linked("email", "javascript:alert(1)//@x.com"), None);
        assert_eq!(linked("phone_number", "call me maybe"), None);
        assert_eq!(linked("phone_number", "12+34567"), None);
        assert_eq!(linked("city", "+49 30 123456"), None);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(html("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
    }
}
