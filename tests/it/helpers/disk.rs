//! Small real filesystems to put a database on, for what only a real disk shows: filling up,
//! turning read-only, stalling. Mounting needs root (CI runs as root); without it the helpers
//! answer `None` and the test says it skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A filesystem mounted for one test, unmounted (lazily, so open files do not stop it) when
/// dropped.
pub struct Mounted {
    pub path: PathBuf,
    /// The block device (`loop3`) of a loop mount.
    device: Option<String>,
    frozen: bool,
    _dir: tempfile::TempDir,
}

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Prints why a test that needs a real filesystem did not run.
pub fn skipped(what: &str) {
    eprintln!("skipped: {what} needs root and mount(8) (run the tests as root, as CI does)");
}

impl Mounted {
    /// A tmpfs of `size` (as mount takes it: `16m`), or `None` where mounting is not allowed.
    pub fn tmpfs(size: &str) -> Option<Mounted> {
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).ok()?;
        let options = format!("size={size}");
        let path_s = path.to_str()?;
        run("mount", &["-t", "tmpfs", "-o", &options, "tmpfs", path_s]).then_some(Mounted {
            path,
            device: None,
            frozen: false,
            _dir: dir,
        })
    }

    /// An ext4 image of `megabytes` on a loop device, mounted to turn read-only on the first
    /// error (as servers' filesystems are), or `None` where that is not possible.
    pub fn ext4(megabytes: u64) -> Option<Mounted> {
        let dir = tempfile::tempdir().ok()?;
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)
            .ok()?
            .set_len(megabytes * 1024 * 1024)
            .ok()?;
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).ok()?;
        let (image_s, path_s) = (image.to_str()?, path.to_str()?);
        if !run("mkfs.ext4", &["-q", "-F", image_s])
            || !run("mount", &["-o", "loop,errors=remount-ro", image_s, path_s])
        {
            return None;
        }
        let out = Command::new("findmnt")
            .args(["-no", "SOURCE", path_s])
            .output()
            .ok()?;
        let source = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let device = Path::new(&source).file_name()?.to_str()?.to_string();
        Some(Mounted {
            path,
            device: Some(device),
            frozen: false,
            _dir: dir,
        })
    }

    /// Writes a file until the filesystem has no room left.
    pub fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last blocks a 64 KiB write could not take.
        while f.write_all(&[0u8; 512]).is_ok() {}
        let _ = f.sync_all();
        filler
    }

    /// Makes ext4 record an error, after which it turns itself read-only (`errors=remount-ro`).
    pub fn turn_read_only(&self) -> bool {
        let device = self.device.as_deref().expect("an ext4 mount");
        std::fs::write(format!("/sys/fs/ext4/{device}/trigger_fs_error"), "1").is_ok()
    }

    /// Freezes the filesystem: every write blocks until [`Mounted::thaw`].
    pub fn freeze(&mut self) -> bool {
        self.frozen = run("fsfreeze", &["-f", self.path.to_str().unwrap()]);
        self.frozen
    }

    pub fn thaw(&mut self) {
        if self.frozen {
            run("fsfreeze", &["-u", self.path.to_str().unwrap()]);
            self.frozen = false;
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.thaw();
        run("umount", &["-l", self.path.to_str().unwrap()]);
    }
}
