//! The embedded directory: an LDIF file (RFC 2849) with the semantics of a real server.
//!
//! Used when no LDAP server is configured, so onboard works on a machine with no
//! infrastructure. Every operation takes an exclusive lock on the file, reloads it, applies the
//! change and writes the whole file back atomically, so concurrent runs see each other's changes.
//! The file stays loadable with `slapadd -l` or `ldapadd -f` (entries are written parents first,
//! and without the `version: 1` line those tools reject); the LDAP tests load it into slapd.
//! Passwords are stored as salted SHA-1 (`{SSHA}`), the scheme every OpenLDAP understands.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha1::{Digest, Sha1};

use super::{Directory, Entry};
use crate::backend::{BackendError, BackendResult};
use crate::secret::Secret;
use crate::state;

/// The embedded directory's starting point: the example organisation the shipped playbooks use.
pub const EXAMPLE_DIRECTORY: &str = include_str!("example-directory.ldif");

pub struct LdifDirectory {
    path: PathBuf,
    /// For a dry run: read the file (or the seed, if there is no file yet), never write.
    read_only: Option<String>,
}

impl LdifDirectory {
    /// Uses the LDIF file at `path`, creating it from `seed` if it does not exist.
    pub fn open(path: &Path, seed: &str) -> BackendResult<LdifDirectory> {
        if !path.exists() {
            // Seeded under the lock, so runs starting together seed it once.
            let _lock = state::lock_file(&path.with_extension("ldif.lock"))?;
            if !path.exists() {
                parse(seed).map_err(|e| BackendError::Other(format!("the seed directory: {e}")))?;
                state::write_atomic(path, seed.as_bytes())?;
            }
        }
        let dir = LdifDirectory {
            path: path.to_owned(),
            read_only: None,
        };
        dir.with_entries(|_| Ok(((), false)))?;
        Ok(dir)
    }

    /// Reads the LDIF file at `path` (or `seed` while it does not exist) and refuses changes.
    pub fn read_only(path: &Path, seed: &str) -> LdifDirectory {
        LdifDirectory {
            path: path.to_owned(),
            read_only: Some(seed.to_owned()),
        }
    }

    /// Runs `f` on the entries under the file lock; writes them back if `f` says it changed them.
    fn with_entries<T>(
        &self,
        f: impl FnOnce(&mut Vec<Entry>) -> BackendResult<(T, bool)>,
    ) -> BackendResult<T> {
        if let Some(seed) = &self.read_only {
            let text = match fs_err::read_to_string(&self.path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => seed.clone(),
                Err(e) => return Err(e.into()),
            };
            let mut entries = parse(&text).map_err(|e| {
                BackendError::Other(format!("{} is not valid LDIF: {e}", self.path.display()))
            })?;
            let (out, changed) = f(&mut entries)?;
            if changed {
                return Err(BackendError::Other("a dry run changes nothing".into()));
            }
            return Ok(out);
        }
        let lock = state::lock_file(&self.path.with_extension("ldif.lock"))?;
        let text = fs_err::read_to_string(&self.path)?;
        let mut entries = parse(&text).map_err(|e| {
            BackendError::Other(format!("{} is not valid LDIF: {e}", self.path.display()))
        })?;
        let (out, changed) = f(&mut entries)?;
        if changed {
            state::write_atomic(&self.path, write(&entries).as_bytes())?;
        }
        drop(lock);
        Ok(out)
    }
}

impl Directory for LdifDirectory {
    fn describe(&self) -> String {
        format!("embedded directory {}", self.path.display())
    }

    fn read(&mut self, dn: &str) -> BackendResult<Option<Entry>> {
        let key = normalize_dn(dn);
        self.with_entries(|entries| {
            Ok((
                entries.iter().find(|e| normalize_dn(&e.dn) == key).cloned(),
                false,
            ))
        })
    }

    fn find(&mut self, base: &str, attr: &str, value: &str) -> BackendResult<Vec<Entry>> {
        let base = normalize_dn(base);
        self.with_entries(|entries| {
            let found = entries
                .iter()
                .filter(|e| is_under(&normalize_dn(&e.dn), &base) && e.has_value(attr, value))
                .cloned()
                .collect();
            Ok((found, false))
        })
    }

    fn values(&mut self, base: &str, attr: &str) -> BackendResult<Vec<String>> {
        let base = normalize_dn(base);
        self.with_entries(|entries| {
            let values = entries
                .iter()
                .filter(|e| is_under(&normalize_dn(&e.dn), &base))
                .flat_map(|e| e.get(attr).iter().cloned())
                .collect();
            Ok((values, false))
        })
    }

    fn add(&mut self, entry: &Entry) -> BackendResult<()> {
        let key = normalize_dn(&entry.dn);
        self.with_entries(|entries| {
            if entries.iter().any(|e| normalize_dn(&e.dn) == key) {
                return Err(BackendError::AlreadyExists(entry.dn.clone()));
            }
            let parent = parent_dn(&key);
            if !parent.is_empty() && !entries.iter().any(|e| normalize_dn(&e.dn) == parent) {
                return Err(BackendError::NoSuchObject(format!(
                    "the parent entry {} of {}",
                    parent_dn(&entry.dn),
                    entry.dn
                )));
            }
            entries.push(entry.clone());
            Ok(((), true))
        })
    }

    fn add_values(&mut self, dn: &str, attr: &str, values: &[String]) -> BackendResult<()> {
        self.modify(dn, |e| {
            let mut changed = false;
            for v in values {
                if !e.has_value(attr, v) {
                    push_value(e, attr, v.clone());
                    changed = true;
                }
            }
            changed
        })
    }

    fn replace(&mut self, dn: &str, attr: &str, values: &[String]) -> BackendResult<()> {
        self.modify(dn, |e| {
            e.attrs.retain(|(n, _)| !n.eq_ignore_ascii_case(attr));
            if !values.is_empty() {
                e.attrs.push((attr.to_owned(), values.to_vec()));
            }
            true
        })
    }

    fn set_password(&mut self, dn: &str, password: &Secret) -> BackendResult<()> {
        let hashed = ssha_hash(password)?;
        self.replace(dn, "userPassword", &[hashed])
    }

    fn check_password(&mut self, dn: &str, password: &Secret) -> BackendResult<bool> {
        let Some(entry) = self.read(dn)? else {
            return Err(BackendError::NoSuchObject(dn.to_owned()));
        };
        Ok(entry.get("userPassword").iter().any(|stored| {
            stored
                .strip_prefix("{SSHA}")
                .and_then(|b| B64.decode(b).ok())
                .filter(|raw| raw.len() > 20)
                .is_some_and(|raw| ssha(password.expose(), &raw[20..]) == *stored)
        }))
    }
}

impl LdifDirectory {
    fn modify(&mut self, dn: &str, f: impl FnOnce(&mut Entry) -> bool) -> BackendResult<()> {
        let key = normalize_dn(dn);
        self.with_entries(|entries| {
            let Some(entry) = entries.iter_mut().find(|e| normalize_dn(&e.dn) == key) else {
                return Err(BackendError::NoSuchObject(dn.to_owned()));
            };
            let changed = f(entry);
            Ok(((), changed))
        })
    }
}

fn push_value(e: &mut Entry, attr: &str, value: String) {
    match e
        .attrs
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(attr))
    {
        Some((_, values)) => values.push(value),
        None => e.attrs.push((attr.to_owned(), vec![value])),
    }
}

/// `{SSHA}` of the password with a fresh random salt.
pub fn ssha_hash(password: &Secret) -> BackendResult<String> {
    let mut salt = [0u8; 8];
    getrandom::fill(&mut salt).map_err(|e| BackendError::Other(e.to_string()))?;
    Ok(ssha(password.expose(), &salt))
}

fn ssha(password: &str, salt: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(password.as_bytes());
    h.update(salt);
    let mut raw = h.finalize().to_vec();
    raw.extend_from_slice(salt);
    format!("{{SSHA}}{}", B64.encode(raw))
}

/// A DN in a form for comparison (see [`crate::escape::canonical_dn`]).
pub fn normalize_dn(dn: &str) -> String {
    crate::escape::canonical_dn(dn)
}

fn split_rdns(dn: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in dn.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            parts.push(String::new());
            continue;
        }
        parts.last_mut().expect("never empty").push(c);
    }
    parts
}

fn parent_dn(dn: &str) -> String {
    let rdns = split_rdns(dn);
    rdns[1..].join(",").trim().to_owned()
}

fn is_under(dn: &str, base: &str) -> bool {
    dn == base || dn.ends_with(&format!(",{base}"))
}

/// Parses LDIF content records (no change records).
/// Where an LDIF file stops being LDIF.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct LdifError {
    pub line: usize,
    pub problem: &'static str,
}

pub fn parse(text: &str) -> Result<Vec<Entry>, LdifError> {
    // Unfold continuation lines first.
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = raw.strip_prefix(' ')
            && let Some((_, last)) = lines.last_mut()
            && !last.is_empty()
        {
            last.push_str(rest);
            continue;
        }
        lines.push((i + 1, raw.to_owned()));
    }
    let mut entries = Vec::new();
    let mut current: Option<Entry> = None;
    for (n, line) in lines {
        if line.is_empty() {
            if let Some(e) = current.take() {
                entries.push(e);
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, value) = parse_line(&line).ok_or(LdifError {
            line: n,
            problem: "expected `name: value`",
        })?;
        match &mut current {
            None if name.eq_ignore_ascii_case("version") => {}
            None if name.eq_ignore_ascii_case("dn") => {
                current = Some(Entry {
                    dn: value,
                    attrs: Vec::new(),
                })
            }
            None => {
                return Err(LdifError {
                    line: n,
                    problem: "an entry must start with `dn:`",
                });
            }
            Some(e) => push_value(e, &name, value),
        }
    }
    if let Some(e) = current.take() {
        entries.push(e);
    }
    Ok(entries)
}

fn parse_line(line: &str) -> Option<(String, String)> {
    let (name, rest) = line.split_once(':')?;
    if let Some(b64) = rest.strip_prefix(':') {
        let bytes = B64.decode(b64.trim()).ok()?;
        return Some((name.to_owned(), String::from_utf8(bytes).ok()?));
    }
    Some((
        name.to_owned(),
        rest.strip_prefix(' ').unwrap_or(rest).to_owned(),
    ))
}

/// Writes entries as LDIF, parents before children, values base64-encoded where RFC 2849
/// requires it (non-ASCII, leading space/colon/`<`, trailing space, control characters).
pub fn write(entries: &[Entry]) -> String {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| split_rdns(&e.dn).len());
    // No `version: 1` line: OpenLDAP's slapadd and ldapadd read it as an attribute.
    let mut out =
        String::from("# onboard embedded directory: load with slapadd -l or ldapadd -f\n");
    for e in sorted {
        out.push('\n');
        write_line(&mut out, "dn", &e.dn);
        for (name, values) in &e.attrs {
            for v in values {
                write_line(&mut out, name, v);
            }
        }
    }
    out
}

fn write_line(out: &mut String, name: &str, value: &str) {
    let safe = value
        .bytes()
        .all(|b| (1..=127).contains(&b) && b != b'\n' && b != b'\r')
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ');
    let line = if safe {
        format!("{name}: {value}")
    } else {
        format!("{name}:: {}", B64.encode(value.as_bytes()))
    };
    // Fold at 76 characters; continuation lines start with one space.
    let mut chars = line.chars().peekable();
    let mut first = true;
    while chars.peek().is_some() {
        let width = if first { 76 } else { 75 };
        let chunk: String = chars.by_ref().take(width).collect();
        if !first {
            out.push(' ');
        }
        out.push_str(&chunk);
        out.push('\n');
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "version: 1\n\ndn: dc=example,dc=org\nobjectClass: domain\ndc: example\n\n\
        dn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n\n\
        dn: cn=staff,dc=example,dc=org\nobjectClass: groupOfNames\ncn: staff\nmember: cn=admin,dc=example,dc=org\n";

    fn entry(dn: &str) -> Entry {
        Entry {
            dn: dn.into(),
            attrs: vec![
                ("objectClass".into(), vec!["inetOrgPerson".into()]),
                ("cn".into(), vec!["O'Brien, Seán".into()]),
                ("sn".into(), vec![" leading space".into()]),
            ],
        }
    }

    #[test]
    fn behaves_like_a_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.ldif");
        let mut d = LdifDirectory::open(&path, SEED).unwrap();
        let dn = "cn=O'Brien\\, Seán,ou=people,dc=example,dc=org";
        d.add(&entry(dn)).unwrap();
        assert!(matches!(
            d.add(&entry(dn)),
            Err(BackendError::AlreadyExists(_))
        ));
        assert!(matches!(
            d.add(&entry("uid=x,ou=nowhere,dc=example,dc=org")),
            Err(BackendError::NoSuchObject(_))
        ));
        let group = "cn=staff,dc=example,dc=org";
        d.add_values(group, "member", &[dn.into()]).unwrap();
        d.add_values(group, "member", &[dn.into()]).unwrap();
        assert_eq!(d.read(group).unwrap().unwrap().get("member").len(), 2);
        let got = d
            .read("CN=o'brien\\, seán, OU=People,dc=example,dc=org")
            .unwrap()
            .unwrap();
        assert_eq!(got.get("cn"), ["O'Brien, Seán"]);
        assert_eq!(got.get("sn"), [" leading space"]);
    }

    #[test]
    fn passwords_are_salted_hashes_that_check() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = LdifDirectory::open(&dir.path().join("d.ldif"), SEED).unwrap();
        let dn = "uid=ada,ou=people,dc=example,dc=org";
        d.add(&entry(dn)).unwrap();
        let pw = Secret::new("correct horse battery".into());
        d.set_password(dn, &pw).unwrap();
        assert!(d.check_password(dn, &pw).unwrap());
        assert!(!d.check_password(dn, &Secret::new("wrong".into())).unwrap());
        let text = std::fs::read_to_string(dir.path().join("d.ldif")).unwrap();
        assert!(text.contains("userPassword: {SSHA}"));
        assert!(!text.contains("correct horse"));
    }

    #[test]
    fn written_ldif_round_trips_and_folds() {
        let mut e = entry("uid=z,dc=example,dc=org");
        e.attrs.push(("description".into(), vec!["x".repeat(200)]));
        let text = write(&[e.clone()]);
        assert!(text.lines().all(|l| l.len() <= 77), "{text}");
        assert!(text.contains("cn:: "), "non-ASCII is base64");
        assert_eq!(parse(&text).unwrap(), vec![e]);
    }
}
