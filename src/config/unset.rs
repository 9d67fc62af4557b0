//! An empty value counts as unset, wherever it comes from: `.env` fills in only what the
//! environment leaves unset or empty, and empty values are taken out of the environment and
//! the arguments before clap reads them, so it falls through to the next source.

use std::ffi::OsString;

/// `value` unless it is empty (or only blanks): an empty setting counts as unset.
pub(super) fn given<T: AsRef<str>>(value: Option<T>) -> Option<T> {
    value.filter(|v| !v.as_ref().trim().is_empty())
}

/// Puts the settings of `.env` (searched from the working directory up) into the environment,
/// where a variable is unset or empty: the environment wins over `.env`, and an empty value
/// there counts as unset, so `.env` is asked next. A broken `.env` is reported rather than
/// silently ignored: a typo there would otherwise start a half-configured server.
pub(super) fn load_dotenv() -> Result<(), String> {
    let entries = match dotenvy::dotenv_iter() {
        Ok(entries) => entries,
        Err(e) if e.not_found() => return Ok(()),
        Err(e) => return Err(format!("could not read .env: {e}")),
    };
    for entry in entries {
        let (key, value) = entry.map_err(|e| format!("could not read .env: {e}"))?;
        if given(std::env::var(&key).ok()).is_none() {
            // Before any thread of ours reads the environment (clap reads it next).
            std::env::set_var(key, value);
        }
    }
    Ok(())
}

/// Every argument of `command` and its subcommands, with the name of its environment variable
/// and whether it takes a value.
fn arguments(command: &clap::Command) -> Vec<&clap::Arg> {
    command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(|c| c.get_arguments()))
        .collect()
}

/// Removes the settings' environment variables whose value is empty (or only blanks).
pub(super) fn forget_empty_environment(command: &clap::Command) {
    for arg in arguments(command) {
        let Some(name) = arg.get_env() else { continue };
        if std::env::var_os(name).is_some_and(|v| v.to_string_lossy().trim().is_empty()) {
            // Before any thread of ours reads the environment (clap reads it next).
            std::env::remove_var(name);
        }
    }
}

/// `args` without the options given an empty value: `--name=` and `--name ""` (`--name=  `
/// too) for every option that takes one.
pub(super) fn drop_empty_flags(command: &clap::Command, args: Vec<OsString>) -> Vec<OsString> {
    let takes_value: Vec<String> = arguments(command)
        .into_iter()
        .filter(|a| a.get_action().takes_values())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    let is_option = |s: &str| takes_value.iter().any(|o| o == s);
    let blank = |s: &OsString| s.to_string_lossy().trim().is_empty();
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        if let Some((name, value)) = text.split_once('=') {
            if is_option(name) && value.trim().is_empty() {
                continue;
            }
        } else if is_option(&text) && args.peek().is_some_and(blank) {
            args.next();
            continue;
        }
        out.push(arg);
    }
    out
}
