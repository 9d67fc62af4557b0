//! Working the leads as a team: where a lead stands, who the people are and what they may do,
//! what a change to a lead is, and the events that tell every open dashboard about it.

use serde::{Deserialize, Serialize};

use super::Lead;

/// Where the team is with a lead. Any move is allowed (a lost lead may come back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeadStatus {
    #[default]
    New,
    Contacted,
    Qualified,
    Won,
    Lost,
}

impl LeadStatus {
    pub const ALL: [LeadStatus; 5] = [
        LeadStatus::New,
        LeadStatus::Contacted,
        LeadStatus::Qualified,
        LeadStatus::Won,
        LeadStatus::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::New => "new",
            LeadStatus::Contacted => "contacted",
            LeadStatus::Qualified => "qualified",
            LeadStatus::Won => "won",
            LeadStatus::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<LeadStatus> {
        LeadStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The words a `400` uses when a status is not one of these.
    pub fn unknown(s: &str) -> String {
        format!("status must be one of new, contacted, qualified, won or lost, not {s:?}")
    }
}

/// What a user may do: members work leads; admins also manage users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// The name the dashboard token acts as: an admin that needs no row in `users`, so the demo
/// and scripts with the token work with no users at all.
pub const TOKEN_USER: &str = "admin";

/// Passwords shorter than this are refused (as the dashboard token is).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer ones too: hashing a megabyte on every login attempt would be a gift to a flood.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// The longest user name.
pub const MAX_NAME_CHARS: usize = 64;
/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 10_000;

/// `Ok` when `name` may name a user: 1 to 64 of letters, digits, `.`, `_`, `-` and `@`,
/// starting with a letter or digit. `admin` is the token's, and `me` and `none` mean
/// something else in the owner filter. Names are compared without regard to case.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "a user name is 1 to {MAX_NAME_CHARS} characters long"
        ));
    }
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(
            "a user name is letters, digits, '.', '_', '-' and '@', starting with a letter or digit"
                .into(),
        );
    }
    let key = name.to_ascii_lowercase();
    if key == TOKEN_USER {
        return Err("the name admin belongs to the dashboard token; choose another".into());
    }
    if key == "me" || key == "none" {
        return Err(format!(
            "the name {key} means something else in the owner filter; choose another"
        ));
    }
    Ok(())
}

/// `Ok` when `password` is long enough and not too long.
pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n == 0 {
        return Err("the password is empty".into());
    }
    if n < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password is too short: at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(format!(
            "the password is too long: at most {MAX_PASSWORD_CHARS} characters"
        ));
    }
    Ok(())
}

/// A user as the API and the CLI show them (never the password's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

/// A note on a lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub id: i64,
    pub author: String,
    pub text: String,
    pub created_at: String,
}

/// One change of one field of a lead: who, when, from what to what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub at: String,
    pub by: String,
    /// `status` or `owner`.
    pub field: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A lead with its notes and history (`GET /api/leads/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadDetail {
    #[serde(flatten)]
    pub lead: Lead,
    /// Oldest first.
    pub notes: Vec<Note>,
    /// Oldest first.
    pub history: Vec<HistoryEntry>,
}

/// What happened to a lead, as the stream tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A new lead (`event: lead`); the event's id is the lead's id.
    Created,
    /// A change: status, owner or a note (`event: update`).
    Updated,
    /// The lead was erased (`event: erased`): the event carries its id and nothing else.
    Erased,
}

impl EventKind {
    /// As the `events` table keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Updated => "updated",
            EventKind::Erased => "erased",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        match s {
            "created" => Some(EventKind::Created),
            "updated" => Some(EventKind::Updated),
            "erased" => Some(EventKind::Erased),
            _ => None,
        }
    }

    /// The SSE event name.
    pub fn sse_name(self) -> &'static str {
        match self {
            EventKind::Created => "lead",
            EventKind::Updated => "update",
            EventKind::Erased => "erased",
        }
    }
}

/// One event of the stream: its id (one increasing sequence for new leads, changes and
/// erasures), what happened, the lead's id, and the lead as it is after it (none once erased).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub kind: EventKind,
    pub lead_id: i64,
    /// `None` for [`EventKind::Erased`] only.
    pub lead: Option<Lead>,
}

impl Event {
    /// The event of a lead just saved.
    pub fn created(lead: Lead) -> Event {
        Event::about(EventKind::Created, lead.id, lead)
    }

    /// The event `id` of `kind` about `lead` as it is after it.
    pub fn about(kind: EventKind, id: i64, lead: Lead) -> Event {
        Event {
            id,
            kind,
            lead_id: lead.id,
            lead: Some(lead),
        }
    }

    /// The event `id` that says the lead `lead_id` was erased.
    pub fn erased(id: i64, lead_id: i64) -> Event {
        Event {
            id,
            kind: EventKind::Erased,
            lead_id,
            lead: None,
        }
    }
}

/// What a change does to a lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Sets the status, the owner (`Some(None)` releases the lead), or both.
    Set {
        status: Option<LeadStatus>,
        owner: Option<Option<String>>,
    },
    /// Adds a note (checked: 1 to [`MAX_NOTE_CHARS`] characters).
    Note(String),
}

/// A change to one lead by one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadChange {
    pub lead_id: i64,
    /// Who makes it (a user name, or [`TOKEN_USER`]).
    pub by: String,
    /// The version the change was made on; `None` applies it to whatever is current (a note
    /// needs no version: it cannot overwrite anyone's work).
    pub version: Option<i64>,
    pub edit: Edit,
}

/// How a change ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Changed {
    /// Committed with its event: the lead as it is now, and the note it added.
    Done {
        lead: Lead,
        note: Option<Note>,
    },
    /// Nothing to change (every value was already so): the lead as it is.
    Unchanged(Lead),
    /// Someone changed the lead since `version`: the lead as it is now.
    Stale(Lead),
    NoSuchLead,
    /// The owner named is no user.
    NoSuchUser(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_plain_and_keep_clear_of_the_words_the_filters_use() {
        for ok in ["ada", "Ada.Lovelace", "b_2", "x@example.com", "7"] {
            assert_eq!(check_user_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "-ada", "a b", "ada\n", "Ådå", "admin", "ADMIN", "me", "None",
        ] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_user_name(&"a".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(check_user_name(&"a".repeat(MAX_NAME_CHARS + 1)).is_err());
    }

    #[test]
    fn passwords_must_be_long_enough() {
        assert!(check_password("").unwrap_err().contains("empty"));
        assert!(check_password("1234567").unwrap_err().contains("short"));
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_CHARS + 1))
            .unwrap_err()
            .contains("long"));
    }

    #[test]
    fn statuses_read_as_they_are_written() {
        for s in LeadStatus::ALL {
            assert_eq!(LeadStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(LeadStatus::parse("New"), None);
    }
}
