//! The state directory: journals, locks, the embedded directory and outbox, evidence.
//!
//! ```text
//! STATE/
//!   journal/HIRE.jsonl      the hire's journal (the only source of state)
//!   journal/HIRE.lock       held while a run works on that hire
//!   directory.ldif          the embedded directory, when no LDAP server is configured
//!   outbox/*.eml            the embedded mail target, when no SMTP server is configured
//! ```
//!
//! Everything is created private to the user (directories 0700, files 0600). Symlinks inside the
//! state directory are refused, so a planted link cannot redirect a write.

use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use fs_err::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use fs_err as fs;

#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory at `root`, for reading only: nothing is created.
    pub fn at(root: &Path) -> StateDir {
        StateDir {
            root: root.to_owned(),
        }
    }

    /// Opens (creating if needed) the state directory at `root`.
    pub fn open(root: &Path) -> io::Result<StateDir> {
        let state = StateDir {
            root: root.to_owned(),
        };
        private_dir(root)?;
        Ok(state)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn journal_dir(&self) -> PathBuf {
        self.root.join("journal")
    }

    fn journal(&self, hire: &str) -> PathBuf {
        self.journal_dir().join(format!("{hire}.jsonl"))
    }

    fn lock(&self, hire: &str) -> PathBuf {
        self.journal_dir().join(format!("{hire}.lock"))
    }

    pub fn directory_ldif(&self) -> PathBuf {
        self.root.join("directory.ldif")
    }

    /// Serialises uidNumber allocation between runs on this machine.
    fn allocation_lock(&self) -> PathBuf {
        self.root.join("uid-allocation.lock")
    }

    pub fn outbox(&self) -> PathBuf {
        self.root.join("outbox")
    }

    /// Takes a hire's lock (creating the journal directory), or says who holds it.
    fn lock_hire(&self, hire: &str, holder: &str) -> Result<HireLock, crate::store::StoreError> {
        use crate::store::StoreError;
        private_dir(&self.journal_dir())?;
        HireLock::acquire(&self.lock(hire), holder).map_err(|e| match e {
            LockError::Held(holder) => StoreError::Locked {
                hire: hire.to_owned(),
                holder,
            },
            LockError::Io(e) => StoreError::Io(e),
        })
    }
}

impl crate::store::Store for StateDir {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn hires(&self) -> io::Result<Vec<String>> {
        let mut hires = Vec::new();
        // Only a folder that is not there is empty: one that cannot be read is an error that
        // names it ("No hires yet" was said of a folder the user may not read).
        let entries = match fs_err::read_dir(self.journal_dir()) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(hires),
            other => other?,
        };
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(hire) = name.strip_suffix(".jsonl") {
                hires.push(hire.to_owned());
            }
        }
        hires.sort();
        Ok(hires)
    }

    fn has(&self, hire: &str) -> bool {
        // When it cannot be told (no permission), it is taken as there, so reading it says why.
        self.journal(hire).try_exists().unwrap_or(true)
    }

    fn journal_name(&self, hire: &str) -> String {
        self.journal(hire).display().to_string()
    }

    fn read(&self, hire: &str) -> io::Result<crate::journal::JournalText> {
        crate::journal::read_text(&self.journal(hire))
    }

    fn open(
        &self,
        hire: &str,
        holder: &str,
        run: &str,
        actor: &str,
    ) -> Result<crate::store::Session, crate::store::StoreError> {
        use crate::store::StoreError;
        let lock = self.lock_hire(hire, holder)?;
        let path = self.journal(hire);
        let opened = crate::journal::Journal::open(&path, run, actor).map_err(|source| {
            StoreError::Journal {
                name: path.display().to_string(),
                source,
            }
        })?;
        Ok(crate::store::Session {
            log: Box::new(opened.journal),
            records: opened.records,
            torn_bytes: opened.torn_bytes,
            lock: Box::new(lock),
        })
    }

    fn is_locked(&self, hire: &str) -> bool {
        lock_is_held(&self.lock(hire))
    }

    fn lock_allocation(&self) -> io::Result<crate::store::Guard> {
        Ok(Box::new(lock_file(&self.allocation_lock())?))
    }

    fn keep_evidence(&self, hire: &str, name: &str, bytes: &[u8]) -> io::Result<String> {
        let sha = crate::digest::sha256(bytes);
        let evidence = self.root.join("evidence");
        let dir = evidence.join(hire);
        private_dir(&evidence)?;
        private_dir(&dir)?;
        write_atomic(&dir.join(format!("{}-{name}", &sha[..16])), bytes)?;
        Ok(sha)
    }

    fn evidence(&self, hire: &str) -> io::Result<Vec<crate::store::Evidence>> {
        let dir = self.root.join("evidence").join(hire);
        let mut found = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let file = entry?.file_name().to_string_lossy().into_owned();
            // `SHA16-NAME`, as `keep_evidence` names them; anything else is not evidence.
            let Some((prefix, name)) = file.split_once('-') else {
                continue;
            };
            if prefix.len() != 16 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let bytes = crate::files::read_regular(&dir.join(&file), crate::files::EVIDENCE_LIMIT)?;
            found.push(crate::store::Evidence {
                name: name.to_owned(),
                bytes,
            });
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    fn import(&self, hire: &str, text: &str) -> Result<(), crate::store::StoreError> {
        let _lock = self.lock_hire(hire, "onboard store copy")?;
        let path = self.journal(hire);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.len() > 0) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already has a journal", path.display()),
            )
            .into());
        }
        write_atomic(&path, text.as_bytes())?;
        Ok(())
    }

    fn publish_policy(
        &self,
        policy: &crate::policy::Published,
    ) -> io::Result<crate::policy::Published> {
        let dir = self.root.join("policies");
        private_dir(&dir)?;
        // Named by a hash of the name and version: any file name (`sub/it.md`) stays one file.
        let key = crate::digest::sha256(format!("{}\0{}", policy.file, policy.version));
        let path = dir.join(format!("{}.json", &key[..32]));
        let _lock = lock_file(&dir.join(".lock"))?;
        match read_policy(&path) {
            Ok(kept) => return Ok(kept),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let json = serde_json::to_vec_pretty(policy).map_err(io::Error::other)?;
        write_atomic(&path, &json)?;
        Ok(policy.clone())
    }

    fn policies(&self) -> io::Result<Vec<crate::policy::Published>> {
        let dir = self.root.join("policies");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut found = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                found.push(read_policy(&path)?);
            }
        }
        found.sort_by(|a, b| {
            (&a.kept_at, &a.file, &a.version).cmp(&(&b.kept_at, &b.file, &b.version))
        });
        Ok(found)
    }

    fn keep_receipt(&self, hire: &str, step: &str, text: &str, html: &str) -> io::Result<String> {
        let dir = self.root.join("receipts");
        private_dir(&dir)?;
        let base = dir.join(format!("{hire}-{step}"));
        write_atomic(&base.with_extension("html"), html.as_bytes())?;
        let path = base.with_extension("txt");
        write_atomic(&path, text.as_bytes())?;
        Ok(path.display().to_string())
    }
}

fn read_policy(path: &Path) -> io::Result<crate::policy::Published> {
    let bytes = crate::files::read_regular(path, crate::files::EVIDENCE_LIMIT)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// Creates `dir` (and parents) private to the user; refuses a symlink.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(io::Error::other(format!(
                "{} is a symbolic link; refusing to use it as state",
                dir.display()
            )));
        }
        Ok(m) if m.is_dir() => {
            // Made by someone else, or by hand, open to others: journals and evidence are
            // private, so it is tightened (or, if it is not ours, refused by the chmod).
            if m.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
            return Ok(());
        }
        Ok(_) => {
            return Err(io::Error::other(format!(
                "{} exists and is not a directory",
                dir.display()
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Refuses to follow a symlink planted where a state file should be.
pub fn refuse_symlink(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::other(format!(
            "{} is a symbolic link; refusing to follow it",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Opens a state file for appending, creating it 0600.
pub fn open_append(path: &Path) -> io::Result<fs::File> {
    refuse_symlink(path)?;
    let created = !path.exists();
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .custom_flags(libc_o_nofollow())
        .open(path)?;
    if created && let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(file)
}

/// Writes a whole file atomically and durably: temp file, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    refuse_symlink(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per call: threads of one process may write the same file at once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc_o_nofollow())
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // A full disk (or any failure) leaves neither a half file nor its temporary behind.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// The last path component may not be a symlink.
fn libc_o_nofollow() -> i32 {
    libc::O_NOFOLLOW
}

/// Takes an exclusive lock on `path` (creating it 0600), waiting for it. Released when the
/// returned file is dropped, or by the kernel if the process dies.
pub fn lock_file(path: &Path) -> io::Result<std::fs::File> {
    refuse_symlink(path)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)?;
    file.lock()?;
    Ok(file)
}

/// A lock on one hire's journal, held for the length of a run. Released when dropped (and by
/// the kernel if the process dies, so a killed run never leaves a stale lock).
pub struct HireLock {
    _file: std::fs::File,
}

impl HireLock {
    /// Takes the lock, or says who holds it.
    pub fn acquire(path: &Path, holder: &str) -> Result<HireLock, LockError> {
        refuse_symlink(path).map_err(LockError::Io)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(LockError::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let held_by = std::fs::read_to_string(path).unwrap_or_default();
                return Err(LockError::Held(held_by.trim().to_owned()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(LockError::Io(e)),
        }
        file.set_len(0).map_err(LockError::Io)?;
        file.write_all(holder.as_bytes()).map_err(LockError::Io)?;
        Ok(HireLock { _file: file })
    }
}

/// Whether some process holds a lock on `path` right now, from the kernel's table of locks
/// (`/proc/locks`): looking does not take the lock, so a run starting at that moment is never
/// refused because someone asked for the status. False where that table cannot be read.
pub fn lock_is_held(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return false;
    };
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let wanted = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    locks
        .lines()
        .any(|l| l.split_whitespace().any(|field| field == wanted))
}

#[derive(Debug)]
pub enum LockError {
    /// Another run holds it; the text says who.
    Held(String),
    Io(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.lock");
        let first = HireLock::acquire(&path, "pid 1 by alice").unwrap();
        match HireLock::acquire(&path, "pid 2 by bob") {
            Err(LockError::Held(who)) => assert_eq!(who, "pid 1 by alice"),
            _ => panic!("second lock must fail"),
        }
        assert!(lock_is_held(&path));
        drop(first);
        assert!(!lock_is_held(&path));
        HireLock::acquire(&path, "pid 2 by bob").unwrap();
    }

    #[test]
    fn state_is_private_and_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("s")).unwrap();
        let mode = std::fs::metadata(state.root())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        private_dir(&state.journal_dir()).unwrap();
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, state.journal("E1")).unwrap();
        assert!(open_append(&state.journal("E1")).is_err());
        assert!(!target.exists());
    }
}
