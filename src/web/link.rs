//! Single-purpose links: what lets a person without an account (the hire, the bench technician,
//! the manager) sign one step of one hire.
//!
//! A link's token is `PAYLOAD.MAC`, both base64url: the payload names the hire, the step, who
//! the link was given to and when it expires; the MAC is HMAC-SHA256 over the payload with the
//! link key, checked in constant time. Nothing is stored per link: a link is usable while its
//! MAC holds, it has not expired and its step still waits for a signature, so it is single-use
//! per step by the journal itself. The key is a secret (a file, never in a page, log or
//! journal); replacing it voids every link given out.

use std::io;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What a link lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub hire: String,
    pub step: String,
    /// Whom it was given to: an email address, or "in person by NAME".
    pub to: String,
    /// Seconds since the epoch after which it is refused.
    pub expires: i64,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not a token this server made (or the key changed).
    Forged,
    Expired(Link),
}

/// The key links are signed with.
pub struct LinkKey(Vec<u8>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(***)")
    }
}

impl Drop for LinkKey {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

impl LinkKey {
    pub fn new(bytes: Vec<u8>) -> LinkKey {
        LinkKey(bytes)
    }

    /// Reads the key file (its first line, hex or any text of 32 bytes or more), creating one
    /// (mode 0600, 32 random bytes) when `create` and there is none.
    pub fn load(path: &Path, create: bool) -> io::Result<LinkKey> {
        match crate::files::read_text(path, crate::files::SETTING_LIMIT) {
            Ok(text) => {
                let line = text.lines().next().unwrap_or("").trim();
                if line.len() < 32 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the link key in {} is shorter than 32 characters",
                            path.display()
                        ),
                    ));
                }
                Ok(LinkKey(line.as_bytes().to_vec()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                let key = crate::secret::random_hex(32);
                if let Some(dir) = path.parent() {
                    fs_err::create_dir_all(dir)?;
                }
                match create_whole(path, &key) {
                    Ok(()) => Ok(LinkKey(key.into_bytes())),
                    // Another run made one first: everyone uses that one.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(path, false),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(payload);
        mac
    }

    /// The token for `link`.
    pub fn sign(&self, link: &Link) -> String {
        let payload = [
            link.hire.as_str(),
            &link.step,
            &link.to,
            &link.expires.to_string(),
        ]
        .join("\n");
        let tag = self.mac(payload.as_bytes()).finalize().into_bytes();
        format!("{}.{}", B64.encode(payload), B64.encode(tag))
    }

    /// The link a token stands for, if this key made it and it has not expired at `now`.
    pub fn open(&self, token: &str, now: i64) -> Result<Link, Refused> {
        let (payload, tag) = token.split_once('.').ok_or(Refused::Forged)?;
        let payload = B64.decode(payload).map_err(|_| Refused::Forged)?;
        let tag = B64.decode(tag).map_err(|_| Refused::Forged)?;
        // `verify_slice` compares in constant time.
        self.mac(&payload)
            .verify_slice(&tag)
            .map_err(|_| Refused::Forged)?;
        let text = String::from_utf8(payload).map_err(|_| Refused::Forged)?;
        let parts: Vec<&str> = text.split('\n').collect();
        let [hire, step, to, expires] = parts.as_slice() else {
            return Err(Refused::Forged);
        };
        let link = Link {
            hire: (*hire).to_owned(),
            step: (*step).to_owned(),
            to: (*to).to_owned(),
            expires: expires.parse().map_err(|_| Refused::Forged)?,
        };
        if now > link.expires {
            return Err(Refused::Expired(link));
        }
        Ok(link)
    }

    /// A value derived from the key for `purpose` (a form's CSRF token for a link), so that
    /// it cannot be made without the key.
    pub fn derive(&self, purpose: &str) -> String {
        crate::digest::hex(&self.mac(purpose.as_bytes()).finalize().into_bytes())
    }
}

/// What a run needs to email links (`notify`): the key, and the pages' settings for the URL.
pub struct Links {
    pub key: LinkKey,
    pub settings: super::WebSettings,
}

impl Links {
    /// A link for `hire`'s `step`, given to `to`, made at `now` (seconds since the epoch).
    pub fn url(&self, hire: &str, step: &str, to: &str, now: i64) -> String {
        let link = Link {
            hire: hire.to_owned(),
            step: step.to_owned(),
            to: to.to_owned(),
            expires: now + self.settings.link_days * 86_400,
        };
        self.settings.link_url(&link, &self.key)
    }
}

/// Creates `path` holding `text` and a newline, whole or not at all: the text is written and
/// fsync'd under a temporary name, then linked into place, which fails if the file exists. So a
/// kill at any moment leaves no file or the whole key, and of two runs creating it at once one
/// wins and the other reads the winner's key (`AlreadyExists`).
fn create_whole(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(
        ".{name}.new-{}-{}",
        std::process::id(),
        crate::secret::random_hex(4)
    ));
    let linked = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    linked?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            hire: "E1042".into(),
            step: "laptop-cleaning".into(),
            to: "tom@example.org".into(),
            expires: 2_000,
        }
    }

    #[test]
    fn a_signed_link_opens_until_it_expires() {
        let key = LinkKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let token = key.sign(&link());
        assert_eq!(key.open(&token, 1_000), Ok(link()));
        assert_eq!(key.open(&token, 2_000), Ok(link()));
        assert_eq!(key.open(&token, 2_001), Err(Refused::Expired(link())));
    }

    #[test]
    fn a_changed_token_or_another_key_is_forged() {
        let key = LinkKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let token = key.sign(&link());
        let other = LinkKey::new(b"fedcba9876543210fedcba9876543210".to_vec());
        assert_eq!(other.open(&token, 0), Err(Refused::Forged));
        // The payload rewritten to another hire keeps the old MAC: refused.
        let mut moved = link();
        moved.hire = "E9999".into();
        let forged = format!(
            "{}.{}",
            key.sign(&moved).split_once('.').unwrap().0,
            token.split_once('.').unwrap().1
        );
        assert_eq!(key.open(&forged, 0), Err(Refused::Forged));
        for junk in ["", ".", "abc", "a.b", &format!("{token}x")] {
            assert_eq!(key.open(junk, 0), Err(Refused::Forged), "{junk}");
        }
    }

    #[test]
    fn newlines_in_fields_cannot_shift_them() {
        let key = LinkKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let mut l = link();
        l.to = "x\nE0000".into();
        assert_eq!(key.open(&key.sign(&l), 0), Err(Refused::Forged));
    }

    /// Two first runs on a new state directory made the key at once and one failed with
    /// `File exists` (3 times in 20); a kill between creating and writing left it empty.
    #[test]
    fn a_key_made_by_many_at_once_is_one_whole_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("link.key");
            let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| s.spawn(|| LinkKey::load(&path, true).unwrap().0.clone()))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert!(keys.iter().all(|k| k == &keys[0] && k.len() == 64));
            let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(names.len(), 1, "no temporary file is left behind");
        }
    }
}
