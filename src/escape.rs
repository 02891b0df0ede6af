//! Escaping hire data for LDAP: DN attribute values (RFC 4514) and search filters (RFC 4515).
//!
//! Every value that came from a hire goes through one of these before it reaches a DN or a
//! filter. They are also Tera filters (`dn_escape`, `filter_escape`) for playbook authors who
//! build DNs by hand.

use std::fmt::Write as _;

/// Escapes an attribute value for use in a DN (RFC 4514 section 2.4).
///
/// `,+"\<>;=` are backslash-escaped anywhere; `#` and space at the start and space at the end
/// are escaped; NUL becomes `\00`. Non-ASCII characters are kept as UTF-8, as the RFC allows.
pub fn dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for use in a search filter (RFC 4515 section 3): `*()\` and NUL become
/// `\2a`, `\28`, `\29`, `\5c`, `\00`.
pub fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => {
                let _ = write!(out, "\\{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Checks that `dn` is a syntactically plausible DN: `attr=value` pairs separated by unescaped
/// commas, each with a non-empty attribute type. Returns what is wrong.
pub fn check_dn(dn: &str) -> Result<(), String> {
    if dn.trim().is_empty() {
        return Err("the DN is empty".into());
    }
    for rdn in split_unescaped(dn, ',') {
        for ava in split_unescaped(&rdn, '+') {
            let Some((attr, _)) = ava.split_once('=') else {
                return Err(format!("`{ava}` is not of the form `attribute=value`"));
            };
            let attr = attr.trim();
            let valid = !attr.is_empty()
                && (attr
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
            if !valid {
                return Err(format!("`{attr}` is not an attribute name"));
            }
        }
    }
    Ok(())
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(String::new());
            continue;
        }
        parts.last_mut().expect("never empty").push(c);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_values_from_hostile_names() {
        let cases = [
            ("O'Brien, Seán", "O'Brien\\, Seán"),
            ("Zoë+Ann", "Zoë\\+Ann"),
            ("李雷", "李雷"),
            ("a*)(uid=*", "a*)(uid\\=*"),
            ("#hash", "\\#hash"),
            (" lead", "\\ lead"),
            ("trail ", "trail\\ "),
            (" ", "\\ "),
            ("in#side", "in#side"),
            ("a\"b\\c<d>e;f", "a\\\"b\\\\c\\<d\\>e\\;f"),
            ("nul\0", "nul\\00"),
        ];
        for (input, expected) in cases {
            assert_eq!(dn_value(input), expected, "{input:?}");
        }
    }

    #[test]
    fn filter_values_from_hostile_names() {
        assert_eq!(filter_value("a*)(uid=*"), "a\\2a\\29\\28uid=\\2a");
        assert_eq!(filter_value("back\\slash"), "back\\5cslash");
        assert_eq!(filter_value("nul\0"), "nul\\00");
        assert_eq!(filter_value("Seán"), "Seán");
    }

    #[test]
    fn escaped_values_make_valid_dns() {
        for name in ["O'Brien, Seán", "a=b,c=d", "x+y", "\\"] {
            let dn = format!("uid={},ou=people,dc=example,dc=org", dn_value(name));
            assert_eq!(check_dn(&dn), Ok(()), "{dn}");
            assert_eq!(split_unescaped(&dn, ',').len(), 4, "{dn}");
        }
        assert!(check_dn("ou=people,,dc=x").is_err());
        assert!(check_dn("people").is_err());
    }
}
