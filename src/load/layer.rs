//! Reading one playbook file (a layer): bytes, UTF-8, YAML, the typed document; and what a
//! layer may say (a hire file only hire data and vars).

use super::*;

impl Loader<'_> {
    /// Reads and deserializes one file. `from` is where another file named it.
    pub(super) fn read_layer(&mut self, path: &Path, from: Option<Span>) -> Option<Layer> {
        let text = match files::read_regular(path, files::PLAYBOOK_LIMIT) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => {
                    let d = self.sources.not_utf8(path, e, "save the file as UTF-8");
                    self.diags.push(d);
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
    pub(super) fn only_hire_data(&mut self, layer: &Layer, what: &str) {
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
    pub(super) fn hire_columns(&mut self, layer: &Layer) {
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

    pub(super) fn required_fields(&mut self, layer: &Layer) -> Vec<String> {
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
}
