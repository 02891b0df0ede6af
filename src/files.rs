//! Reading the files people name (playbooks, templates, policies, HR exports, evidence,
//! password and CA files): regular files only, bounded in size, opened without blocking, and
//! for templates and policies, never outside their folder.
//!
//! A FIFO or `/dev/zero` named as evidence would hang a run or fill memory; a symlink in the
//! templates folder could make the welcome carry `/etc/shadow`. Every such read goes through
//! here.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A playbook or hire file.
pub const PLAYBOOK_LIMIT: u64 = 4 << 20;
/// HR's export of a cohort.
pub const HIRES_LIMIT: u64 = 16 << 20;
/// An email template or policy document.
pub const TEMPLATE_LIMIT: u64 = 1 << 20;
/// An evidence file kept with a sign-off.
pub const EVIDENCE_LIMIT: u64 = 32 << 20;
/// A hire's journal (read whole by `status`, `verify` and reports).
pub const JOURNAL_LIMIT: u64 = 1 << 30;
/// A password or CA file.
pub const SETTING_LIMIT: u64 = 1 << 20;

/// Reads a whole regular file of at most `limit` bytes. Anything else (a directory, FIFO,
/// socket or device) is refused without reading from it. Errors name the path.
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    read_opened(path, limit, 0)
}

/// Like [`read_regular`], as text; invalid UTF-8 is an error.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, limit)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not UTF-8 text", path.display()),
        )
    })
}

/// Reads `name` from inside `dir`: a relative path with no `..`, which once every symlink is
/// resolved still lies inside `dir`, and is a regular file of at most `limit` bytes. Returns
/// the path as resolved, with the bytes.
pub fn read_inside(dir: &Path, name: &str, limit: u64) -> io::Result<(PathBuf, Vec<u8>)> {
    let rel = Path::new(name);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` must be a file inside {}", dir.display()),
        ));
    }
    let joined = dir.join(rel);
    let root = dir.canonicalize().map_err(|e| with_path(dir, e))?;
    let real = joined.canonicalize().map_err(|e| with_path(&joined, e))?;
    if !real.starts_with(&root) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} leads outside {} (through a symlink, to {})",
                joined.display(),
                dir.display(),
                real.display()
            ),
        ));
    }
    // Resolved: the last component must not turn into a symlink between the check and the open.
    let bytes = read_opened(&real, limit, libc::O_NOFOLLOW)?;
    Ok((real, bytes))
}

fn read_opened(path: &Path, limit: u64, flags: i32) -> io::Result<Vec<u8>> {
    // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting forever.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | flags)
        .open(path)
        .map_err(|e| with_path(path, e))?;
    let meta = file.metadata().map_err(|e| with_path(path, e))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a folder"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is {what}, not a regular file", path.display()),
        ));
    }
    if meta.len() > limit {
        return Err(too_large(path, limit));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read is still cut off at the limit.
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, limit));
    }
    Ok(bytes)
}

fn too_large(path: &Path, limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is larger than the {} MiB onboard reads from such a file",
            path.display(),
            limit >> 20
        ),
    )
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_the_folder_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let templates = dir.path().join("templates");
        std::fs::create_dir(&templates).unwrap();
        std::fs::write(templates.join("ok.txt"), "hello").unwrap();
        std::fs::write(dir.path().join("secret"), "pw").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), templates.join("out.txt")).unwrap();
        std::os::unix::fs::symlink("ok.txt", templates.join("in.txt")).unwrap();

        assert_eq!(read_inside(&templates, "ok.txt", 10).unwrap().1, b"hello");
        assert_eq!(read_inside(&templates, "in.txt", 10).unwrap().1, b"hello");
        let e = read_inside(&templates, "out.txt", 10).unwrap_err();
        assert!(e.to_string().contains("leads outside"), "{e}");
        for bad in ["../secret", "/etc/passwd", "a/../../secret", "."] {
            assert!(read_inside(&templates, bad, 10).is_err(), "{bad}");
        }
        let e = read_inside(&templates, "ok.txt", 3).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }

    #[test]
    fn devices_fifos_and_folders_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a device"),
            (dir.path(), "a folder"),
        ] {
            let e = read_regular(path, 1 << 20).unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
    }
}
