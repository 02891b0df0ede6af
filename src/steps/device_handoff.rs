//! `device_handoff`: a device is handed to the hire, who acknowledges receipt. Refused unless
//! the named cleaning sign-off is done for the same asset tag and serial.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::human::{self, Asset, AssetParams};
use super::sign_off::SignOff;
use super::{Check, Ctx, Kind, Named, StepError, StepRef, StepResult};
use crate::journal::{NotifyParams, SignOffRequest};
use crate::load::Step;
use crate::model::Tpl;
use crate::plan::{Outputs, PlannedStep, Renderer};
use crate::yaml::Spanned;

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
    /// Email the hire a link to acknowledge on the web, once, when the step starts waiting.
    pub notify: Option<human::Notify>,
}

/// The rendered parameters of a `device_handoff` step.
#[derive(Debug, Clone, Serialize)]
pub struct HandoffParams {
    pub asset: AssetParams,
    pub cleaning: String,
    pub condition: Option<String>,
    pub accessories: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyParams>,
}

impl Kind for DeviceHandoff {
    type Params = HandoffParams;
    /// `received_by` once the hire acknowledges.
    const OUTPUTS: &'static [&'static str] = &["asset_tag", "serial", "received_by"];
    const AUTOMATED: bool = false;

    fn names_step(&self) -> Option<StepRef> {
        Some(StepRef {
            key: "cleaning",
            step: self.cleaning.clone(),
            kind: SignOff::NAME,
            article: "a",
            hint: "name the step where the technician signs off the cleaning",
        })
    }

    fn render(&self, r: &mut Renderer<'_>, _: &Step, _: &Outputs) -> Option<HandoffParams> {
        Some(HandoffParams {
            asset: human::render_asset(r, &self.asset),
            cleaning: self.cleaning.value.clone(),
            condition: self.condition.as_ref().map(|c| r.line(c, "`condition`")),
            accessories: self
                .accessories
                .iter()
                .map(|a| r.line(a, "an accessory"))
                .collect(),
            notify: self.notify.as_ref().map(|n| human::render_notify(r, n)),
        })
    }

    fn outputs(p: &HandoffParams, known: &mut BTreeMap<String, String>, later: &mut Vec<String>) {
        let [tag, serial, received_by] = Self::OUTPUTS else {
            unreachable!("three outputs")
        };
        known.insert(tag.to_string(), p.asset.tag.clone());
        known.insert(serial.to_string(), p.asset.serial.clone());
        later.push(received_by.to_string());
    }

    fn describe(p: &HandoffParams) -> String {
        format!(
            "hand over asset {} (serial {}) once `{}` is signed off; the hire acknowledges receipt",
            p.asset.tag, p.asset.serial, p.cleaning
        )
    }

    fn fields(p: &HandoffParams) -> Vec<(String, String)> {
        let model = p
            .asset
            .model
            .as_deref()
            .map(|m| format!(", {m}"))
            .unwrap_or_default();
        let mut out = vec![(
            "asset".to_owned(),
            format!("{} (serial {}{model})", p.asset.tag, p.asset.serial),
        )];
        if let Some(c) = &p.condition {
            out.push(("condition".to_owned(), c.clone()));
        }
        if !p.accessories.is_empty() {
            out.push(("accessories".to_owned(), p.accessories.join(", ")));
        }
        if let Some(n) = &p.notify {
            out.push(("link emailed to".to_owned(), n.to.clone()));
        }
        out
    }

    fn check(step: &PlannedStep, p: &HandoffParams, ctx: &mut Ctx<'_>) -> StepResult<Check> {
        let (asset, cleaning) = (&p.asset, &p.cleaning);
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
        let (reason, request) = Self::asks(step, p).expect("a hand-off asks");
        Ok(human::waiting(request, reason))
    }

    fn asks(step: &PlannedStep, p: &HandoffParams) -> Option<(String, SignOffRequest)> {
        let reason = format!(
            "acknowledge receipt of asset {} (serial {})",
            p.asset.tag, p.asset.serial
        );
        Some((reason, request(step, p)))
    }
}

/// What the hire is asked to acknowledge.
fn request(step: &PlannedStep, p: &HandoffParams) -> SignOffRequest {
    let HandoffParams {
        asset,
        cleaning,
        condition,
        accessories,
        notify,
    } = p;
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
    SignOffRequest {
        role: "hire".into(),
        items,
        evidence: Vec::new(),
        not_operator: false,
        signers: Vec::new(),
        asset: details,
        cleaning: Some(cleaning.clone()),
        notify: notify.clone(),
        policy: None,
        campaign: false,
        checksum: step.checksum.clone(),
    }
}
