//! The SMTP server e-mail destinations send through (README, "Forwarding").

use clap::Args;

use super::{given, Secret};

#[derive(Debug, Args)]
pub struct MailArgs {
    /// SMTP server for e-mail destinations: smtps://user:pass@host:465,
    /// smtp://user:pass@host:587?tls=required (STARTTLS) or smtp://host:25 (plain relay).
    #[arg(long = "smtp-url", env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<Secret>,

    /// The sender of forwarded mails, e.g. "leadstream <leads@example.com>".
    #[arg(long = "mail-from", env = "MAIL_FROM")]
    pub mail_from: Option<String>,
}

impl MailArgs {
    /// The server's URL and the sender, both or neither.
    pub fn into_smtp(self) -> Result<Option<(Secret, String)>, String> {
        match (given(self.smtp_url), given(self.mail_from)) {
            (Some(url), Some(from)) => Ok(Some((url, from))),
            (None, None) => Ok(None),
            _ => Err(
                "SMTP_URL and MAIL_FROM go together: set both to forward leads by \
                      e-mail, or neither"
                    .into(),
            ),
        }
    }
}
