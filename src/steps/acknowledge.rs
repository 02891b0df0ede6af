//! `acknowledge`: the hire reads a policy document and accepts that exact text, item by item if
//! the playbook lists items. It waits like a sign-off; the `signed_off` record names the version
//! and the SHA-256 of the text accepted, how it was given (terminal, link, in person with a
//! witness) and by whom. A step that `needs` it waits until it is given (e.g. VPN access only
//! after the acceptable-use policy is accepted).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::email::spec::Policies;
use super::human;
use super::{Check, Ctx, Kind, StepError, StepResult};
use crate::journal::{NotifyParams, PolicyRef, SignOffRequest};
use crate::load::Step;
use crate::model::Tpl;
use crate::plan::{Outputs, PlannedStep, Renderer};

/// The hire reads a policy document and accepts that exact text.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledge {
    /// The policy document: a Markdown file in the templates folder and its version, as in
    /// `email`. The text accepted is recorded by its SHA-256.
    pub policies: Policies,
    /// What the hire confirms, item by item (templates), e.g. "I will not share my password".
    /// Default: one item, "I have read FILE version VERSION and I accept it".
    #[serde(default)]
    pub items: Vec<Tpl>,
    /// Email the hire a link to read and accept on the web, once, when the step starts waiting.
    pub notify: Option<human::Notify>,
}

/// The rendered parameters of an `acknowledge` step.
#[derive(Debug, Clone, Serialize)]
pub struct AcknowledgeParams {
    pub policy: PolicyRef,
    pub items: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifyParams>,
    /// The text to accept (shown at the prompt; the plan carries its hash).
    #[serde(skip)]
    pub text: String,
}

impl Kind for Acknowledge {
    type Params = AcknowledgeParams;
    const OUTPUTS: &'static [&'static str] = &[
        "signed_by",
        "signed_at",
        "policy_file",
        "policy_version",
        "policy_sha256",
    ];
    const AUTOMATED: bool = false;

    fn render(&self, r: &mut Renderer<'_>, _: &Step, _: &Outputs) -> Option<AcknowledgeParams> {
        // A file that could not be read was reported when the playbook was loaded.
        let Some(doc) = r.pb.policies.get(&self.policies.file.value) else {
            r.failed = true;
            return None;
        };
        let (file, version) = (&self.policies.file.value, &self.policies.version.value);
        let mut items: Vec<String> = self.items.iter().map(|i| r.line(i, "an item")).collect();
        if items.is_empty() {
            items.push(crate::policy::default_item(file, version));
        }
        Some(AcknowledgeParams {
            policy: PolicyRef {
                file: file.clone(),
                version: version.clone(),
                sha256: doc.sha256.clone(),
            },
            items,
            notify: self.notify.as_ref().map(|n| human::render_notify(r, n)),
            text: doc.text.clone(),
        })
    }

    fn describe(p: &AcknowledgeParams) -> String {
        format!(
            "wait for the hire to accept {} version {}",
            p.policy.file, p.policy.version
        )
    }

    fn fields(p: &AcknowledgeParams) -> Vec<(String, String)> {
        let mut out = vec![(
            "policies".to_owned(),
            format!(
                "{} version {} (sha256 {})",
                p.policy.file, p.policy.version, p.policy.sha256
            ),
        )];
        if let Some(n) = &p.notify {
            out.push(("link emailed to".to_owned(), n.to.clone()));
        }
        out.extend(p.items.iter().map(|i| ("item".to_owned(), i.clone())));
        out
    }

    fn check(step: &PlannedStep, p: &AcknowledgeParams, ctx: &mut Ctx<'_>) -> StepResult<Check> {
        // The text shown must be the text published under this version (the run publishes
        // the playbook's versions before its first step; this holds for any other way in).
        let published = ctx
            .store
            .policies()
            .map_err(|e| StepError::new(format!("cannot read the published policies: {e}")))?;
        if let Some(kept) = published
            .iter()
            .find(|k| k.file == p.policy.file && k.version == p.policy.version)
        {
            crate::policy::compare(kept, &p.policy.sha256, &published)
                .map_err(|c| StepError::new(c.message).hint(c.hint).nothing_done())?;
        }
        // The same text accepted elsewhere in this hire's journal (a campaign's request) is
        // this step's acceptance too: the person is not asked twice.
        if let Some((id, out)) = ctx.outputs.iter().find(|(_, out)| {
            [
                ("policy_file", &p.policy.file),
                ("policy_version", &p.policy.version),
                ("policy_sha256", &p.policy.sha256),
            ]
            .iter()
            .all(|(k, v)| out.get(*k) == Some(*v))
        }) {
            return Ok(Check::Holds {
                outputs: out.clone(),
                note: Some(super::Note::Info(format!("accepted in {id}"))),
            });
        }
        let (reason, request) = Self::asks(step, p).expect("an acknowledgement asks");
        Ok(human::waiting(request, reason))
    }

    fn asks(step: &PlannedStep, p: &AcknowledgeParams) -> Option<(String, SignOffRequest)> {
        let reason = format!(
            "accept {} version {} ({} item{})",
            p.policy.file,
            p.policy.version,
            p.items.len(),
            if p.items.len() == 1 { "" } else { "s" }
        );
        Some((reason, request(step, p)))
    }
}

/// What the hire is asked to accept.
pub fn request(step: &PlannedStep, p: &AcknowledgeParams) -> SignOffRequest {
    SignOffRequest {
        role: "hire".into(),
        items: p.items.clone(),
        notify: p.notify.clone(),
        policy: Some(p.policy.clone()),
        checksum: step.checksum.clone(),
        ..SignOffRequest::default()
    }
}
