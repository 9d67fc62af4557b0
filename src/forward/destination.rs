//! A destination as an admin asks for it (`POST /api/destinations`), checked into a
//! [`NewDestination`], and the signing secret a new webhook gets.

use std::net::IpAddr;

use base64::Engine;
use serde::Deserialize;

use crate::config::Secret;
use crate::model::forward::{EventType, NewDestination, Target};

/// The longest webhook URL taken.
const MAX_URL: usize = 2048;
/// Most addresses one e-mail destination sends to, and most forms one destination names.
const MAX_RECIPIENTS: usize = 20;
const MAX_FORMS: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    kind: String,
    url: Option<String>,
    to: Option<Vec<String>>,
    forms: Option<Vec<String>>,
    events: Option<Vec<String>>,
}

/// Checks a request body; the error says what to fix. `smtp_configured`: whether e-mail can
/// be sent at all (an e-mail destination without it would only ever fail).
pub fn parse(body: &[u8], smtp_configured: bool) -> Result<NewDestination, String> {
    let b: Body = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body must be JSON like {{\"kind\":\"webhook\",\"url\":\"https://…\"}} or \
             {{\"kind\":\"email\",\"to\":[\"sales@example.com\"]}} ({e})"
        )
    })?;
    let (target, secret) = match b.kind.as_str() {
        "webhook" => {
            if b.to.is_some() {
                return Err("a webhook takes a url, not to".into());
            }
            let url = b.url.ok_or("a webhook needs a url")?;
            (
                Target::Webhook {
                    url: webhook_url(&url)?,
                },
                Some(new_secret()),
            )
        }
        "email" => {
            if b.url.is_some() {
                return Err(
                    "an e-mail destination takes to (a list of addresses), not a url".into(),
                );
            }
            if !smtp_configured {
                return Err(
                    "e-mail cannot be sent: set SMTP_URL and MAIL_FROM and restart \
                            leadstream, then add the e-mail destination"
                        .into(),
                );
            }
            let to =
                b.to.ok_or("an e-mail destination needs to: a list of addresses")?;
            (
                Target::Email {
                    to: recipients(to)?,
                },
                None,
            )
        }
        other => {
            return Err(format!(
                "kind must be \"webhook\" or \"email\", not {:?}",
                other.chars().take(40).collect::<String>()
            ))
        }
    };
    let events = events(b.events)?;
    if matches!(target, Target::Email { .. }) && events != [EventType::LeadCreated] {
        return Err("an e-mail destination takes lead.created only: one mail per new lead".into());
    }
    Ok(NewDestination {
        target,
        secret,
        forms: b.forms.map(forms).transpose()?,
        events,
    })
}

/// https anywhere; plain http only to this machine (a local receiver, a test), where nothing
/// travels over a network.
fn webhook_url(raw: &str) -> Result<String, String> {
    if raw.len() > MAX_URL {
        return Err(format!("the url is longer than {MAX_URL} characters"));
    }
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("the url is not a URL ({e})"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => return Err("the url has no host".into()),
    };
    match url.scheme() {
        "https" => Ok(url.to_string()),
        "http" if loopback => Ok(url.to_string()),
        "http" => Err(
            "the url must be https (plain http only to this machine: localhost, \
                       127.0.0.1, [::1])"
                .into(),
        ),
        s => Err(format!("the url must be https, not {s}")),
    }
}

fn recipients(to: Vec<String>) -> Result<Vec<String>, String> {
    if to.is_empty() || to.len() > MAX_RECIPIENTS {
        return Err(format!("to must list 1 to {MAX_RECIPIENTS} addresses"));
    }
    to.into_iter()
        .map(|a| {
            let a = a.trim().to_string();
            a.parse::<lettre::Address>()
                .map(|_| a.clone())
                .map_err(|_| {
                    format!(
                        "{:?} is not an e-mail address",
                        a.chars().take(80).collect::<String>()
                    )
                })
        })
        .collect()
}

fn forms(list: Vec<String>) -> Result<Vec<String>, String> {
    if list.is_empty() || list.len() > MAX_FORMS {
        return Err(format!(
            "forms must list 1 to {MAX_FORMS} form ids (leave it out for every form)"
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for f in list {
        let f = f.trim().to_string();
        if f.is_empty() || f.len() > 32 || !f.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "forms holds form ids, which are digits, not {:?}",
                f.chars().take(40).collect::<String>()
            ));
        }
        if !out.contains(&f) {
            out.push(f);
        }
    }
    Ok(out)
}

/// The events asked for; `lead.created` when none are named.
fn events(list: Option<Vec<String>>) -> Result<Vec<EventType>, String> {
    let Some(list) = list else {
        return Ok(vec![EventType::LeadCreated]);
    };
    let names = EventType::SUBSCRIBABLE.map(|e| e.as_str()).join(", ");
    if list.is_empty() {
        return Err(format!("events must name at least one of {names}"));
    }
    let mut out = Vec::new();
    for name in list {
        let e = EventType::subscribable(&name).ok_or_else(|| {
            format!(
                "events takes {names}, not {:?}",
                name.chars().take(40).collect::<String>()
            )
        })?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

/// `whsec_` and the base64 of 32 random bytes, as Standard Webhooks secrets are written.
fn new_secret() -> Secret {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source");
    Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str, smtp: bool) -> String {
        parse(body.as_bytes(), smtp).unwrap_err()
    }

    #[test]
    fn a_webhook_must_be_https_unless_it_is_on_this_machine() {
        assert!(parse(
            br#"{"kind":"webhook","url":"https://crm.example.com/in"}"#,
            false
        )
        .is_ok());
        assert!(parse(
            br#"{"kind":"webhook","url":"http://127.0.0.1:9000/in"}"#,
            false
        )
        .is_ok());
        assert!(parse(br#"{"kind":"webhook","url":"http://[::1]:9000/in"}"#, false).is_ok());
        assert!(err(
            r#"{"kind":"webhook","url":"http://crm.example.com/in"}"#,
            false
        )
        .contains("https"));
        assert!(err(r#"{"kind":"webhook","url":"ftp://x"}"#, false).contains("https"));
        assert!(err(r#"{"kind":"webhook"}"#, false).contains("needs a url"));
    }

    #[test]
    fn a_new_webhook_gets_a_standard_secret_and_lead_created_by_default() {
        let d = parse(br#"{"kind":"webhook","url":"https://x.example"}"#, false).unwrap();
        let s = d.secret.unwrap();
        let raw = s.expose().strip_prefix("whsec_").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap();
        assert_eq!(bytes.len(), 32);
        assert_eq!(d.events, vec![EventType::LeadCreated]);
        assert_eq!(d.forms, None);
    }

    #[test]
    fn bad_input_is_refused_with_what_to_fix() {
        assert!(err(r#"{"kind":"sms"}"#, true).contains("kind must be"));
        assert!(err(r#"{"kind":"email","to":["a@example.com"]}"#, false).contains("SMTP_URL"));
        assert!(err(r#"{"kind":"email","to":["not an address"]}"#, true).contains("not an e-mail"));
        assert!(err(r#"{"kind":"email","to":[]}"#, true).contains("1 to"));
        assert!(err(
            r#"{"kind":"webhook","url":"https://x.example","forms":["abc"]}"#,
            true
        )
        .contains("digits"));
        assert!(err(
            r#"{"kind":"webhook","url":"https://x.example","events":["lead.deleted"]}"#,
            true
        )
        .contains("lead.created"));
        assert!(err(
            r#"{"kind":"webhook","url":"https://x.example","extra":1}"#,
            true
        )
        .contains("JSON"));
        assert!(err("not json", true).contains("JSON"));
    }
}
