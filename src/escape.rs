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
pub fn check_dn(dn: &str) -> Result<(), crate::diag::Invalid> {
    if dn.trim().is_empty() {
        return Err("the DN is empty".into());
    }
    for rdn in split_unescaped(dn, ',') {
        for ava in split_unescaped(&rdn, '+') {
            let Some((attr, _)) = ava.split_once('=') else {
                return Err(format!("`{ava}` is not of the form `attribute=value`").into());
            };
            let attr = attr.trim();
            let valid = !attr.is_empty()
                && (attr
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
            if !valid {
                return Err(format!("`{attr}` is not an attribute name").into());
            }
        }
    }
    Ok(())
}

/// A DN in canonical form for comparison: attribute types and values lowercased, values
/// unescaped (`\,` and `\2C` are the same comma), insignificant spaces dropped. Servers hand DNs
/// back in their own spelling (slapd writes `\2C` for a comma), so DNs are compared this way.
pub fn canonical_dn(dn: &str) -> String {
    split_unescaped(dn, ',')
        .iter()
        .map(|rdn| {
            let mut avas: Vec<String> = split_unescaped(rdn, '+')
                .iter()
                .map(|ava| match ava.split_once('=') {
                    Some((attr, value)) => format!(
                        "{}={}",
                        attr.trim().to_lowercase(),
                        dn_value(&unescape_value(value.trim_start()).to_lowercase())
                    ),
                    None => ava.trim().to_lowercase(),
                })
                .collect();
            avas.sort();
            avas.join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether two DNs name the same entry.
pub fn dn_eq(a: &str, b: &str) -> bool {
    canonical_dn(a) == canonical_dn(b)
}

/// The raw value of an escaped RDN value (`\,` → `,`, `\2C` → `,`); an unescaped trailing
/// space is insignificant.
fn unescape_value(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut last_significant = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 1 < bytes.len() {
            let hex = value
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => {
                    out.push(bytes[i + 1]);
                    i += 2;
                }
            }
            last_significant = out.len();
            continue;
        }
        out.push(bytes[i]);
        if bytes[i] != b' ' {
            last_significant = out.len();
        }
        i += 1;
    }
    out.truncate(last_significant);
    String::from_utf8_lossy(&out).into_owned()
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

/// Text for HTML (an element's content or a quoted attribute), for pages and messages built
/// without a template.
pub fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
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
    fn dns_compare_across_escaping_styles() {
        assert!(dn_eq(
            "cn=Seán O'Brien\\, Jr.,ou=people,dc=example,dc=org",
            "cn=Se\\C3\\A1n O'Brien\\2C Jr.,ou=People, dc=Example,dc=org"
        ));
        assert!(dn_eq(
            "cn=\\ lead trail\\ ,dc=x",
            "CN=\\20lead trail\\20,DC=x"
        ));
        assert!(dn_eq("cn=\\#hash,dc=x", "cn=\\23hash,dc=x"));
        assert!(!dn_eq("cn=a\\,b,dc=x", "cn=a,cn=b,dc=x"));
        for name in [
            "O'Brien, Seán",
            "Zoë+Ann",
            "李雷",
            "a*)(uid=*",
            "#hash",
            " lead ",
            "x\\y",
        ] {
            let dn = format!("cn={},dc=x", dn_value(name));
            assert!(dn_eq(&dn, &dn.to_uppercase().replace("CN=", "cn=")), "{dn}");
        }
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
