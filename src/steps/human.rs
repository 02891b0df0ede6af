//! The steps people do: `sign_off` (e.g. the laptop was cleaned) and `device_handoff` (the hire
//! received it). They wait until someone signs, at the run's prompt or with `onboard sign-off`;
//! what was signed, by whom and when is a `signed_off` journal record.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Check, Ctx, StepError, StepResult};
use crate::diag::Diagnostic;
use crate::journal::{Refusal, SignOffRequest};
use crate::model::Tpl;
use crate::plan::{AssetParams, Params, PlannedStep, Renderer};
use crate::yaml::Spanned;

/// A person signs that a checklist was done, e.g. the laptop cleaning.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignOff {
    /// Who must sign: `technician`, `manager`, `hire`, or another role your team uses.
    pub role: Spanned<String>,
    /// What the signer confirms, item by item (templates).
    pub items: Vec<Tpl>,
    /// Evidence the signer records, e.g. `wipe_certificate_id`.
    #[serde(default)]
    pub evidence: Vec<Spanned<String>>,
    /// The device this sign-off is about, if any.
    pub asset: Option<Asset>,
    /// The signer must not be the operator who ran the automated steps. Default false.
    #[serde(default)]
    pub not_operator: bool,
    /// If given, only these people may sign (names as they sign, e.g. `[Tom Tech, Tina Tech]`).
    #[serde(default)]
    pub signers: Vec<Spanned<String>>,
}

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

/// Hands a device to the hire. Refused unless the named cleaning sign-off is done for the same
/// asset tag and serial.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceHandoff {
    /// The device.
    pub asset: Asset,
    /// The `sign_off` step that certifies this device was cleaned (an implicit `needs`).
    pub cleaning: Spanned<String>,
    /// Condition at hand-off, e.g. "refurbished, no marks" (template).
    pub condition: Option<Tpl>,
    /// What comes with it, e.g. `[charger, dock]` (templates).
    #[serde(default)]
    pub accessories: Vec<Tpl>,
}

/// The outputs of a `sign_off` step (known once it is signed).
pub const SIGN_OFF_OUTPUTS: &[&str] = &["signed_by", "signed_at"];
/// The outputs of a `device_handoff` step (`received_by` once the hire acknowledges).
pub const HANDOFF_OUTPUTS: &[&str] = &["asset_tag", "serial", "received_by"];

/// Renders a `sign_off` step.
pub(crate) fn render_sign_off(r: &mut Renderer<'_>, s: &SignOff) -> Params {
    if s.items.is_empty() {
        r.fail(
            Diagnostic::new("`items` is empty")
                .at(s.role.span)
                .hint("list what the signer confirms"),
        );
    }
    Params::SignOff {
        role: s.role.value.clone(),
        items: s.items.iter().map(|i| r.line(i, "an item")).collect(),
        evidence: s.evidence.iter().map(|e| e.value.clone()).collect(),
        asset: s.asset.as_ref().map(|a| asset(r, a)),
        not_operator: s.not_operator,
        signers: s.signers.iter().map(|n| n.value.clone()).collect(),
    }
}

/// Renders a `device_handoff` step.
pub(crate) fn render_handoff(r: &mut Renderer<'_>, h: &DeviceHandoff) -> Params {
    Params::DeviceHandoff {
        asset: asset(r, &h.asset),
        cleaning: h.cleaning.value.clone(),
        condition: h.condition.as_ref().map(|c| r.line(c, "`condition`")),
        accessories: h
            .accessories
            .iter()
            .map(|a| r.line(a, "an accessory"))
            .collect(),
    }
}

fn asset(r: &mut Renderer<'_>, a: &Asset) -> AssetParams {
    AssetParams {
        tag: r.line(&a.tag, "the asset tag"),
        serial: r.line(&a.serial, "the serial number"),
        model: a.model.as_ref().map(|m| r.line(m, "the model")),
    }
}

/// One line saying what a people's step would do.
pub fn describe(params: &Params) -> String {
    match params {
        Params::SignOff {
            role, items, asset, ..
        } => {
            let about = asset
                .as_ref()
                .map(|a| format!(" for asset {} (serial {})", a.tag, a.serial))
                .unwrap_or_default();
            format!(
                "wait for the {role} to sign off {} item{}{about}",
                items.len(),
                if items.len() == 1 { "" } else { "s" }
            )
        }
        Params::DeviceHandoff {
            asset, cleaning, ..
        } => format!(
            "hand over asset {} (serial {}) once `{cleaning}` is signed off; the hire acknowledges receipt",
            asset.tag, asset.serial
        ),
        _ => String::new(),
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
}

/// The request a waiting human step makes.
pub fn request(step: &PlannedStep) -> Option<SignOffRequest> {
    match &step.params {
        Params::SignOff {
            role,
            items,
            evidence,
            asset,
            not_operator,
            signers,
        } => Some(SignOffRequest {
            role: role.clone(),
            items: items.clone(),
            evidence: evidence.clone(),
            not_operator: *not_operator,
            signers: signers.clone(),
            asset: asset
                .iter()
                .flat_map(|a| {
                    [
                        ("asset_tag", Some(&a.tag)),
                        ("serial", Some(&a.serial)),
                        ("model", a.model.as_ref()),
                    ]
                })
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.clone())))
                .collect(),
            cleaning: None,
            checksum: step.checksum.clone(),
        }),
        Params::DeviceHandoff {
            asset,
            cleaning,
            condition,
            accessories,
        } => {
            let mut items = vec![
                format!(
                    "I received {} {} (asset {}, serial {})",
                    if asset.model.is_some() {
                        "a"
                    } else {
                        "the device"
                    },
                    asset.model.as_deref().unwrap_or(""),
                    asset.tag,
                    asset.serial
                )
                .replace("  ", " "),
            ];
            if let Some(c) = condition {
                items.push(format!("Its condition: {c}"));
            }
            if !accessories.is_empty() {
                items.push(format!("With: {}", accessories.join(", ")));
            }
            let mut details = BTreeMap::from([
                ("asset_tag".to_owned(), asset.tag.clone()),
                ("serial".to_owned(), asset.serial.clone()),
            ]);
            if let Some(m) = &asset.model {
                details.insert("model".into(), m.clone());
            }
            if let Some(c) = condition {
                details.insert("condition".into(), c.clone());
            }
            if !accessories.is_empty() {
                details.insert("accessories".into(), accessories.join(", "));
            }
            Some(SignOffRequest {
                role: "hire".into(),
                items,
                evidence: Vec::new(),
                not_operator: false,
                signers: Vec::new(),
                asset: details,
                cleaning: Some(cleaning.clone()),
                checksum: step.checksum.clone(),
            })
        }
        _ => None,
    }
}

pub fn check(step: &PlannedStep, ctx: &mut Ctx<'_>) -> StepResult<Check> {
    let request = request(step).expect("a human step");
    if let Params::DeviceHandoff {
        asset, cleaning, ..
    } = &step.params
    {
        // The device handed over must be the one that was cleaned.
        let cleaned = ctx.outputs.get(cleaning).ok_or_else(|| {
            StepError::new(format!("`{cleaning}` (the cleaning sign-off) is not done"))
        })?;
        let (tag, serial) = (cleaned.get("asset_tag"), cleaned.get("serial"));
        if tag != Some(&asset.tag) || serial != Some(&asset.serial) {
            return Err(StepError::new(format!(
                "the cleaning sign-off `{cleaning}` was for asset {} (serial {}), not asset {} (serial {})",
                tag.map_or("(none)", String::as_str),
                serial.map_or("(none)", String::as_str),
                asset.tag,
                asset.serial
            ))
            .hint("hand over the device that was cleaned, or have this one cleaned and signed off"));
        }
    }
    let reason = match &step.params {
        Params::DeviceHandoff { asset, .. } => {
            format!(
                "acknowledge receipt of asset {} (serial {})",
                asset.tag, asset.serial
            )
        }
        _ => format!(
            "{} item{} to confirm",
            request.items.len(),
            if request.items.len() == 1 { "" } else { "s" }
        ),
    };
    Ok(Check::Waiting {
        on: request.role.clone(),
        reason,
        request: Some(request),
    })
}

/// Checks a signature against what was asked. `operators` ran the automated steps.
pub fn validate(
    request: &SignOffRequest,
    signature: &Signature,
    operators: &[&str],
) -> Result<(), String> {
    let by = signature.by.trim();
    if by.is_empty() || by.chars().any(char::is_control) {
        return Err("the signer's name is missing".into());
    }
    if !request.signers.is_empty() && !request.signers.iter().any(|s| s.eq_ignore_ascii_case(by)) {
        return Err(format!(
            "{by} may not sign this; the checklist names {}",
            request.signers.join(", ")
        ));
    }
    if request.not_operator && operators.iter().any(|o| o.eq_ignore_ascii_case(by)) {
        return Err(format!(
            "dual control: {by} ran the automated steps for this hire, so someone else must sign"
        ));
    }
    if let Some(refusal) = &signature.refused {
        if !request.items.contains(&refusal.item) {
            return Err(format!(
                "\"{}\" is not an item of this sign-off",
                refusal.item
            ));
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
        ));
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
        ));
    }
    Ok(())
}

/// A people's step's parameters as `name: value` lines for people.
pub fn fields(params: &Params) -> Vec<(String, String)> {
    match params {
        Params::SignOff {
            role,
            items,
            evidence,
            asset,
            not_operator,
            signers,
        } => sign_off_fields(
            role,
            items,
            evidence,
            asset.as_ref(),
            *not_operator,
            signers,
        ),
        Params::DeviceHandoff {
            asset,
            condition,
            accessories,
            ..
        } => handoff_fields(asset, condition.as_deref(), accessories),
        _ => Vec::new(),
    }
}

fn sign_off_fields(
    role: &str,
    items: &[String],
    evidence: &[String],
    asset: Option<&AssetParams>,
    not_operator: bool,
    signers: &[String],
) -> Vec<(String, String)> {
    let mut out = vec![("signer".to_owned(), role.to_owned())];
    if not_operator {
        out.push((
            "dual control".to_owned(),
            "the signer must not be the operator".to_owned(),
        ));
    }
    if !signers.is_empty() {
        out.push(("may sign".to_owned(), signers.join(", ")));
    }
    if let Some(a) = asset {
        out.push((
            "asset".to_owned(),
            format!("{} (serial {})", a.tag, a.serial),
        ));
    }
    out.extend(items.iter().map(|i| ("item".to_owned(), i.clone())));
    out.extend(evidence.iter().map(|e| ("evidence".to_owned(), e.clone())));
    out
}

/// A hand-off's parameters as `name: value` lines for people.
fn handoff_fields(
    asset: &AssetParams,
    condition: Option<&str>,
    accessories: &[String],
) -> Vec<(String, String)> {
    let model = asset
        .model
        .as_deref()
        .map(|m| format!(", {m}"))
        .unwrap_or_default();
    let mut out = vec![(
        "asset".to_owned(),
        format!("{} (serial {}{model})", asset.tag, asset.serial),
    )];
    if let Some(c) = condition {
        out.push(("condition".to_owned(), c.to_owned()));
    }
    if !accessories.is_empty() {
        out.push(("accessories".to_owned(), accessories.join(", ")));
    }
    out
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
        }
    }

    #[test]
    fn dual_control_and_completeness() {
        let r = request();
        assert_eq!(validate(&r, &signature("Tom"), &["alice"]), Ok(()));
        assert!(
            validate(&r, &signature("Alice"), &["alice"])
                .unwrap_err()
                .starts_with("dual control")
        );
        let mut partial = signature("Tom");
        partial.confirmed.pop();
        assert_eq!(
            validate(&r, &partial, &[]),
            Err("not confirmed: \"cleaned\"".into())
        );
        let mut no_evidence = signature("Tom");
        no_evidence.evidence.clear();
        assert_eq!(
            validate(&r, &no_evidence, &[]),
            Err("evidence missing: wipe_certificate_id".into())
        );
        let mut named = r.clone();
        named.signers = vec!["Tina".into()];
        assert!(
            validate(&named, &signature("Tom"), &[])
                .unwrap_err()
                .contains("may not sign")
        );
    }
}
