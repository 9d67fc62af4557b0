//! Whether the database can be written, as `/healthz` and `/api/status` tell it.
//!
//! Three things go wrong in practice, and each is caught where it shows:
//!
//! - **The file is gone.** Removed (`rm leads.db*`, or only its `-wal`) or replaced under a
//!   running server, SQLite goes on writing to the open, unlinked file: every write "succeeds"
//!   and is lost at the next start. The writer compares the paths' device and inode with the
//!   files it opened, before every batch and once a second ([`FileWatch`]); once they differ,
//!   the store stops taking writes for good (webhooks get `503`, so Meta delivers them again
//!   later) until a restart.
//! - **The disk is full, read-only or failing.** Writes fail; the writer records why
//!   ([`Health::wrote`]), and the next write that succeeds clears it.
//! - **Nothing is being written**, so nothing would notice either. [`crate::store::Store::health_check`]
//!   writes a one-row probe (at most once a second, within a deadline) and looks at the free
//!   space of the disk, so a check always reflects now, not the last webhook.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::ErrorCode;

use super::state::set_state;
use super::writer::Written;
use super::Sqlite;
use crate::store::StoreError;

/// How long a check may wait for its probe write.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);
/// How long a check's verdict is reused.
const VERDICT_FRESH: Duration = Duration::from_secs(1);
/// Less free space than this on the database's disk counts as full: a delivery can be 4 MiB,
/// and a nearly full disk fails some writes and not others.
const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// The words for a database that cannot be written. Public (`/healthz` says them to anyone),
/// so they never name a path; the log does.
pub(super) const FILE_GONE: &str = "the database file was removed or replaced while leadstream \
     ran, so nothing more is written to it: restart leadstream (and restore a backup if the \
     file was not meant to go)";

/// What the writer knows of its writes. Shared by the writer thread and the store handles.
#[derive(Default)]
pub(super) struct Health {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Set once, for good: the file was removed or replaced.
    gone: bool,
    /// Why the last write failed, when it did (cleared by the next success).
    failing: Option<String>,
}

impl Health {
    pub fn file_gone(&self) {
        self.inner.lock().expect("health lock").gone = true;
    }

    pub fn is_gone(&self) -> bool {
        self.inner.lock().expect("health lock").gone
    }

    /// Records how a batch ended: `Err` with words when the storage failed it.
    pub fn wrote(&self, outcome: Result<(), String>) {
        let mut inner = self.inner.lock().expect("health lock");
        match outcome {
            Ok(()) => inner.failing = None,
            Err(words) => {
                if inner.failing.as_deref() != Some(words.as_str()) {
                    log::error!("the database cannot be written: {words}");
                }
                inner.failing = Some(words);
            }
        }
    }

    /// The problem as last seen, if any.
    pub fn problem(&self) -> Option<String> {
        let inner = self.inner.lock().expect("health lock");
        if inner.gone {
            return Some(FILE_GONE.into());
        }
        inner.failing.clone()
    }
}

/// The words for an error that says the storage itself failed (as opposed to one operation's
/// mistake, such as a broken constraint), or `None`.
pub(super) fn storage_trouble(e: &rusqlite::Error) -> Option<String> {
    let code = e.sqlite_error_code()?;
    let what = match code {
        ErrorCode::DiskFull => "the disk holding the database is full",
        ErrorCode::ReadOnly => "the database is read-only",
        ErrorCode::SystemIoFailure => {
            "the disk holding the database fails to write (read-only or failing)"
        }
        ErrorCode::CannotOpen => "the database file cannot be opened",
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => "the database file is damaged",
        _ => return None,
    };
    Some(format!("{what} ({e})"))
}

/// The database file as the writer opened it, and its write-ahead log: compared with what
/// their paths name now.
///
/// Why the log too: in WAL mode every commit since the last checkpoint lives only in the
/// `-wal` file. Removed under a running server (taken for a temporary file), SQLite goes on
/// writing to the unlinked copy, and at the next start all of that is gone, what was
/// acknowledged before the removal included. SQLite removes the log itself only when its last
/// connection closes, and the writer's stays open as long as the store.
pub(super) struct FileWatch {
    path: PathBuf,
    wal_path: PathBuf,
    /// A handle on the same file SQLite opened, so its identity (and whether it still has a
    /// name) can be asked without SQLite.
    #[cfg(unix)]
    file: std::fs::File,
    /// The same for the log, once it exists (SQLite makes it on the first access).
    #[cfg(unix)]
    wal: std::cell::OnceCell<std::fs::File>,
}

impl FileWatch {
    /// Watches the file at `path`, which the writer has just opened, and its log.
    pub fn new(path: &Path) -> std::io::Result<FileWatch> {
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        Ok(FileWatch {
            path: path.to_path_buf(),
            wal_path: PathBuf::from(wal_path),
            #[cfg(unix)]
            file: std::fs::File::open(path)?,
            #[cfg(unix)]
            wal: std::cell::OnceCell::new(),
        })
    }

    /// `None` while the paths name the files that were opened; otherwise the path that no
    /// longer does (removed, replaced or renamed away). A path that cannot be looked at for
    /// another reason is given the benefit of the doubt.
    #[cfg(unix)]
    pub fn missing(&self) -> Option<&Path> {
        if !same_file(&self.file, &self.path) {
            return Some(&self.path);
        }
        match self.wal.get() {
            Some(wal) if !same_file(wal, &self.wal_path) => Some(&self.wal_path),
            Some(_) => None,
            None => {
                if let Ok(wal) = std::fs::File::open(&self.wal_path) {
                    let _ = self.wal.set(wal);
                }
                None
            }
        }
    }

    #[cfg(not(unix))]
    pub fn missing(&self) -> Option<&Path> {
        (!self.path.exists()).then_some(&self.path)
    }
}

/// `true` while `path` names `open`, a file that still has a name.
#[cfg(unix)]
fn same_file(open: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(open) = open.metadata() else {
        return true;
    };
    if open.nlink() == 0 {
        return false;
    }
    match std::fs::metadata(path) {
        Ok(now) => now.dev() == open.dev() && now.ino() == open.ino(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => true,
    }
}

/// Free bytes for us on the disk holding `path`, where the system can tell.
#[cfg(unix)]
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a statvfs struct to fill.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // Blocks kept for root count when we are root (then we may use them).
    // SAFETY: geteuid has no preconditions.
    let blocks = if unsafe { libc::geteuid() } == 0 {
        st.f_bfree
    } else {
        st.f_bavail
    };
    Some(blocks as u64 * st.f_frsize as u64)
}

#[cfg(not(unix))]
fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// The last verdict of [`Sqlite::health_check`] and when it was made, and the probe in flight.
#[derive(Default)]
pub(super) struct Verdicts {
    last: Mutex<Option<(Instant, Result<(), String>)>>,
    probing: tokio::sync::Mutex<()>,
}

impl Verdicts {
    /// The last verdict, if it is younger than `age`.
    fn younger_than(&self, age: Duration) -> Option<Result<(), String>> {
        let last = self.last.lock().expect("verdict lock");
        last.as_ref()
            .filter(|(at, _)| at.elapsed() < age)
            .map(|(_, v)| v.clone())
    }
}

impl Sqlite {
    /// True once the database file was removed or replaced: nothing more can be saved until
    /// a restart.
    pub fn file_gone(&self) -> bool {
        self.health.is_gone()
    }

    /// `Ok` when the database can be written now; otherwise why not, in words. Bounded: a
    /// verdict is reused for a second, the probe write waits at most 2 s, and a caller that
    /// arrives while a probe runs gets the verdict before it at once.
    pub async fn health_check(&self) -> Result<(), String> {
        if self.health.is_gone() {
            return Err(FILE_GONE.into());
        }
        if let Some(verdict) = self.verdicts.younger_than(VERDICT_FRESH) {
            return verdict;
        }
        let Ok(_probing) = self.verdicts.probing.try_lock() else {
            return self
                .verdicts
                .younger_than(Duration::MAX)
                .unwrap_or_else(|| self.health.problem().map_or(Ok(()), Err));
        };
        let verdict = self.probe().await;
        *self.verdicts.last.lock().expect("verdict lock") = Some((Instant::now(), verdict.clone()));
        verdict
    }

    /// One small write through the writer, and the disk's free space.
    async fn probe(&self) -> Result<(), String> {
        if let Some(free) = free_bytes(&self.path) {
            if free < MIN_FREE_BYTES {
                return Err(format!(
                    "the disk holding the database is full ({} KiB free)",
                    free / 1024
                ));
            }
        }
        let write = self.write(|c| {
            set_state(c, "health_probe", &crate::model::now_ms().to_string())?;
            Ok(Written::value(()))
        });
        match tokio::time::timeout(PROBE_DEADLINE, write).await {
            Err(_) => Err(format!(
                "the database did not take a write within {} s (the disk is stalled or very busy)",
                PROBE_DEADLINE.as_secs()
            )),
            Ok(Err(StoreError::Unavailable(words))) => Err(words),
            Ok(Err(e)) => Err(self
                .health
                .problem()
                .unwrap_or_else(|| format!("the database cannot be written ({e})"))),
            Ok(Ok(())) => Ok(()),
        }
    }
}
