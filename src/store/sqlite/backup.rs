//! `leadstream backup FILE`: a consistent copy of the database while the server runs.
//!
//! SQLite's online backup copies every page inside one read transaction (one step of all
//! pages), so the copy is the database as it was at one instant, whatever the server writes
//! meanwhile; in WAL mode that reading blocks no writer. The copy is made as `FILE.tmp`, turned
//! into a single self-contained file (rollback journal, not WAL), checked with
//! `PRAGMA integrity_check`, flushed to disk, and only then given its name, so `FILE` is either
//! the old file or a complete, checked copy, never half of one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// What a backup copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub leads: i64,
    pub bytes: u64,
}

/// Copies the database at `db` to `dest`. An existing `dest` is replaced only when
/// `overwrite`; the words of the error say what went wrong and what to do.
pub fn backup_file(db: &Path, dest: &Path, overwrite: bool) -> Result<BackupReport, String> {
    if !overwrite && dest.exists() {
        return Err(format!(
            "{} exists; give --force to replace it",
            dest.display()
        ));
    }
    let tmp = tmp_path(dest);
    // A FILE.tmp is ours, left by a backup that was stopped half-way.
    let _ = std::fs::remove_file(&tmp);
    let made = copy_and_check(db, &tmp).and_then(|leads| {
        // Flushed before it gets its name: a crash must not leave a named, empty file.
        let file = std::fs::File::open(&tmp).map_err(|e| format!("cannot reopen the copy: {e}"))?;
        file.sync_all()
            .map_err(|e| format!("cannot flush the copy to disk: {e}"))?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        give_name(&tmp, dest, overwrite)?;
        Ok(BackupReport { leads, bytes })
    });
    if made.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    made
}

/// `FILE.tmp` beside `FILE`.
fn tmp_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// The online copy of `db` at `tmp`, made single-file and checked; how many leads it holds.
fn copy_and_check(db: &Path, tmp: &Path) -> Result<i64, String> {
    // Never creates: a mistyped --db must not back up an empty database made on the spot.
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open the database {}: {e}", db.display()))?;
    src.busy_timeout(Duration::from_secs(10))
        .and_then(|()| src.pragma_update(None, "query_only", true))
        .map_err(|e| format!("cannot read the database {}: {e}", db.display()))?;
    let mut dst =
        Connection::open(tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    {
        let backup =
            Backup::new(&src, &mut dst).map_err(|e| format!("cannot start the copy: {e}"))?;
        // Every page in one step (-1): one read transaction, so one instant of the database.
        // Busy only while another connection holds a lock a reader must wait for.
        let mut waited = Duration::ZERO;
        loop {
            match backup
                .step(-1)
                .map_err(|e| format!("the copy failed: {e}"))?
            {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked
                    if waited < Duration::from_secs(30) =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                    waited += Duration::from_millis(100);
                }
                other => return Err(format!("the copy could not finish ({other:?})")),
            }
        }
    }
    let check = |e: rusqlite::Error| format!("cannot check the copy: {e}");
    // One self-contained file: restoring it is copying one file back.
    let mode: String = dst
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .map_err(check)?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(format!("the copy stayed in journal mode {mode}"));
    }
    let verdict: Vec<String> = dst
        .prepare("PRAGMA integrity_check")
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(check)?;
    if verdict != ["ok"] {
        return Err(format!(
            "the copy failed PRAGMA integrity_check: {}",
            verdict.join("; ")
        ));
    }
    dst.query_row("SELECT count(*) FROM leads", [], |r| r.get(0))
        .map_err(check)
}

/// Renames `tmp` to `dest`. Without `overwrite`, a `dest` that appeared meanwhile is not
/// replaced: a hard link is made (which fails if the name is taken), then `tmp` removed.
fn give_name(tmp: &Path, dest: &Path, overwrite: bool) -> Result<(), String> {
    let named = if overwrite {
        std::fs::rename(tmp, dest)
    } else {
        match std::fs::hard_link(tmp, dest) {
            Ok(()) => std::fs::remove_file(tmp),
            // A filesystem without hard links: the check at the start has to do.
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists && !dest.exists() => {
                std::fs::rename(tmp, dest)
            }
            Err(e) => Err(e),
        }
    };
    named.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            format!("{} exists; give --force to replace it", dest.display())
        }
        _ => format!("cannot name the copy {}: {e}", dest.display()),
    })?;
    // The new name on disk too, not only the data.
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
