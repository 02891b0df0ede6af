//! The plan: every step's parameters rendered, checked, and what the step would do.
//!
//! Planning is pure: it takes a loaded playbook, the hire and the outputs of steps that have
//! already run (from the journal), and renders. Outputs that only exist after a step runs
//! (an allocated uidNumber, a Message-ID) render as a visible placeholder. The dry run and
//! `onboard plan` show this plan; a run executes it. `check` runs it to find template errors.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use tera::Context;

use crate::diag::{Diagnostic, Diagnostics};
use crate::load::{Playbook, Step};
use crate::model::{HIRE_FIELDS, Hire, Tpl};
pub use crate::steps::Params;

/// Version tag of the `--json` plan format.
pub const PLAN_FORMAT: &str = "onboard.plan/1";

/// Outputs of steps that have run, by step id then output name.
pub type Outputs = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Debug, Serialize)]
pub struct Plan {
    pub format: &'static str,
    pub playbook: String,
    pub hire: String,
    /// True when no hire was given and placeholders stand in for hire data.
    pub sample_hire: bool,
    pub steps: Vec<PlannedStep>,
}

#[derive(Debug, Serialize)]
pub struct PlannedStep {
    pub id: String,
    pub title: String,
    pub kind: &'static str,
    pub needs: Vec<String>,
    /// What the step would do, in one line.
    pub action: String,
    pub params: Params,
    /// SHA-256 of the rendered parameters; a step whose parameters change after it ran is
    /// noticed by comparing this.
    pub checksum: String,
    /// Outputs the step makes that are not known until it runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub known_after_run: Vec<String>,
    /// In a dry run: what checking the targets and the journal found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now: Option<Now>,
    /// When it must be done (RFC 3339), from its `deadline` and the hire's start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
}

/// What a dry run found for a step.
#[derive(Debug, Clone, Serialize)]
pub struct Now {
    pub state: NowState,
    /// The changes a run would make.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A step's state in a dry run (`now.state` in the plan's JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NowState {
    /// A run would make `changes`.
    WouldDo,
    /// Already so (`detail`: drift, or a note).
    AlreadyDone,
    /// Done by this run (only in a real run's report, never in a dry run).
    Done,
    /// Waiting on a person (`detail` says whom and why).
    Waiting,
    /// Not attempted: a step it needs is not done.
    Skipped,
    Failed,
    /// An interrupted send: the operator decides.
    Uncertain,
}

impl NowState {
    pub fn as_str(self) -> &'static str {
        match self {
            NowState::WouldDo => "would_do",
            NowState::AlreadyDone => "already_done",
            NowState::Done => "done",
            NowState::Waiting => "waiting",
            NowState::Skipped => "skipped",
            NowState::Failed => "failed",
            NowState::Uncertain => "uncertain",
        }
    }
}

/// Loads and plans: every problem of the playbook, structural or in templates, in one pass.
pub fn load_and_plan(
    req: &crate::load::Request,
    sources: &mut crate::diag::SourceMap,
    outputs: &Outputs,
) -> Result<(Playbook, Plan), Diagnostics> {
    let (pb, mut diags) = crate::load::load(req, sources);
    let Some(pb) = pb else {
        return Err(diags);
    };
    match plan(&pb, outputs) {
        Ok(plan) if diags.is_empty() => Ok((pb, plan)),
        Ok(_) => Err(diags),
        Err(more) => {
            for d in more.0 {
                diags.push(d);
            }
            Err(diags)
        }
    }
}

/// Plans every step for `hire` (or a placeholder hire when the playbook has none).
pub fn plan(pb: &Playbook, outputs: &Outputs) -> Result<Plan, Diagnostics> {
    let mut diags = Diagnostics::default();
    let hire_id = match &pb.hire {
        Some(h) => h.id.as_ref().map(|i| i.value.clone()).unwrap_or_default(),
        None => "(sample)".to_owned(),
    };
    let mut ctx = context(pb, &mut diags);

    let start = pb.hire.as_ref().and_then(crate::deadline::start);
    let mut steps = Vec::new();
    let mut planned_outputs: Outputs = outputs.clone();
    let mut ancestors = Ancestors::default();
    for step in &pb.steps {
        // A step sees the outputs of the steps it needs, directly or not.
        let visible = ancestors.of(step);
        let step_outputs: BTreeMap<&String, &BTreeMap<String, String>> = planned_outputs
            .iter()
            .filter(|(id, _)| visible.contains(id.as_str()))
            .collect();
        ctx.insert("steps", &step_outputs);
        let mut r = Renderer {
            pb,
            ctx: &ctx,
            diags: &mut diags,
            failed: false,
        };
        let params = step.kind.render(&mut r, step, &planned_outputs);
        let failed = r.failed;
        let Some(params) = params.filter(|_| !failed) else {
            let stand_ins = step
                .kind
                .output_names()
                .iter()
                .map(|o| (o.to_string(), format!("<{o} of {} failed>", step.id.value)))
                .collect();
            planned_outputs.insert(step.id.value.clone(), stand_ins);
            continue;
        };
        let (own, later) = step_outputs_of(step, &params, outputs.get(&step.id.value));
        planned_outputs.insert(step.id.value.clone(), own);
        steps.push(PlannedStep {
            id: step.id.value.clone(),
            title: step.title.clone(),
            kind: step.kind.name(),
            needs: step.needs.clone(),
            action: params.describe(),
            checksum: checksum(&params),
            params,
            known_after_run: later,
            now: None,
            deadline: step
                .deadline
                .zip(start.as_ref())
                .map(|(d, start)| d.at(start).to_string()),
        });
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(Plan {
        format: PLAN_FORMAT,
        playbook: pb.name.clone(),
        hire: hire_id,
        sample_hire: pb.hire.is_none(),
        steps,
    })
}

/// The template context every step starts from: `hire` and the rendered `vars`.
pub fn context(pb: &Playbook, diags: &mut Diagnostics) -> Context {
    let hire_value = match &pb.hire {
        Some(h) => hire_context(h),
        None => sample_hire(&pb.required),
    };
    let mut ctx = Context::new();
    ctx.insert("hire", &hire_value);
    let mut vars = serde_json::Map::new();
    for (name, tpl) in &pb.vars {
        ctx.insert("vars", &vars);
        match pb.templates.render_inline(tpl, &ctx) {
            Ok(v) => {
                vars.insert(name.value.clone(), Value::String(v));
            }
            Err(d) => {
                diags.push(d);
                // Stand in for the broken var so its users do not fail as well.
                let stand_in = format!("<vars.{} failed>", name.value);
                vars.insert(name.value.clone(), Value::String(stand_in));
            }
        }
    }
    ctx.insert("vars", &vars);
    ctx
}

/// SHA-256 of the canonical JSON of the parameters.
pub fn checksum(params: &Params) -> String {
    let json = serde_json::to_vec(params).expect("params serialize");
    crate::digest::sha256(&json)
}

/// The hire as templates see it: `hire.FIELD`, `hire.custom.NAME`.
pub fn hire_context(hire: &Hire) -> Value {
    let mut map = serde_json::Map::new();
    for name in HIRE_FIELDS {
        if let Some(v) = hire.field(name) {
            map.insert((*name).to_owned(), Value::String(v.value.clone()));
        }
    }
    let custom: serde_json::Map<String, Value> = hire
        .custom
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.value.clone())))
        .collect();
    map.insert("custom".into(), Value::Object(custom));
    Value::Object(map)
}

/// Placeholders for every standard field and the required custom ones.
fn sample_hire(required: &[String]) -> Value {
    let mut map = serde_json::Map::new();
    for name in HIRE_FIELDS {
        let sample = match *name {
            "start_date" | "end_date" => "2000-01-01".to_owned(),
            "start_time" => "09:00".to_owned(),
            "time_zone" => "UTC".to_owned(),
            n if n.ends_with("email") => format!("{n}@example.org"),
            n => format!("<{n}>"),
        };
        map.insert((*name).to_owned(), Value::String(sample));
    }
    let custom: serde_json::Map<String, Value> = required
        .iter()
        .filter_map(|f| f.strip_prefix("custom."))
        .map(|c| (c.to_owned(), Value::String(format!("<custom.{c}>"))))
        .collect();
    map.insert("custom".into(), Value::Object(custom));
    Value::Object(map)
}

/// Ids of every step `step` needs, directly or transitively.
/// The steps each step needs, directly or not, built up in dependency order: a step's
/// ancestors are its needs and theirs, already known when it comes (no graph walk per step).
#[derive(Default)]
struct Ancestors<'a> {
    of: HashMap<&'a str, std::rc::Rc<HashSet<&'a str>>>,
}

impl<'a> Ancestors<'a> {
    fn of(&mut self, step: &'a Step) -> std::rc::Rc<HashSet<&'a str>> {
        let mut set: HashSet<&'a str> = HashSet::new();
        for need in &step.needs {
            set.insert(need.as_str());
            if let Some(theirs) = self.of.get(need.as_str()) {
                set.extend(theirs.iter().copied());
            }
        }
        let set = std::rc::Rc::new(set);
        self.of.insert(step.id.value.as_str(), set.clone());
        set
    }
}

/// A placeholder for an output not known before the step runs.
pub fn placeholder(step: &str, output: &str) -> String {
    format!("<{output} of {step}: known after it runs>")
}

/// The outputs a step makes (known ones now, and the names of those known after it runs).
fn step_outputs_of(
    step: &Step,
    params: &Params,
    recorded: Option<&BTreeMap<String, String>>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let id = &step.id.value;
    let mut known = BTreeMap::new();
    let mut later: Vec<String> = Vec::new();
    params.outputs(&mut known, &mut later);
    // Outputs are declared once (`Kind::OUTPUTS`); what a kind makes must be among them.
    debug_assert!(
        known
            .keys()
            .chain(&later)
            .all(|n| step.kind.output_names().contains(&n.as_str())),
        "step kind {} makes an undeclared output",
        step.kind.name()
    );
    for name in &later {
        let value = recorded
            .and_then(|r| r.get(name))
            .cloned()
            .unwrap_or_else(|| placeholder(id, name));
        known.insert(name.clone(), value);
    }
    let later = later
        .into_iter()
        .filter(|n| recorded.is_none_or(|r| !r.contains_key(n)))
        .collect();
    (known, later)
}

/// Renders a step's parameters, collecting every problem (each step kind's `render` uses it).
pub struct Renderer<'a> {
    pub(crate) pb: &'a Playbook,
    pub(crate) ctx: &'a Context,
    pub(crate) diags: &'a mut Diagnostics,
    pub(crate) failed: bool,
}

impl Renderer<'_> {
    pub(crate) fn render(&mut self, tpl: &Tpl) -> String {
        match self.pb.templates.render_inline(tpl, self.ctx) {
            Ok(s) => s,
            Err(d) => {
                self.fail(d);
                String::new()
            }
        }
    }

    /// Renders a value that must be a single line (headers, attribute values, DNs).
    pub(crate) fn line(&mut self, tpl: &Tpl, what: &str) -> String {
        let s = self.render(tpl);
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            self.fail(
                Diagnostic::new(format!(
                    "{what} renders to text with the control character U+{:04X}",
                    c as u32
                ))
                .at(tpl.span)
                .hint("line breaks and control characters are not allowed here"),
            );
        }
        s
    }

    pub(crate) fn fail(&mut self, d: Diagnostic) {
        self.failed = true;
        self.diags.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_change_with_parameters() {
        let a = Params::SignOff(crate::steps::sign_off::SignOffParams::sample());
        let mut b = a.clone();
        if let Params::SignOff(p) = &mut b {
            p.items.push("charger present".into());
        }
        assert_eq!(checksum(&a), checksum(&a.clone()));
        assert_ne!(checksum(&a), checksum(&b));
    }
}
