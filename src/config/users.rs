//! `leadstream users …`: the words of the command line; `crate::commands` runs them.

use clap::{Args, Subcommand};

#[derive(Debug, Clone, Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum UsersCommand {
    /// Add a user; the password is read from standard input (typed twice on a terminal).
    Add {
        name: String,
        /// An admin may also manage users; others are members.
        #[arg(long)]
        admin: bool,
    },
    /// List the users and their roles.
    List,
    /// Remove a user; their sessions and open streams end. Their leads keep them as owner.
    Remove { name: String },
    /// Set a user's password (read from standard input); their sessions end.
    Passwd { name: String },
}
