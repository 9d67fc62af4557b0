//! What a change does to a lead, decided once for both engines: which fields move (each one a
//! line of history), and whether this is the lead's first contact. The engines read the lead,
//! ask [`plan`], and write what it says in the change's transaction.

use crate::model::{Edit, Lead, LeadStatus};

/// What one change writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub status: LeadStatus,
    pub owner: Option<String>,
    /// `(field, from, to)` for each field that moves.
    pub history: Vec<(&'static str, Option<String>, Option<String>)>,
    /// The note to add.
    pub note: Option<String>,
    /// This change is the lead's first contact: the first move away from `new`, or the first
    /// note.
    pub first_contact: bool,
}

impl Plan {
    /// Nothing would change.
    pub fn is_empty(&self) -> bool {
        self.history.is_empty() && self.note.is_none()
    }
}

/// What `edit` does to `lead`. `owner` is the new owner as the users table spells the name
/// (already checked to exist), when the edit sets one.
pub(super) fn plan(lead: &Lead, edit: &Edit, owner: Option<Option<String>>) -> Plan {
    let mut p = Plan {
        status: lead.status,
        owner: lead.owner.clone(),
        history: Vec::new(),
        note: None,
        first_contact: false,
    };
    match edit {
        Edit::Set { status, .. } => {
            if let Some(status) = status.filter(|s| *s != lead.status) {
                p.history.push((
                    "status",
                    Some(lead.status.as_str().into()),
                    Some(status.as_str().into()),
                ));
                p.status = status;
            }
            if let Some(owner) = owner.filter(|o| *o != lead.owner) {
                p.history.push(("owner", lead.owner.clone(), owner.clone()));
                p.owner = owner;
            }
        }
        Edit::Note(text) => p.note = Some(text.clone()),
    }
    p.first_contact =
        lead.first_contact_at.is_none() && (p.note.is_some() || p.status != LeadStatus::New);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(status: Option<LeadStatus>) -> Edit {
        Edit::Set {
            status,
            owner: None,
        }
    }

    #[test]
    fn a_move_away_from_new_is_the_first_contact_once() {
        let lead = Lead::sample(1);
        let p = plan(&lead, &set(Some(LeadStatus::Contacted)), None);
        assert!(p.first_contact);
        assert_eq!(
            p.history,
            [("status", Some("new".into()), Some("contacted".into()))]
        );
        let contacted = Lead {
            status: LeadStatus::Contacted,
            first_contact_at: Some("2026-11-28T12:00:00.000Z".into()),
            ..Lead::sample(1)
        };
        assert!(!plan(&contacted, &set(Some(LeadStatus::Won)), None).first_contact);
    }

    #[test]
    fn claiming_is_not_contacting_but_a_note_is() {
        let lead = Lead::sample(1);
        let claim = plan(&lead, &set(None), Some(Some("ada".into())));
        assert!(!claim.first_contact);
        assert_eq!(claim.history, [("owner", None, Some("ada".into()))]);
        assert!(plan(&lead, &Edit::Note("called".into()), None).first_contact);
    }

    #[test]
    fn setting_what_already_is_changes_nothing() {
        let lead = Lead {
            owner: Some("ada".into()),
            ..Lead::sample(1)
        };
        assert!(plan(&lead, &set(Some(LeadStatus::New)), Some(Some("ada".into()))).is_empty());
        assert!(!plan(&lead, &set(None), Some(None)).is_empty());
    }
}
