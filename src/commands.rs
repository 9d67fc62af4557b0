//! `leadstream users …`: managing users from a shell, on the same database as the server
//! (which notices: a removed user's or a changed password's sessions end there too).

use std::io::{BufRead, IsTerminal};

use crate::auth::{add_user, remove_user, set_password, UserError};
use crate::config::UsersCommand;
use crate::model::{Event, Role};
use crate::store::{Database, Store};

/// Why a command failed: the words for standard error and the exit code (1: it could not be
/// done; 2: the input was not acceptable).
#[derive(Debug)]
pub struct CommandError {
    pub code: u8,
    pub message: String,
}

impl From<UserError> for CommandError {
    fn from(e: UserError) -> Self {
        let code = match e {
            UserError::Invalid(_) => 2,
            _ => 1,
        };
        CommandError {
            code,
            message: e.to_string(),
        }
    }
}

fn failed(message: impl Into<String>) -> CommandError {
    CommandError {
        code: 1,
        message: message.into(),
    }
}

/// Runs one `users` command; what to print when it is done.
pub async fn users(database: &Database, command: UsersCommand) -> Result<String, CommandError> {
    // A command publishes nothing: a change it made reaches a running server's streams
    // through the database.
    let store = Store::connect(database, |_: Vec<Event>| {})
        .await
        .map_err(failed)?;
    match command {
        UsersCommand::Add { name, admin } => {
            let password = read_password()?;
            let role = if admin { Role::Admin } else { Role::Member };
            let user = add_user(&store, &name, &password, role).await?;
            Ok(format!("added {} ({})", user.name, user.role.as_str()))
        }
        UsersCommand::List => {
            let users = store.users().await.map_err(|e| failed(e.to_string()))?;
            if users.is_empty() {
                return Ok("no users yet (the dashboard token acts as admin)".into());
            }
            let width = users.iter().map(|u| u.name.len()).max().unwrap_or(0);
            Ok(users
                .iter()
                .map(|u| format!("{:width$}  {:6}  {}", u.name, u.role.as_str(), u.created_at))
                .collect::<Vec<_>>()
                .join("\n"))
        }
        UsersCommand::Remove { name } => {
            remove_user(&store, &name).await?;
            Ok(format!("removed {name}; their sessions have ended"))
        }
        UsersCommand::Passwd { name } => {
            if store
                .user_login(name.clone())
                .await
                .map_err(|e| failed(e.to_string()))?
                .is_none()
            {
                return Err(UserError::NoSuchUser(name).into());
            }
            let password = read_password()?;
            set_password(&store, &name, &password).await?;
            Ok(format!("password of {name} set; their sessions have ended"))
        }
    }
}

/// The password: typed twice without echo on a terminal, else the first line of standard
/// input (so scripts can pipe it in).
fn read_password() -> Result<String, CommandError> {
    let bad = |e: std::io::Error| failed(format!("cannot read the password: {e}"));
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(bad)?;
        let again = rpassword::prompt_password("Again: ").map_err(bad)?;
        if first != again {
            return Err(CommandError {
                code: 2,
                message: "the two passwords differ".into(),
            });
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(bad)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
