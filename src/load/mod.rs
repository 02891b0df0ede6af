//! Loading a playbook: read the files, compose checklist, playbook and hire file, and check
//! everything that does not need rendering (keys, types, hire data, step graph).
//!
//! Problems are collected, not thrown: [`load`] returns every diagnostic it found. Rendering
//! (and so undefined template variables) is checked by the planner, which `check` also runs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics, FileId, SourceMap, Span, suggest};
mod graph;
mod hire;
mod layer;

pub use hire::{check_email, check_hire};

use crate::files;
use crate::model::{
    Email, FORMAT_VERSION, HIRE_FIELDS, Hire, PlaybookFile, STEP_KINDS, StepDoc, Tpl,
};
use crate::template::Templates;
use crate::yaml::{self, Recorder, Spanned};

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The playbook: a self-contained one, a checklist, or a hire file naming a checklist.
    pub playbook: PathBuf,
    /// A hire file whose `hire` (and `vars`) replace the playbook's.
    pub hire: Option<PathBuf>,
    /// Folders outside a checklist's own where its `templates:` may point (the config file's
    /// `templates_roots`).
    pub templates_roots: Vec<PathBuf>,
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

impl Playbook {
    /// The hire's id, if the playbook names a hire.
    pub fn hire_id(&self) -> Option<String> {
        Some(self.hire.as_ref()?.id.as_ref()?.value.clone())
    }
}

/// The most steps a checklist may have.
pub const MAX_STEPS: usize = 1000;
/// The most vars one file may declare.
pub const MAX_VARS: usize = 500;

/// The id of the synthetic step that says everything is ready.
pub const NOTIFY_READY: &str = "notify-ready";
/// The id under which the at-risk message is journaled.
pub const NOTIFY_AT_RISK: &str = "notify-at-risk";
/// The prefix of the ids under which a refusal's message is journaled (then the step and the
/// refusal's number).
pub const NOTIFY_REFUSED: &str = "notify-refused-";

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

pub use crate::steps::StepKind;

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
        let checklist = self.checklist_of(&root)?;
        let hire_layer = match &req.hire {
            Some(path) => Some(self.hire_file(path)?),
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

        let layers = [checklist.as_ref(), Some(&root), hire_layer.as_ref()];
        if !self.within_budgets(&layers, steps) {
            return None;
        }
        let vars = self.merged_vars(&layers);

        // Only the checklist says where templates come from, never a hire file.
        let templates_dir = self.templates_dir(steps_layer, &req.templates_roots);

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
        let at_risk = notify
            .as_ref()
            .and_then(|n| Some(notify_email(n, n.at_risk.as_ref()?)));
        let (templates, policies) = self.email_templates(&steps, at_risk.as_ref(), &templates_dir);

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

    /// The checklist a hire file names (`None` for a self-contained playbook); `None` of the
    /// outer option when loading cannot go on.
    fn checklist_of(&mut self, root: &Layer) -> Option<Option<Layer>> {
        match &root.doc.checklist {
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
                self.only_hire_data(root, "a hire file (one with `checklist:`)");
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
                Some(Some(layer))
            }
            None => Some(None),
        }
    }

    /// A `--hire FILE`: hire data and vars only.
    fn hire_file(&mut self, path: &Path) -> Option<Layer> {
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

    /// Budgets: far beyond any real checklist, and they keep planning (which renders every var
    /// against all earlier ones, and every step against its ancestors) fast.
    fn within_budgets(
        &mut self,
        layers: &[Option<&Layer>; 3],
        steps: &Spanned<Vec<yaml::Recover<Spanned<StepDoc>>>>,
    ) -> bool {
        for layer in layers.iter().flatten() {
            if let Some((name, _)) = layer.doc.vars.0.get(MAX_VARS) {
                self.diags.push(
                    Diagnostic::new(format!("more than {MAX_VARS} vars"))
                        .at(name.span)
                        .hint("vars are for derived values such as a login; keep data in the hire"),
                );
                return false;
            }
        }
        if let Some(step) = steps.value.get(MAX_STEPS) {
            let span = step.0.as_ref().map_or(steps.span, |s| s.span);
            self.diags.push(
                Diagnostic::new(format!("more than {MAX_STEPS} steps"))
                    .at(span)
                    .hint("split the checklist: one per kind of hire"),
            );
            return false;
        }
        true
    }

    /// Vars of the checklist, the playbook and the hire file, later ones replacing earlier
    /// ones by name.
    fn merged_vars(&mut self, layers: &[Option<&Layer>; 3]) -> Vec<(Spanned<String>, Tpl)> {
        let mut vars: Vec<(Spanned<String>, Tpl)> = Vec::new();
        for layer in layers.iter().flatten() {
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
        vars
    }

    /// Every email's template files and policy documents, read once each.
    fn email_templates(
        &mut self,
        steps: &[Step],
        at_risk: Option<&Email>,
        dir: &Path,
    ) -> (Templates, BTreeMap<String, PolicyDoc>) {
        let mut templates = Templates::new();
        let mut policies = BTreeMap::new();
        for step in steps {
            let p = match &step.kind {
                StepKind::Email(e) => e.policies.as_ref(),
                StepKind::Acknowledge(a) => Some(&a.policies),
                _ => None,
            };
            if let Some(p) = p {
                self.policy_file(p, dir, &mut policies);
            }
        }
        for email in steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Email(e) => Some(e),
                _ => None,
            })
            .chain(at_risk)
        {
            self.email_files(email, dir, &mut templates, &mut policies);
        }
        (templates, policies)
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
        if let Some(p) = &email.policies {
            self.policy_file(p, dir, policies);
        }
    }

    /// Reads a policy document once, and checks the version it is given.
    fn policy_file(
        &mut self,
        p: &crate::steps::email::spec::Policies,
        dir: &Path,
        policies: &mut BTreeMap<String, PolicyDoc>,
    ) {
        if let Err(problem) = crate::policy::check_version(&p.version.value) {
            self.diags.push(
                Diagnostic::new(problem)
                    .at(p.version.span)
                    .hint("quote it in YAML, e.g. version: \"2026.2\""),
            );
        }
        if !policies.contains_key(&p.file.value)
            && let Some((_, text)) = self.read_template(dir, &p.file)
        {
            let sha256 = crate::digest::sha256(&text);
            policies.insert(p.file.value.clone(), PolicyDoc { text, sha256 });
        }
    }

    /// The folder templates come from: the checklist's `templates:`, if it is allowed, else
    /// `../templates` beside the checklist.
    fn templates_dir(&mut self, checklist: &Layer, roots: &[PathBuf]) -> PathBuf {
        match &checklist.doc.templates {
            Some(t) => {
                let dir = relative_to(&checklist.path, t);
                if let Err(d) = templates_allowed(&checklist.path, &dir, roots) {
                    self.diags.push(d.at(t.span));
                }
                dir
            }
            None => normalize(&parent(&checklist.path).join("../templates")),
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

/// Whether a checklist may take its templates (and policy texts, which are mailed) from `dir`:
/// inside the checklist's project (the folder its own folder is in: `playbooks/` and
/// `templates/` side by side), or inside a folder the config file allows. Otherwise
/// `templates: /etc` mails `/etc/shadow`. Compared after resolving symbolic links, so a link
/// cannot lead out either.
fn templates_allowed(checklist: &Path, dir: &Path, roots: &[PathBuf]) -> Result<(), Diagnostic> {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| normalize(p));
    let own = real(parent(checklist));
    // A checklist one level below `/` has no project but its own folder: `/` is not one.
    let project = match real(&parent(checklist).join("..")) {
        p if p.parent().is_none() => own,
        p => p,
    };
    let dir = real(dir);
    let allowed = std::iter::once(project.clone())
        .chain(roots.iter().map(|r| real(r)))
        .any(|root| dir.starts_with(&root));
    if allowed {
        return Ok(());
    }
    Err(Diagnostic::new(format!(
        "the templates folder {} is outside the checklist's project {}",
        dir.display(),
        project.display()
    ))
    .hint(format!(
        "keep templates and policy texts beside the checklist's folder (e.g. `../templates`); \
         a folder elsewhere must be allowed in the config file: templates_roots = [\"{}\"]",
        dir.display()
    )))
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
