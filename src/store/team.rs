//! The store's side of working leads as a team: changes to a lead (each committed with its
//! event, in one transaction), a lead with its notes and history, and the users.

use super::{Engine, Store, StoreError, UserLogin};
use crate::model::{Changed, LeadChange, LeadDetail, Role, User};

impl Store {
    /// Commits one change to a lead with its `updated` event, in one transaction: the version
    /// is checked, the lead updated (its version raised by one, `updated_at`, and
    /// `first_contact_at` on the first move away from `new` or the first note), the history
    /// and the note written. The event goes to the sink after the commit, like a new lead's.
    pub async fn change_lead(&self, change: LeadChange) -> Result<Changed, StoreError> {
        let changed = on_engine!(self.change_lead(change))?;
        if matches!(changed, Changed::Done { .. }) {
            crate::metrics::lead_changed();
        }
        Ok(changed)
    }

    /// A lead with its notes and history; `None` when there is no such lead.
    pub async fn lead_detail(&self, id: i64) -> Result<Option<LeadDetail>, StoreError> {
        on_engine!(self.lead_detail(id))
    }

    /// Adds a user; `None` when one of that name (in any case) exists already.
    pub async fn add_user(
        &self,
        name: String,
        password_hash: String,
        role: Role,
    ) -> Result<Option<User>, StoreError> {
        on_engine!(self.add_user(name, password_hash, role))
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        on_engine!(self.users())
    }

    /// What logging in as `name` (any case) checks against, if there is such a user.
    pub async fn user_login(&self, name: String) -> Result<Option<UserLogin>, StoreError> {
        on_engine!(self.user_login(name))
    }

    /// Removes a user and ends their sessions in the database (with PostgreSQL every instance
    /// hears of it); `false` when there is no such user. Their leads keep their name as owner.
    pub async fn remove_user(&self, name: String) -> Result<bool, StoreError> {
        on_engine!(self.remove_user(name))
    }

    /// Sets a user's password and ends their sessions in the database (as
    /// [`Self::remove_user`]); `false` when there is no such user.
    pub async fn set_password(
        &self,
        name: String,
        password_hash: String,
    ) -> Result<bool, StoreError> {
        on_engine!(self.set_password(name, password_hash))
    }
}

/// A role as a row keeps it; an unreadable one is the lesser.
pub(super) fn stored_role(s: &str) -> Role {
    Role::parse(s).unwrap_or(Role::Member)
}

/// The credential kind of the sessions a user's password makes (`password:` and the name in
/// lower case): removing the user or changing the password ends every session of this kind.
pub fn password_kind(name: &str) -> String {
    format!("password:{}", name.to_ascii_lowercase())
}
