//! Managing users, the same for the command line and the API: names and passwords checked,
//! passwords hashed off the async runtime (Argon2id is slow on purpose), and the store told.
//! Ending the sessions of a removed user (or of a changed password) in this process is the
//! caller's part ([`super::Gate::end_user_sessions`]); the store deletes their rows and, with
//! PostgreSQL, tells every instance.

use super::passwords::hash_password;
use crate::model::{check_password, check_user_name, Role, User};
use crate::store::{Store, StoreError};

/// Why a user could not be added, removed or given a password.
#[derive(Debug)]
pub enum UserError {
    /// The name or the password is not acceptable; the words say why.
    Invalid(String),
    /// There is a user of that name (in any case) already.
    Exists(String),
    NoSuchUser(String),
    Store(StoreError),
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserError::Invalid(why) => f.write_str(why),
            UserError::Exists(name) => write!(f, "there is a user named {name} already"),
            UserError::NoSuchUser(name) => write!(f, "there is no user named {name}"),
            UserError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl From<StoreError> for UserError {
    fn from(e: StoreError) -> Self {
        UserError::Store(e)
    }
}

async fn hashed(password: &str) -> Result<String, UserError> {
    check_password(password).map_err(UserError::Invalid)?;
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| UserError::Store(StoreError::Commit(format!("hashing failed: {e}"))))
}

pub async fn add_user(
    store: &Store,
    name: &str,
    password: &str,
    role: Role,
) -> Result<User, UserError> {
    check_user_name(name).map_err(UserError::Invalid)?;
    let hash = hashed(password).await?;
    store
        .add_user(name.to_string(), hash, role)
        .await?
        .ok_or_else(|| UserError::Exists(name.to_string()))
}

pub async fn remove_user(store: &Store, name: &str) -> Result<(), UserError> {
    if store.remove_user(name.to_string()).await? {
        Ok(())
    } else {
        Err(UserError::NoSuchUser(name.to_string()))
    }
}

pub async fn set_password(store: &Store, name: &str, password: &str) -> Result<(), UserError> {
    let hash = hashed(password).await?;
    if store.set_password(name.to_string(), hash).await? {
        Ok(())
    } else {
        Err(UserError::NoSuchUser(name.to_string()))
    }
}
