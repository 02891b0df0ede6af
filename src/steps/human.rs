//! What the steps people do (`sign_off`, `device_handoff`) share: the device they are about,
//! waiting for a signature, and checking a signature against what was asked (`validate`, the
//! same for the run's prompt, `onboard sign-off` and any other way of signing).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Check;
use crate::journal::{NotifyParams, Refusal, SignOffRequest};
use crate::model::Tpl;
use crate::plan::Renderer;

/// Identifies a device.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    /// Inventory tag (template).
    pub tag: Tpl,
    /// Serial number (template).
    pub serial: Tpl,
    /// Model (template).
    pub model: Option<Tpl>,
}

/// A device, rendered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AssetParams {
    pub tag: String,
    pub serial: String,
    pub model: Option<String>,
}

pub(crate) fn render_asset(r: &mut Renderer<'_>, a: &Asset) -> AssetParams {
    AssetParams {
        tag: r.line(&a.tag, "the asset tag"),
        serial: r.line(&a.serial, "the serial number"),
        model: a.model.as_ref().map(|m| r.line(m, "the model")),
    }
}

/// Email the signer a link to sign on the web (`onboard serve`), once, when the step starts
/// waiting.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// The signer's email address (template), e.g. the bench's shared mailbox.
    pub to: Tpl,
    /// The sender, e.g. `IT Service Desk <it@example.org>` (template).
    pub from: Tpl,
}

pub(crate) fn render_notify(r: &mut Renderer<'_>, n: &Notify) -> NotifyParams {
    let to = r.line(&n.to, "`notify.to`");
    let from = r.line(&n.from, "`notify.from`");
    for (value, tpl, what) in [(&to, &n.to, "notify.to"), (&from, &n.from, "notify.from")] {
        if !value.contains('{') && value.parse::<lettre::message::Mailbox>().is_err() {
            r.fail(
                crate::diag::Diagnostic::new(format!(
                    "`{what}`: `{value}` is not an email address"
                ))
                .at(tpl.span)
                .hint("write name@example.org, or Name <name@example.org>"),
            );
        }
    }
    NotifyParams { to, from }
}

/// The step waits for `request.role` to sign `request`.
pub(crate) fn waiting(request: SignOffRequest, reason: String) -> Check {
    Check::Waiting {
        on: request.role.clone(),
        reason,
        request: Some(Box::new(request)),
    }
}

/// What a person signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub by: String,
    pub confirmed: Vec<String>,
    pub refused: Option<Refusal>,
    pub note: String,
    pub evidence: BTreeMap<String, String>,
    /// How it was given: `terminal`, `link`, `web`, `in person`.
    pub how: String,
    /// Who saw it given in person (required then).
    pub witness: String,
}

/// How a signature was given, for people: `link`, `in person, witnessed by Tom Tech`; empty
/// for records from before onboard recorded it.
pub fn how_given(how: &str, witness: &str) -> String {
    match (how, witness) {
        (how, "") => how.to_owned(),
        (how, witness) => format!("{how}, witnessed by {witness}"),
    }
}

/// What people write into a signature is one line of visible text: a newline would forge a
/// line of `status` or `log`, an escape sequence would drive a terminal, and an invisible
/// character (a zero-width space, a soft hyphen, a bidi override) would make "alice" a name
/// dual control does not know.
fn plain_text(what: &str, text: &str) -> Result<(), crate::diag::Invalid> {
    match text.chars().find(|&c| c.is_control() || invisible(c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "{what} holds the invisible or control character U+{:04X}; write it as one line of \
             plain text",
            c as u32
        )
        .into()),
    }
}

/// Format characters that show as nothing (Unicode's default ignorables in names).
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
        | '\u{ffa0}' | '\u{fff0}'..='\u{fff8}')
}

/// Whether two names are the same person's for dual control and named signers: compared as
/// people read them (compatibility forms folded, `ａｌｉｃｅ` is `alice`; case, outer and repeated
/// spaces ignored).
pub fn same_person(a: &str, b: &str) -> bool {
    use unicode_normalization::UnicodeNormalization;
    let fold = |s: &str| {
        s.nfkc()
            .filter(|c| !invisible(*c))
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    fold(a) == fold(b)
}

/// Checks a signature against what was asked. `operators` ran the automated steps;
/// `known_as` are other names the signer acts under (their sign-in), for dual control.
pub fn validate(
    request: &SignOffRequest,
    signature: &Signature,
    known_as: &[&str],
    operators: &[&str],
) -> Result<(), crate::diag::Invalid> {
    let by = signature.by.trim();
    if by.is_empty() {
        return Err("the signer's name is missing".into());
    }
    plain_text("the signer's name", by)?;
    plain_text("the note", &signature.note)?;
    for (name, value) in &signature.evidence {
        plain_text(name, value)?;
    }
    if let Some(r) = &signature.refused {
        plain_text("the reason", &r.reason)?;
    }
    if !request.signers.is_empty() && !request.signers.iter().any(|s| same_person(s, by)) {
        return Err(format!(
            "{by} may not sign this; the checklist names {}",
            request.signers.join(", ")
        )
        .into());
    }
    if request.not_operator
        && let Some(name) = std::iter::once(&by)
            .chain(known_as)
            .find(|n| operators.iter().any(|o| same_person(o, n)))
    {
        return Err(format!(
            "dual control: {name} ran the automated steps for this hire, so someone else must sign"
        )
        .into());
    }
    if signature.how == "in person" {
        let witness = signature.witness.trim();
        if witness.is_empty() {
            return Err("given in person: the witness's name is missing".into());
        }
        plain_text("the witness's name", witness)?;
        if same_person(witness, by) {
            return Err(format!("{by} cannot witness their own signature").into());
        }
    }
    if let Some(refusal) = &signature.refused {
        if !request.items.contains(&refusal.item) {
            return Err(format!("\"{}\" is not an item of this sign-off", refusal.item).into());
        }
        if refusal.reason.trim().is_empty() {
            return Err("a refusal needs a reason".into());
        }
        return Ok(());
    }
    let missing: Vec<&String> = request
        .items
        .iter()
        .filter(|i| !signature.confirmed.contains(i))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "not confirmed: {}",
            missing
                .iter()
                .map(|m| format!("\"{m}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )
        .into());
    }
    let absent: Vec<&String> = request
        .evidence
        .iter()
        .filter(|e| {
            signature
                .evidence
                .get(*e)
                .is_none_or(|v| v.trim().is_empty())
        })
        .collect();
    if !absent.is_empty() {
        return Err(format!(
            "evidence missing: {}",
            absent
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> SignOffRequest {
        SignOffRequest {
            role: "technician".into(),
            items: vec!["wiped".into(), "cleaned".into()],
            evidence: vec!["wipe_certificate_id".into()],
            not_operator: true,
            signers: vec![],
            asset: BTreeMap::new(),
            cleaning: None,
            notify: None,
            policy: None,
            campaign: false,
            checksum: "c".into(),
        }
    }

    fn signature(by: &str) -> Signature {
        Signature {
            by: by.into(),
            confirmed: vec!["wiped".into(), "cleaned".into()],
            refused: None,
            note: String::new(),
            evidence: BTreeMap::from([("wipe_certificate_id".into(), "WC-1".into())]),
            how: "terminal".into(),
            witness: String::new(),
        }
    }

    #[test]
    fn dual_control_and_completeness() {
        let r = request();
        assert_eq!(validate(&r, &signature("Tom"), &[], &["alice"]), Ok(()));
        assert!(
            validate(&r, &signature("Alice"), &[], &["alice"])
                .unwrap_err()
                .0
                .starts_with("dual control")
        );
        // Signing under another name does not get round it: the sign-in counts too.
        assert!(
            validate(&r, &signature("Tom"), &["alice"], &["alice"])
                .unwrap_err()
                .0
                .starts_with("dual control: alice")
        );
        let mut partial = signature("Tom");
        partial.confirmed.pop();
        assert_eq!(
            validate(&r, &partial, &[], &[]),
            Err("not confirmed: \"cleaned\"".into())
        );
        let mut no_evidence = signature("Tom");
        no_evidence.evidence.clear();
        assert_eq!(
            validate(&r, &no_evidence, &[], &[]),
            Err("evidence missing: wipe_certificate_id".into())
        );
        let mut named = r.clone();
        named.signers = vec!["Tina".into()];
        assert!(
            validate(&named, &signature("Tom"), &[], &[])
                .unwrap_err()
                .0
                .contains("may not sign")
        );
    }
}
