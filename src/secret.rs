//! Secrets: generated initial passwords and configured credentials.
//!
//! A [`Secret`] cannot be printed by accident: it has no `Display`, its `Debug` shows stars, and
//! its bytes are overwritten when it is dropped. Code that must use the value calls `expose`.

use std::fmt;

/// Cloned only to hand one configured credential to each worker; every copy is zeroed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the one place that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Overwrite the buffer before it is freed; black_box keeps the writes from being
        // optimised away as dead stores.
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

/// A secret that is not text (a password encoded for the wire), zeroed when dropped.
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn new(value: Vec<u8>) -> SecretBytes {
        SecretBytes(value)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.0);
    }
}

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGIT: &[u8] = b"23456789";
const SYMBOL: &[u8] = b"-_.!@#%+=?";

/// A random password of `length` characters from the OS CSPRNG, with at least one lowercase
/// letter, uppercase letter, digit and symbol, and without look-alike characters (l, 1, I, O, 0).
pub fn generate_password(length: usize) -> Result<Secret, getrandom::Error> {
    let length = length.max(4);
    let all: Vec<u8> = [LOWER, UPPER, DIGIT, SYMBOL].concat();
    loop {
        let mut out = Vec::with_capacity(length);
        while out.len() < length {
            let mut buf = [0u8; 64];
            getrandom::fill(&mut buf)?;
            for b in buf {
                // Rejection sampling keeps every character equally likely.
                let limit = 256 - (256 % all.len());
                if (b as usize) < limit && out.len() < length {
                    out.push(all[b as usize % all.len()]);
                }
            }
        }
        let has = |set: &[u8]| out.iter().any(|c| set.contains(c));
        if has(LOWER) && has(UPPER) && has(DIGIT) && has(SYMBOL) {
            return Ok(Secret(String::from_utf8(out).expect("ASCII")));
        }
    }
}

/// Random bytes as lowercase hex, for identifiers (run ids, Message-IDs).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random number generator works");
    crate::digest::hex(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_every_class_and_the_right_length() {
        for _ in 0..200 {
            let p = generate_password(16).unwrap();
            let s = p.expose();
            assert_eq!(s.len(), 16);
            assert!(s.bytes().any(|c| c.is_ascii_lowercase()));
            assert!(s.bytes().any(|c| c.is_ascii_uppercase()));
            assert!(s.bytes().any(|c| c.is_ascii_digit()));
            assert!(!s.contains(['l', '1', 'I', 'O', '0']));
        }
        assert_ne!(
            generate_password(20).unwrap().expose(),
            generate_password(20).unwrap().expose()
        );
    }

    #[test]
    fn debug_does_not_show_the_value() {
        let p = Secret::new("hunter2-hunter2".into());
        assert_eq!(format!("{p:?}"), "Secret(***)");
    }
}
