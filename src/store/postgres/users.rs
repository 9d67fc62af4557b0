//! The `users` table (as SQLite's). Removing a user or setting a password deletes the
//! sessions that password made and tells every instance to look at its sessions again.

use super::{Postgres, CHANNEL_SESSIONS};
use crate::model::{format_unix_ms, now_ms, Role, User};
use crate::store::team::{password_kind, stored_role};
use crate::store::{StoreError, UserLogin, ALL_SESSIONS};

impl Postgres {
    pub async fn add_user(
        &self,
        name: String,
        password_hash: String,
        role: Role,
    ) -> Result<Option<User>, StoreError> {
        let now = now_ms();
        let added = self
            .client()
            .await?
            .execute(
                "INSERT INTO users (name_key, name, password_hash, role, created_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name_key) DO NOTHING",
                &[
                    &name.to_ascii_lowercase(),
                    &name,
                    &password_hash,
                    &role.as_str(),
                    &now,
                ],
            )
            .await?;
        Ok((added == 1).then(|| User {
            name,
            role,
            created_at: format_unix_ms(now),
        }))
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT name, role, created_ms FROM users ORDER BY name_key",
                &[],
            )
            .await?
            .iter()
            .map(|r| User {
                name: r.get(0),
                role: stored_role(&r.get::<_, String>(1)),
                created_at: format_unix_ms(r.get(2)),
            })
            .collect())
    }

    pub async fn user_login(&self, name: String) -> Result<Option<UserLogin>, StoreError> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT name, role, password_hash FROM users WHERE name_key = $1",
                &[&name.to_ascii_lowercase()],
            )
            .await?
            .map(|r| UserLogin {
                name: r.get(0),
                role: stored_role(&r.get::<_, String>(1)),
                password_hash: r.get(2),
            }))
    }

    pub async fn remove_user(&self, name: String) -> Result<bool, StoreError> {
        self.end_user_sessions(
            "DELETE FROM users WHERE name_key = $1",
            &[&name.to_ascii_lowercase()],
            &name,
        )
        .await
    }

    pub async fn set_password(
        &self,
        name: String,
        password_hash: String,
    ) -> Result<bool, StoreError> {
        self.end_user_sessions(
            "UPDATE users SET password_hash = $2, updated_ms = $3 WHERE name_key = $1",
            &[&name.to_ascii_lowercase(), &password_hash, &now_ms()],
            &name,
        )
        .await
    }

    /// Runs `sql` on the user `name` and deletes their sessions, in one transaction that
    /// tells every instance at COMMIT; `true` when `sql` touched a row.
    async fn end_user_sessions(
        &self,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        name: &str,
    ) -> Result<bool, StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let touched = tx.execute(sql, args).await?;
        tx.execute(
            "DELETE FROM sessions WHERE credential_kind = $1",
            &[&password_kind(name)],
        )
        .await?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL_SESSIONS, &ALL_SESSIONS],
        )
        .await?;
        tx.commit().await?;
        Ok(touched == 1)
    }
}
