//! Loading a playbook: read the files, compose checklist, playbook and hire file, and check
//! everything that does not need rendering (keys, types, hire data, step graph).
//!
//! Problems are collected, not thrown: [`load`] returns every diagnostic it found. Rendering
//! (and so undefined template variables) is checked by the planner, which `check` also runs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics, FileId, SourceMap, Span, suggest};
use crate::files;
use crate::model::{
    DeviceHandoff, Email, FORMAT_VERSION, HIRE_FIELDS, Hire, LdapAccount, LdapGroups, PlaybookFile,
    STEP_KINDS, SignOff, StepDoc, Tpl,
};
use crate::template::Templates;
use crate::yaml::{self, Recorder, Spanned};

/// What to load.
#[derive(Debug, Clone)]
pub struct Request {
    /// The playbook: a self-contained one, a checklist, or a hire file naming a checklist.
    pub playbook: PathBuf,
    /// A hire file whose `hire` (and `vars`) replace the playbook's.
    pub hire: Option<PathBuf>,
}

/// A playbook ready to plan: composed, checked, steps in dependency order.
#[derive(Clone)]
pub struct Playbook {
    pub name: String,
    /// The file holding the steps.
    pub checklist: PathBuf,
    pub templates_dir: PathBuf,
    /// `None` when only a checklist was given (fine for `check`, not for a run).
    pub hire: Option<Hire>,
    /// Required hire fields (standard names or `custom.NAME`).
    pub required: Vec<String>,
    pub vars: Vec<(Spanned<String>, Tpl)>,
    /// In dependency order: every step comes after the steps it needs.
    pub steps: Vec<Step>,
    pub templates: Templates,
    /// Policy documents by file name.
    pub policies: BTreeMap<String, PolicyDoc>,
    /// Where the playbook says no hire was given, for the "no hire" error.
    pub root_file: FileId,
    /// CSV column headings → hire fields, for `--hires FILE`.
    pub hire_columns: Vec<(String, Spanned<String>)>,
    /// The message sent once when the hire becomes at risk (`notify.at_risk`).
    pub at_risk: Option<Email>,
}

/// The most steps a checklist may have.
pub const MAX_STEPS: usize = 1000;
/// The most vars one file may declare.
pub const MAX_VARS: usize = 500;

/// The id of the synthetic step that says everything is ready.
pub const NOTIFY_READY: &str = "notify-ready";
/// The id under which the at-risk message is journaled.
pub const NOTIFY_AT_RISK: &str = "notify-at-risk";

fn notify_email(n: &crate::model::Notify, m: &crate::model::NotifyMessage) -> Email {
    Email {
        from: n.from.clone(),
        to: n.to.clone(),
        cc: n.cc.clone(),
        reply_to: n.reply_to.clone(),
        subject: m.subject.clone(),
        html: m.html.clone(),
        text: m.text.clone(),
        policies: None,
    }
}

#[derive(Clone)]
pub struct Step {
    pub id: Spanned<String>,
    pub title: String,
    /// Direct dependencies, including the implicit ones (`account:`, `cleaning:`).
    pub needs: Vec<String>,
    pub kind: StepKind,
    /// When it must be done, relative to the start.
    pub deadline: Option<crate::deadline::Deadline>,
}

#[derive(Clone)]
pub enum StepKind {
    LdapAccount(LdapAccount),
    LdapGroups(LdapGroups),
    DeviceHandoff(DeviceHandoff),
    SignOff(SignOff),
    Email(Email),
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::LdapAccount(_) => "ldap_account",
            StepKind::LdapGroups(_) => "ldap_groups",
            StepKind::DeviceHandoff(_) => "device_handoff",
            StepKind::SignOff(_) => "sign_off",
            StepKind::Email(_) => "email",
        }
    }
}

/// A policy document as sent: its text and the SHA-256 an auditor can compare.
#[derive(Clone)]
pub struct PolicyDoc {
    pub text: String,
    pub sha256: String,
}

/// Loads and checks a playbook, returning every problem found. The playbook is returned
/// whenever its structure allows, even with problems, so that planning can find more of them
/// (template errors) in the same pass; it must not be run unless the diagnostics are empty.
pub fn load(req: &Request, sources: &mut SourceMap) -> (Option<Playbook>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let playbook = Loader {
        sources,
        diags: &mut diags,
    }
    .load(req);
    (playbook, diags)
}

struct Loader<'a> {
    sources: &'a mut SourceMap,
    diags: &'a mut Diagnostics,
}

/// A file read and deserialized.
struct Layer {
    file: FileId,
    path: PathBuf,
    doc: PlaybookFile,
    node: yaml::Node,
}

impl Loader<'_> {
    fn load(&mut self, req: &Request) -> Option<Playbook> {
        let root = self.read_layer(&req.playbook, None)?;
        let checklist = match &root.doc.checklist {
            Some(rel) => {
                if let Some(steps) = &root.doc.steps {
                    self.diags.push(
                        Diagnostic::new("a playbook has either `steps` or `checklist`, not both")
                            .at(steps.span)
                            .note(rel.span, "`checklist` given")
                            .hint("remove `steps` to use the checklist, or `checklist` to use these steps"),
                    );
                }
                let path = relative_to(&root.path, rel);
                let layer = self.read_layer(&path, Some(rel.span))?;
                if let Some(nested) = &layer.doc.checklist {
                    self.diags.push(
                        Diagnostic::new("a checklist cannot itself name a checklist")
                            .at(nested.span)
                            .hint("copy the steps into one checklist file"),
                    );
                }
                // A hire file is HR's: hire data and vars only. Where templates come from and
                // which fields and messages there are is the checklist's (IT's) to say.
                self.only_hire_data(&root, "a hire file (one with `checklist:`)");
                if layer.doc.steps.is_none() {
                    self.diags.push(
                        Diagnostic::new(format!(
                            "`{}` has no `steps`, so it is not a checklist",
                            path.display()
                        ))
                        .at(rel.span),
                    );
                    return None;
                }
                Some(layer)
            }
            None => None,
        };
        let hire_layer = match &req.hire {
            Some(path) => {
                let layer = self.read_layer(path, None)?;
                for (key, span) in [
                    ("steps", layer.doc.steps.as_ref().map(|s| s.span)),
                    ("checklist", layer.doc.checklist.as_ref().map(|s| s.span)),
                ] {
                    if let Some(span) = span {
                        self.diags.push(
                            Diagnostic::new(format!("a --hire file cannot have `{key}`"))
                                .at(span)
                                .hint("a --hire file gives `hire` and optionally `vars`"),
                        );
                    }
                }
                self.only_hire_data(&layer, "a --hire file");
                Some(layer)
            }
            None => None,
        };
        let steps_layer = checklist.as_ref().unwrap_or(&root);
        let Some(steps) = &steps_layer.doc.steps else {
            self.diags.push(
                Diagnostic::new(format!("`{}` has no `steps`", root.path.display()))
                    .at(Span {
                        file: root.file,
                        line: 1,
                        col: 1,
                        len: 1,
                    })
                    .hint("add `steps:`, or name a checklist with `checklist: FILE`"),
            );
            return None;
        };

        // Hire: the --hire file's, else the playbook's own. A checklist's sample hire is only
        // used when the checklist itself is the playbook.
        let hire_from = match &hire_layer {
            Some(l) if l.doc.hire.is_some() => l,
            _ => &root,
        };
        let hire = hire_from.doc.hire.as_ref().and_then(|h| h.0.as_ref());

        let required = self.required_fields(steps_layer);
        self.hire_columns(steps_layer);
        if let Some(hire) = hire {
            let key = key_span(&hire_from.node, "hire").unwrap_or(hire.span);
            check_hire(hire, key, &required, self.diags);
        }

        // Budgets: far beyond any real checklist, and they keep planning (which renders every
        // var against all earlier ones, and every step against its ancestors) fast.
        for layer in [checklist.as_ref(), Some(&root), hire_layer.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some((name, _)) = layer.doc.vars.0.get(MAX_VARS) {
                self.diags.push(
                    Diagnostic::new(format!("more than {MAX_VARS} vars"))
                        .at(name.span)
                        .hint("vars are for derived values such as a login; keep data in the hire"),
                );
                return None;
            }
        }
        if let Some(step) = steps.value.get(MAX_STEPS) {
            let span = step.0.as_ref().map_or(steps.span, |s| s.span);
            self.diags.push(
                Diagnostic::new(format!("more than {MAX_STEPS} steps"))
                    .at(span)
                    .hint("split the checklist: one per kind of hire"),
            );
            return None;
        }
        let mut vars: Vec<(Spanned<String>, Tpl)> = Vec::new();
        let layers = [checklist.as_ref(), Some(&root), hire_layer.as_ref()];
        for layer in layers.into_iter().flatten() {
            for (name, value) in &layer.doc.vars.0 {
                if !is_identifier(name) {
                    self.diags.push(
                        Diagnostic::new(format!("`{}` is not a valid var name", name.value))
                            .at(name.span)
                            .hint("use letters, digits and `_`, starting with a letter"),
                    );
                }
                let Some(value) = &value.0 else { continue };
                match vars.iter_mut().find(|(n, _)| n.value == name.value) {
                    Some(existing) => existing.1 = value.clone(),
                    None => vars.push((name.clone(), value.clone())),
                }
            }
        }

        // Only the checklist says where templates come from, never a hire file.
        let templates_dir = match &steps_layer.doc.templates {
            Some(t) => relative_to(&steps_layer.path, t),
            None => normalize(&parent(&steps_layer.path).join("../templates")),
        };

        // Steps that failed to load still count as existing, so that steps naming them do
        // not get a second, misleading error.
        let broken: HashSet<String> = match steps_layer.node.get("steps").map(|n| &n.kind) {
            Some(yaml::NodeKind::Seq(items)) => items
                .iter()
                .zip(&steps.value)
                .filter(|(_, doc)| doc.0.is_none())
                .filter_map(|(item, _)| item.get("id")?.as_str().map(str::to_owned))
                .collect(),
            _ => HashSet::new(),
        };
        let mut steps = self.steps(steps, &broken);
        let notify = steps_layer
            .doc
            .notify
            .as_ref()
            .and_then(|n| n.0.as_ref())
            .map(|n| n.value.clone());
        if let Some(ready) = notify.as_ref().and_then(|n| Some((n, n.ready.as_ref()?))) {
            // "Everything is ready" is the last step: it needs all the others.
            steps.push(Step {
                id: Spanned {
                    value: NOTIFY_READY.to_owned(),
                    span: ready.1.subject.span,
                    verbatim: false,
                },
                title: "Tell the manager everything is ready".to_owned(),
                needs: steps.iter().map(|s| s.id.value.clone()).collect(),
                kind: StepKind::Email(notify_email(ready.0, ready.1)),
                deadline: None,
            });
        }
        let mut templates = Templates::new();
        let mut policies = BTreeMap::new();
        let at_risk = notify
            .as_ref()
            .and_then(|n| Some(notify_email(n, n.at_risk.as_ref()?)));
        for email in steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Email(e) => Some(e),
                _ => None,
            })
            .chain(at_risk.as_ref())
        {
            self.email_files(email, &templates_dir, &mut templates, &mut policies);
        }

        let name = steps_layer
            .doc
            .name
            .clone()
            .unwrap_or_else(|| file_stem(&steps_layer.path));
        Some(Playbook {
            name,
            checklist: steps_layer.path.clone(),
            templates_dir,
            hire: hire.map(|h| h.value.clone()),
            required,
            vars,
            steps,
            templates,
            policies,
            root_file: root.file,
            at_risk,
            hire_columns: steps_layer
                .doc
                .hire_columns
                .0
                .iter()
                .map(|(k, v)| (k.value.clone(), v.clone()))
                .collect(),
        })
    }

    /// Reads and deserializes one file. `from` is where another file named it.
    fn read_layer(&mut self, path: &Path, from: Option<Span>) -> Option<Layer> {
        let text = match files::read_regular(path, files::PLAYBOOK_LIMIT) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => {
                    let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                    let valid = std::str::from_utf8(valid).expect("valid prefix");
                    let line = valid.matches('\n').count() as u32 + 1;
                    let col = valid.rsplit('\n').next().unwrap_or("").chars().count() as u32 + 1;
                    let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    let file = self.sources.add(path, text);
                    self.diags.push(
                        Diagnostic::new(format!("{} is not UTF-8 text", path.display()))
                            .at(Span {
                                file,
                                line,
                                col,
                                len: 1,
                            })
                            .label("invalid byte")
                            .hint("save the file as UTF-8"),
                    );
                    return None;
                }
            },
            Err(e) => {
                // Where another file names it, else the file itself.
                let at = from.unwrap_or_else(|| Span {
                    file: self.sources.add(path, String::new()),
                    line: 1,
                    col: 1,
                    len: 1,
                });
                self.diags.push(
                    Diagnostic::new(format!("cannot read playbook: {e}"))
                        .at(at)
                        .hint("check the path; relative paths in a playbook are relative to that playbook"),
                );
                return None;
            }
        };
        let file = self.sources.add(path, text);
        let mut parse_diags = Vec::new();
        let node = yaml::parse(file, self.sources.text(file), &mut parse_diags);
        for d in parse_diags {
            self.diags.push(d);
        }
        let node = node?;
        if !matches!(node.kind, yaml::NodeKind::Map(_)) {
            self.diags.push(
                Diagnostic::new(format!(
                    "a playbook is a mapping of keys (`hire:`, `steps:` …), found {}",
                    node.describe()
                ))
                .at(node.span),
            );
            return None;
        }
        let rec = Recorder::default();
        let doc = yaml::from_node::<PlaybookFile>(&node, &rec);
        for d in rec.into_inner() {
            self.diags.push(d);
        }
        let doc = match doc {
            Ok(doc) => doc,
            Err(e) => {
                self.diags.push(e.into_diagnostic());
                return None;
            }
        };
        if let Some(v) = &doc.version
            && v.value != FORMAT_VERSION
        {
            self.diags.push(
                Diagnostic::new(format!(
                    "playbook format version {} is not supported by this onboard",
                    v.value
                ))
                .at(v.span)
                .hint(format!("this onboard reads version {FORMAT_VERSION}")),
            );
        }
        Some(Layer {
            file,
            path: path.to_owned(),
            doc,
            node,
        })
    }

    /// Refuses, in a file that only gives a hire, the keys that belong to a checklist.
    fn only_hire_data(&mut self, layer: &Layer, what: &str) {
        for key in ["templates", "hire_fields", "hire_columns", "notify"] {
            if let Some(span) = key_span(&layer.node, key) {
                self.diags.push(
                    Diagnostic::new(format!("{what} cannot set `{key}`"))
                        .at(span)
                        .hint(format!(
                            "a hire file gives `hire` and optionally `vars`; `{key}` belongs \
                             in the checklist"
                        )),
                );
            }
        }
    }

    /// Every `hire_columns` target must be a hire field, or a cohort fails at its first row.
    fn hire_columns(&mut self, layer: &Layer) {
        for (heading, field) in &layer.doc.hire_columns.0 {
            let known = HIRE_FIELDS.contains(&field.value.as_str())
                || field
                    .value
                    .strip_prefix("custom.")
                    .is_some_and(|c| !c.is_empty());
            if !known {
                let hint = match suggest(&field.value, HIRE_FIELDS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "name a standard field (see PLAYBOOK.md) or `custom.NAME`".into(),
                };
                self.diags.push(
                    Diagnostic::new(format!(
                        "column `{}` maps to `{}`, which is not a hire field",
                        heading.value, field.value
                    ))
                    .at(field.span)
                    .hint(hint),
                );
            }
        }
    }

    fn required_fields(&mut self, layer: &Layer) -> Vec<String> {
        let mut required = vec!["id".to_owned()];
        let Some(fields) = &layer.doc.hire_fields else {
            return required;
        };
        for f in &fields.required {
            let known = HIRE_FIELDS.contains(&f.value.as_str())
                || f.value
                    .strip_prefix("custom.")
                    .is_some_and(|c| !c.is_empty());
            if !known {
                let hint = match suggest(&f.value, HIRE_FIELDS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "name a standard field (see PLAYBOOK.md) or `custom.NAME`".into(),
                };
                self.diags.push(
                    Diagnostic::new(format!("unknown hire field `{}`", f.value))
                        .at(f.span)
                        .hint(hint),
                );
            } else if !required.contains(&f.value) {
                required.push(f.value.clone());
            }
        }
        required
    }

    fn steps(
        &mut self,
        steps: &Spanned<Vec<yaml::Recover<Spanned<StepDoc>>>>,
        broken: &HashSet<String>,
    ) -> Vec<Step> {
        let mut out: Vec<Step> = Vec::new();
        let mut refs: Vec<(usize, Spanned<String>, &'static str)> = Vec::new();
        for doc in steps.value.iter().filter_map(|s| s.0.as_ref()) {
            if !is_step_id(&doc.id) {
                self.diags.push(
                    Diagnostic::new(format!("`{}` is not a valid step id", doc.id.value))
                        .at(doc.id.span)
                        .hint("use letters, digits, `_` and `-`, starting with a letter"),
                );
            }
            if let Some(first) = out.iter().find(|s| s.id.value == doc.id.value) {
                self.diags.push(
                    Diagnostic::new(format!("duplicate step id `{}`", doc.id.value))
                        .at(doc.id.span)
                        .note(first.id.span, "first used")
                        .hint("step ids name steps in the journal; each must be unique"),
                );
                continue;
            }
            let Some(kind) = self.step_kind(doc) else {
                continue;
            };
            let index = out.len();
            let mut needs: Vec<String> = Vec::new();
            for n in &doc.needs {
                refs.push((index, n.clone(), "needs"));
                if !needs.contains(&n.value) {
                    needs.push(n.value.clone());
                }
            }
            let implicit = match &kind {
                StepKind::LdapGroups(g) => Some((g.account.clone(), "account")),
                StepKind::DeviceHandoff(h) => Some((h.cleaning.clone(), "cleaning")),
                _ => None,
            };
            if let Some((target, key)) = implicit {
                refs.push((index, target.clone(), key));
                if !needs.contains(&target.value) {
                    needs.push(target.value);
                }
            }
            let deadline = doc.deadline.as_ref().and_then(|d| {
                crate::deadline::parse(&d.value)
                    .map_err(|problem| {
                        self.diags.push(
                            Diagnostic::new(format!("`deadline`: {problem}"))
                                .at(d.span)
                                .hint(crate::deadline::FORMS),
                        );
                    })
                    .ok()
            });
            out.push(Step {
                id: doc.id.clone(),
                title: doc.title.clone().unwrap_or_else(|| doc.id.value.clone()),
                needs,
                kind,
                deadline,
            });
        }

        // References: they must name a step, and the right kind of step.
        let mut bad: HashSet<(usize, String)> = HashSet::new();
        for (index, target, key) in &refs {
            let step = &out[*index];
            let found = out.iter().find(|s| s.id.value == target.value);
            let problem = match (found, *key) {
                (None, _) if broken.contains(&target.value) => {
                    bad.insert((*index, target.value.clone()));
                    None
                }
                (None, _) => {
                    let hint = match suggest(&target.value, out.iter().map(|s| s.id.value.as_str()))
                    {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "steps are: {}",
                            out.iter()
                                .map(|s| format!("`{}`", s.id.value))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    Some((
                        format!("`{key}` names unknown step `{}`", target.value),
                        hint,
                    ))
                }
                (Some(t), _) if t.id.value == step.id.value => Some((
                    format!("step `{}` cannot need itself", step.id.value),
                    "remove it from `needs`".to_owned(),
                )),
                (Some(t), "account") if !matches!(t.kind, StepKind::LdapAccount(_)) => Some((
                    format!(
                        "`account` must name an `ldap_account` step; `{}` is `{}`",
                        t.id.value,
                        t.kind.name()
                    ),
                    "name the step that creates the account".to_owned(),
                )),
                (Some(t), "cleaning") if !matches!(t.kind, StepKind::SignOff(_)) => Some((
                    format!(
                        "`cleaning` must name a `sign_off` step; `{}` is `{}`",
                        t.id.value,
                        t.kind.name()
                    ),
                    "name the step where the technician signs off the cleaning".to_owned(),
                )),
                _ => None,
            };
            if let Some((message, hint)) = problem {
                bad.insert((*index, target.value.clone()));
                self.diags
                    .push(Diagnostic::new(message).at(target.span).hint(hint));
            }
        }
        for (i, step) in out.iter_mut().enumerate() {
            step.needs.retain(|n| !bad.contains(&(i, n.clone())));
        }

        self.order(out, &refs)
    }

    fn step_kind(&mut self, doc: &Spanned<StepDoc>) -> Option<StepKind> {
        let mut kinds: Vec<(StepKind, Span)> = Vec::new();
        if let Some(k) = &doc.ldap_account {
            kinds.push((StepKind::LdapAccount(k.value.clone()), k.span));
        }
        if let Some(k) = &doc.ldap_groups {
            kinds.push((StepKind::LdapGroups(k.value.clone()), k.span));
        }
        if let Some(k) = &doc.device_handoff {
            kinds.push((StepKind::DeviceHandoff(k.value.clone()), k.span));
        }
        if let Some(k) = &doc.sign_off {
            kinds.push((StepKind::SignOff(k.value.clone()), k.span));
        }
        if let Some(k) = &doc.email {
            kinds.push((StepKind::Email(k.value.clone()), k.span));
        }
        match kinds.len() {
            1 => kinds.pop().map(|(k, _)| k),
            0 => {
                self.diags.push(
                    Diagnostic::new(format!("step `{}` has no kind", doc.id.value))
                        .at(doc.id.span)
                        .hint(format!(
                            "give it exactly one of: {}",
                            STEP_KINDS
                                .iter()
                                .map(|k| format!("`{k}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                );
                None
            }
            _ => {
                self.diags.push(
                    Diagnostic::new(format!(
                        "step `{}` has {} kinds: {}",
                        doc.id.value,
                        kinds.len(),
                        kinds
                            .iter()
                            .map(|(k, _)| format!("`{}`", k.name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .at(kinds[1].1)
                    .hint("a step does one thing; split it into several steps"),
                );
                None
            }
        }
    }

    /// Orders steps so each comes after what it needs (declaration order otherwise), and
    /// reports every cycle.
    fn order(&mut self, steps: Vec<Step>, refs: &[(usize, Spanned<String>, &str)]) -> Vec<Step> {
        let index: HashMap<&str, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.value.as_str(), i))
            .collect();
        let deps: Vec<Vec<usize>> = steps
            .iter()
            .map(|s| {
                s.needs
                    .iter()
                    .filter_map(|n| index.get(n.as_str()).copied())
                    .collect()
            })
            .collect();

        // Cycles: depth-first search, reporting each back edge once.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut marks = vec![Mark::New; steps.len()];
        let mut in_cycle = vec![false; steps.len()];
        fn visit(
            i: usize,
            deps: &[Vec<usize>],
            marks: &mut [Mark],
            stack: &mut Vec<usize>,
            cycles: &mut Vec<Vec<usize>>,
        ) {
            marks[i] = Mark::Active;
            stack.push(i);
            for &d in &deps[i] {
                match marks[d] {
                    Mark::New => visit(d, deps, marks, stack, cycles),
                    Mark::Active => {
                        let from = stack.iter().position(|&s| s == d).expect("on stack");
                        cycles.push(stack[from..].to_vec());
                    }
                    Mark::Done => {}
                }
            }
            stack.pop();
            marks[i] = Mark::Done;
        }
        let mut cycles = Vec::new();
        for i in 0..steps.len() {
            if marks[i] == Mark::New {
                visit(i, &deps, &mut marks, &mut Vec::new(), &mut cycles);
            }
        }
        for cycle in &cycles {
            for &i in cycle {
                in_cycle[i] = true;
            }
            // The edge that closes the cycle: from the last step back to the first.
            let last = *cycle.last().expect("non-empty");
            let first = &steps[cycle[0]].id.value;
            let span = refs
                .iter()
                .find(|(i, t, _)| *i == last && &t.value == first)
                .map(|(_, t, _)| t.span)
                .unwrap_or(steps[last].id.span);
            let path: Vec<&str> = cycle
                .iter()
                .map(|&i| steps[i].id.value.as_str())
                .chain([first.as_str()])
                .collect();
            // Reported in the direction people read `needs`: a needs b needs … a.
            let mut shown = path.clone();
            shown.reverse();
            self.diags.push(
                Diagnostic::new(format!("dependency cycle: {}", shown.join(" → ")))
                    .at(span)
                    .label("closes the cycle")
                    .hint("each step must be able to run after the steps it needs; remove one of these `needs`"),
            );
        }

        let mut placed = vec![false; steps.len()];
        let mut order = Vec::with_capacity(steps.len());
        // Kahn's algorithm, taking the earliest-written ready step each time (a heap): the
        // order people wrote, wherever the graph allows it. Linear but for the heap.
        let mut waiting_on: Vec<usize> = deps.iter().map(Vec::len).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                dependents[d].push(i);
            }
        }
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..steps.len())
            .filter(|&i| waiting_on[i] == 0 && !in_cycle[i])
            .map(std::cmp::Reverse)
            .collect();
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            placed[i] = true;
            order.push(i);
            for &j in &dependents[i] {
                waiting_on[j] -= 1;
                if waiting_on[j] == 0 && !in_cycle[j] {
                    ready.push(std::cmp::Reverse(j));
                }
            }
        }
        // Steps in a cycle cannot be ordered; they go last so that their templates are still
        // checked (the cycle is an error, so this order never runs).
        order.extend((0..steps.len()).filter(|&i| !placed[i]));
        let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
        order.into_iter().filter_map(|i| slots[i].take()).collect()
    }

    fn email_files(
        &mut self,
        email: &Email,
        dir: &Path,
        templates: &mut Templates,
        policies: &mut BTreeMap<String, PolicyDoc>,
    ) {
        for name in [&email.html, &email.text] {
            if templates.has(&name.value) {
                continue;
            }
            let Some((file, text)) = self.read_template(dir, name) else {
                continue;
            };
            if let Err(d) = templates.add_file(&name.value, file, &text) {
                self.diags.push(d);
            }
        }
        if let Some(p) = &email.policies
            && !policies.contains_key(&p.file.value)
            && let Some((_, text)) = self.read_template(dir, &p.file)
        {
            let sha256 = crate::digest::sha256(&text);
            policies.insert(p.file.value.clone(), PolicyDoc { text, sha256 });
        }
    }

    /// Reads a template or policy file: only from inside the templates folder (no `..`, no
    /// symlink leading out), only a regular file, at most [`files::TEMPLATE_LIMIT`] bytes.
    fn read_template(&mut self, dir: &Path, name: &Spanned<String>) -> Option<(FileId, String)> {
        let read =
            files::read_inside(dir, &name.value, files::TEMPLATE_LIMIT).and_then(|(_, bytes)| {
                String::from_utf8(bytes).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} is not UTF-8 text", dir.join(&name.value).display()),
                    )
                })
            });
        match read {
            Ok(text) => {
                let file = self.sources.add(dir.join(&name.value), text.clone());
                Some((file, text))
            }
            Err(e) => {
                self.diags.push(
                    Diagnostic::new(format!("cannot read template: {e}"))
                        .at(name.span)
                        .hint(format!(
                            "templates are regular files inside {} (the checklist's \
                             `templates:` sets the folder)",
                            dir.display()
                        )),
                );
                None
            }
        }
    }
}

/// Checks a hire against the checklist's required fields and the value rules; `hire_key` is
/// where missing fields are reported.
pub fn check_hire(
    hire: &Spanned<Hire>,
    hire_key: Span,
    required: &[String],
    diags: &mut Diagnostics,
) {
    for field in required {
        if hire.field(field).is_none() {
            let key = field.strip_prefix("custom.").unwrap_or(field);
            let under = if field.starts_with("custom.") {
                "`hire.custom`"
            } else {
                "`hire`"
            };
            diags.push(
                Diagnostic::new(format!("missing required hire field `{field}`"))
                    .at(hire_key)
                    .label(format!("no `{field}` here"))
                    .hint(format!(
                        "the checklist requires it (hire_fields.required); add `{key}:` under {under}"
                    )),
            );
        }
    }
    for (name, value) in hire.fields() {
        if let Err(problem) = check_hire_value(&name, &value.value) {
            let mut d =
                Diagnostic::new(format!("hire field `{name}`: {}", problem.0)).at(value.span);
            d.hint = problem.1;
            diags.push(d);
        }
    }
    if let (Some(start), Some(end)) = (&hire.start_date, &hire.end_date)
        && let (Ok(s), Ok(e)) = (
            start.value.parse::<jiff::civil::Date>(),
            end.value.parse::<jiff::civil::Date>(),
        )
        && e < s
    {
        diags.push(
            Diagnostic::new("hire field `end_date` is before `start_date`")
                .at(end.span)
                .note(start.span, "start_date"),
        );
    }
}

/// Checks one hire value. Returns the problem and a hint.
fn check_hire_value(name: &str, value: &str) -> Result<(), (String, Option<String>)> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err((
            format!("contains the control character U+{:04X}", c as u32),
            Some("hire data must be plain text on one line".into()),
        ));
    }
    if value.trim().is_empty() {
        return Err((
            "is empty".into(),
            Some("remove the key or give a value".into()),
        ));
    }
    if value.chars().count() > 256 {
        return Err(("is longer than 256 characters".into(), None));
    }
    match name {
        // Ids name files (the journal, its lock, evidence folders): far below any file name
        // limit, and HR's employee numbers are short.
        "id" if value.len() > 64 => Err((
            format!(
                "is {} characters; an id has at most 64",
                value.chars().count()
            ),
            Some("use HR's employee number".into()),
        )),
        "id" if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            || value.starts_with('.') =>
        {
            Err((
                format!("`{value}` is not a valid id"),
                Some("use HR's employee number: letters, digits, `.`, `_` and `-`".into()),
            ))
        }
        "personal_email" | "work_email" | "manager_email" => check_email(value)
            .map_err(|p| (p, Some("write a plain address: name@example.org".into()))),
        "start_date" | "end_date" => value.parse::<jiff::civil::Date>().map(|_| ()).map_err(|_| {
            (
                format!("`{value}` is not a date"),
                Some("write it as YYYY-MM-DD, e.g. 2026-12-01".into()),
            )
        }),
        "start_time" => value.parse::<jiff::civil::Time>().map(|_| ()).map_err(|_| {
            (
                format!("`{value}` is not a time of day"),
                Some("write it as HH:MM (24 h), e.g. 09:00".into()),
            )
        }),
        "time_zone" => jiff::tz::TimeZone::get(value).map(|_| ()).map_err(|_| {
            (
                format!("`{value}` is not a known time zone"),
                Some("use an IANA name, e.g. Europe/Berlin or America/New_York".into()),
            )
        }),
        _ => Ok(()),
    }
}

/// A plain email address: one `@`, no spaces or angle brackets, a dot in the domain.
pub fn check_email(value: &str) -> Result<(), String> {
    let ok = value.parse::<lettre::Address>().is_ok()
        && !value.contains(['<', '>', ' ', ','])
        && value.rsplit_once('@').is_some_and(|(_, d)| d.contains('.'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{value}` is not an email address"))
    }
}

/// Where `key` is written in a mapping node.
fn key_span(node: &yaml::Node, key: &str) -> Option<Span> {
    match &node.kind {
        yaml::NodeKind::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(k, _)| k.span),
        _ => None,
    }
}

fn relative_to(file: &Path, rel: &Spanned<String>) -> PathBuf {
    normalize(&parent(file).join(&rel.value))
}

/// Removes `.` and `dir/..` without touching the file system, so messages show short paths.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

fn parent(file: &Path) -> &Path {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_step_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hire_values_are_checked() {
        assert!(check_hire_value("given_name", "Seán").is_ok());
        assert!(check_hire_value("given_name", "a\r\nBcc: x@y").is_err());
        assert!(check_hire_value("given_name", "nul\0").is_err());
        assert!(check_hire_value("id", "E-1042").is_ok());
        assert!(check_hire_value("id", "../etc").is_err());
        assert!(check_hire_value("work_email", "ada@example.org").is_ok());
        assert!(check_hire_value("work_email", "Ada <ada@example.org>").is_err());
        assert!(check_hire_value("start_date", "2026-02-30").is_err());
        assert!(check_hire_value("start_time", "09:00").is_ok());
        assert!(check_hire_value("time_zone", "Europe/Berlin").is_ok());
        assert!(check_hire_value("time_zone", "Mars/Olympus").is_err());
    }
}
