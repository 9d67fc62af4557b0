//! The `users` table: names unique in any case, an Argon2id hash of each password, a role.
//! Removing a user or setting a password deletes the sessions that password made.

use rusqlite::{params, OptionalExtension};

use super::writer::Written;
use super::Sqlite;
use crate::model::{format_unix_ms, now_ms, Role, User};
use crate::store::team::{password_kind, stored_role};
use crate::store::{StoreError, UserLogin};

impl Sqlite {
    pub async fn add_user(
        &self,
        name: String,
        password_hash: String,
        role: Role,
    ) -> Result<Option<User>, StoreError> {
        self.write(move |c| {
            let now = now_ms();
            let added = c
                .prepare_cached(
                    "INSERT INTO users (name_key, name, password_hash, role, created_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (name_key) DO NOTHING",
                )?
                .execute(params![
                    name.to_ascii_lowercase(),
                    name,
                    password_hash,
                    role.as_str(),
                    now
                ])?;
            Ok(Written::value((added == 1).then(|| User {
                name,
                role,
                created_at: format_unix_ms(now),
            })))
        })
        .await
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        self.read(|c| {
            c.prepare_cached("SELECT name, role, created_ms FROM users ORDER BY name_key")?
                .query_map([], |r| {
                    Ok(User {
                        name: r.get(0)?,
                        role: stored_role(&r.get::<_, String>(1)?),
                        created_at: format_unix_ms(r.get(2)?),
                    })
                })?
                .collect()
        })
        .await
    }

    pub async fn user_login(&self, name: String) -> Result<Option<UserLogin>, StoreError> {
        self.read(move |c| {
            c.prepare_cached("SELECT name, role, password_hash FROM users WHERE name_key = ?1")?
                .query_row([name.to_ascii_lowercase()], |r| {
                    Ok(UserLogin {
                        name: r.get(0)?,
                        role: stored_role(&r.get::<_, String>(1)?),
                        password_hash: r.get(2)?,
                    })
                })
                .optional()
        })
        .await
    }

    pub async fn remove_user(&self, name: String) -> Result<bool, StoreError> {
        self.write(move |c| {
            let gone = c
                .prepare_cached("DELETE FROM users WHERE name_key = ?1")?
                .execute([name.to_ascii_lowercase()])?;
            c.prepare_cached("DELETE FROM sessions WHERE credential_kind = ?1")?
                .execute([password_kind(&name)])?;
            Ok(Written::value(gone == 1))
        })
        .await
    }

    pub async fn set_password(
        &self,
        name: String,
        password_hash: String,
    ) -> Result<bool, StoreError> {
        self.write(move |c| {
            let set = c
                .prepare_cached(
                    "UPDATE users SET password_hash = ?2, updated_ms = ?3 WHERE name_key = ?1",
                )?
                .execute(params![name.to_ascii_lowercase(), password_hash, now_ms()])?;
            c.prepare_cached("DELETE FROM sessions WHERE credential_kind = ?1")?
                .execute([password_kind(&name)])?;
            Ok(Written::value(set == 1))
        })
        .await
    }
}
