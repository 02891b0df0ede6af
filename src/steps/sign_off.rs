//! `sign_off`: a person signs that a checklist was done (e.g. the laptop was cleaned). It waits
//! until someone signs, at the run's prompt or with `onboard sign-off`; what was signed, by
//! whom and when is a `signed_off` journal record.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::human::{self, Asset, AssetParams};
use super::{Check, Ctx, Kind, StepResult};
use crate::diag::Diagnostic;
use crate::journal::{NotifyParams, SignOffRequest};
use crate::load::Step;
use crate::model::Tpl;
use crate::plan::{Outputs, PlannedStep, Renderer};
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
    /// Email the signer a link to sign on the web, once, when the step starts waiting.
    pub notify: Option<human::Notify>,
}

/// The rendered parameters of a `sign_off` step.
#[derive(Debug, Clone, Serialize)]
pub struct SignOffParams {
    pub role: String,
    pub items: Vec<String>,
    pub evidence: Vec<String>,
    pub asset: Option<AssetParams>,
    pub not_operator: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyParams>,
}

/// A technician's one-item sign-off, for tests.
#[cfg(test)]
impl SignOffParams {
    pub fn sample() -> SignOffParams {
        SignOffParams {
            role: "technician".into(),
            items: vec!["wiped".into()],
            evidence: vec![],
            asset: None,
            not_operator: false,
            signers: vec![],
            notify: None,
        }
    }
}

impl Kind for SignOff {
    type Params = SignOffParams;
    const OUTPUTS: &'static [&'static str] = &["signed_by", "signed_at"];
    const AUTOMATED: bool = false;

    fn render(&self, r: &mut Renderer<'_>, _: &Step, _: &Outputs) -> Option<SignOffParams> {
        if self.items.is_empty() {
            r.fail(
                Diagnostic::new("`items` is empty")
                    .at(self.role.span)
                    .hint("list what the signer confirms"),
            );
        }
        Some(SignOffParams {
            role: self.role.value.clone(),
            items: self.items.iter().map(|i| r.line(i, "an item")).collect(),
            evidence: self.evidence.iter().map(|e| e.value.clone()).collect(),
            asset: self.asset.as_ref().map(|a| human::render_asset(r, a)),
            not_operator: self.not_operator,
            signers: self.signers.iter().map(|n| n.value.clone()).collect(),
            notify: self.notify.as_ref().map(|n| human::render_notify(r, n)),
        })
    }

    fn describe(p: &SignOffParams) -> String {
        let about = p
            .asset
            .as_ref()
            .map(|a| format!(" for asset {} (serial {})", a.tag, a.serial))
            .unwrap_or_default();
        format!(
            "wait for the {} to sign off {} item{}{about}",
            p.role,
            p.items.len(),
            if p.items.len() == 1 { "" } else { "s" }
        )
    }

    fn fields(p: &SignOffParams) -> Vec<(String, String)> {
        let mut out = vec![("signer".to_owned(), p.role.clone())];
        if p.not_operator {
            out.push((
                "dual control".to_owned(),
                "the signer must not be the operator".to_owned(),
            ));
        }
        if !p.signers.is_empty() {
            out.push(("may sign".to_owned(), p.signers.join(", ")));
        }
        if let Some(n) = &p.notify {
            out.push(("link emailed to".to_owned(), n.to.clone()));
        }
        if let Some(a) = &p.asset {
            out.push((
                "asset".to_owned(),
                format!("{} (serial {})", a.tag, a.serial),
            ));
        }
        out.extend(p.items.iter().map(|i| ("item".to_owned(), i.clone())));
        out.extend(
            p.evidence
                .iter()
                .map(|e| ("evidence".to_owned(), e.clone())),
        );
        out
    }

    fn check(step: &PlannedStep, p: &SignOffParams, _: &mut Ctx<'_>) -> StepResult<Check> {
        let (reason, request) = Self::asks(step, p).expect("a sign-off asks");
        Ok(human::waiting(request, reason))
    }

    fn asks(step: &PlannedStep, p: &SignOffParams) -> Option<(String, SignOffRequest)> {
        let request = request(step, p);
        let n = request.items.len();
        let reason = format!("{n} item{} to confirm", if n == 1 { "" } else { "s" });
        Some((reason, request))
    }
}

/// What the signer is asked to sign.
fn request(step: &PlannedStep, p: &SignOffParams) -> SignOffRequest {
    SignOffRequest {
        role: p.role.clone(),
        items: p.items.clone(),
        evidence: p.evidence.clone(),
        not_operator: p.not_operator,
        signers: p.signers.clone(),
        notify: p.notify.clone(),
        asset: p
            .asset
            .iter()
            .flat_map(|a| {
                [
                    ("asset_tag", Some(&a.tag)),
                    ("serial", Some(&a.serial)),
                    ("model", a.model.as_ref()),
                ]
            })
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.clone())))
            .collect::<BTreeMap<_, _>>(),
        cleaning: None,
        policy: None,
        campaign: false,
        checksum: step.checksum.clone(),
    }
}
