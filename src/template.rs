//! Rendering playbook templates with Tera 2.
//!
//! Two kinds of templates: inline strings in the playbook (step parameters, vars; never
//! autoescaped) and template files in the templates folder (email bodies; `.html` ones are
//! HTML-autoescaped). Values in the context are data: Tera never evaluates a value, so a hire
//! named `{{ 7*7 }}` stays exactly that. Errors are mapped back to the file, line and column.

use std::borrow::Cow;

use tera::{Context, Kwargs, State, Tera};

use crate::diag::{Diagnostic, FileId, Span};
use crate::escape;
use crate::model::Tpl;

/// How many numbers all `range` calls of one rendering may produce together. Loops make
/// everything else a template does bounded by its input; nested ranges would not be (three
/// `range(end=100000)` deep is 10^15 iterations), so they share this budget.
const RANGE_ELEMENTS: i128 = 10_000;

std::thread_local! {
    static RANGE_BUDGET: std::cell::Cell<i128> = const { std::cell::Cell::new(RANGE_ELEMENTS) };
}

/// Tera's `range`, drawing on the rendering's budget.
fn range(kwargs: Kwargs, _: &State) -> tera::TeraResult<Vec<i128>> {
    let start = kwargs.get::<i128>("start")?.unwrap_or_default();
    let end = kwargs.must_get::<i128>("end")?;
    let step = kwargs.get::<i128>("step_by")?.unwrap_or(1);
    if step == 0 {
        return Err(tera::Error::message("`range` was called with `step_by` 0"));
    }
    // The length without building anything, saturating: a huge range is refused, not built.
    let len = if (step > 0 && end > start) || (step < 0 && start > end) {
        let span = end.saturating_sub(start).saturating_abs();
        let step = step.saturating_abs();
        span / step + i128::from(span % step != 0)
    } else {
        0
    };
    let left = RANGE_BUDGET.get();
    if len > left {
        return Err(tera::Error::message(format!(
            "`range` would make {len} numbers, more than the {RANGE_ELEMENTS} one message may \
             loop over in all"
        )));
    }
    RANGE_BUDGET.set(left - len);
    Ok((0..len).map(|i| start + i * step).collect())
}

/// The Tera instance with onboard's filters and the email templates loaded.
#[derive(Clone)]
pub struct Templates {
    tera: Tera,
    /// Template name → the file it came from, for locating errors.
    files: Vec<(String, FileId)>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut tera = Tera::default();
        tera.autoescape_on([".html", ".htm", ".html.tera", ".htm.tera"]);
        tera.register_filter("ascii", |v: Cow<'_, str>, _: Kwargs, _: &State| {
            deunicode::deunicode(&v)
        });
        tera.register_filter("login", |v: Cow<'_, str>, _: Kwargs, _: &State| login(&v));
        tera.register_filter("dn_escape", |v: Cow<'_, str>, _: Kwargs, _: &State| {
            escape::dn_value(&v)
        });
        tera.register_filter("filter_escape", |v: Cow<'_, str>, _: Kwargs, _: &State| {
            escape::filter_value(&v)
        });
        tera.register_function("range", range);
        Templates {
            tera,
            files: Vec::new(),
        }
    }

    /// Adds a template file (already read into the source map as `file`).
    pub fn add_file(&mut self, name: &str, file: FileId, text: &str) -> Result<(), Diagnostic> {
        self.files.push((name.to_owned(), file));
        self.tera
            .add_raw_template(name, text)
            .map_err(|e| self.diagnostic(e, Origin::File(file)))
    }

    pub fn has(&self, name: &str) -> bool {
        self.tera.contains_template(name)
    }

    /// Renders an inline template from the playbook.
    pub fn render_inline(&self, tpl: &Tpl, ctx: &Context) -> Result<String, Diagnostic> {
        // Plain text needs no engine; this is also most strings in a playbook.
        if !tpl.value.contains("{{") && !tpl.value.contains("{%") && !tpl.value.contains("{#") {
            return Ok(tpl.value.clone());
        }
        RANGE_BUDGET.set(RANGE_ELEMENTS);
        self.tera
            .render_str(&tpl.value, ctx, false)
            .map_err(|e| self.diagnostic(e, Origin::Inline(tpl)))
    }

    /// Renders a template file by name.
    pub fn render_file(&self, name: &str, ctx: &Context) -> Result<String, Diagnostic> {
        let file = self.files.iter().find(|(n, _)| n == name).map(|(_, f)| *f);
        RANGE_BUDGET.set(RANGE_ELEMENTS);
        self.tera.render(name, ctx).map_err(|e| match file {
            Some(file) => self.diagnostic(e, Origin::File(file)),
            None => Diagnostic::new(format!("template `{name}`: {e}")),
        })
    }

    fn diagnostic(&self, err: tera::Error, origin: Origin<'_>) -> Diagnostic {
        let report = match err.kind() {
            tera::ErrorKind::SyntaxError(r) | tera::ErrorKind::RenderingError(r) => Some(r),
            _ => None,
        };
        let Some(report) = report else {
            let mut message = err.to_string();
            if let Origin::Inline(_) = origin {
                message = format!("template error: {message}");
            }
            // Tera gives no position for some errors (a circular `include` or `extends`): the
            // template file itself is the place.
            let span = match origin {
                Origin::Inline(tpl) => Some(tpl.span),
                Origin::File(file) => Some(Span {
                    file,
                    line: 1,
                    col: 1,
                    len: 1,
                }),
            };
            return Diagnostic::new(message).at_opt(span);
        };
        let kind = match err.kind() {
            tera::ErrorKind::SyntaxError(_) => "template syntax error",
            _ => "template error",
        };
        let (message, hint) = explain(report.message());
        let s = report.span();
        // Tera's lines are 1-based, its columns 0-based.
        let len = if s.start_line == s.end_line {
            (s.end_col.saturating_sub(s.start_col)).max(1) as u32
        } else {
            1
        };
        let span = match origin {
            Origin::Inline(tpl) if tpl.verbatim && s.start_line == 1 => {
                tpl.span.shifted(s.start_col as u32, len)
            }
            Origin::Inline(tpl) => tpl.span,
            Origin::File(file) => {
                // A file included from another reports the included file's name.
                let file = self
                    .files
                    .iter()
                    .find(|(n, _)| n == report.filename())
                    .map_or(file, |(_, f)| *f);
                Span {
                    file,
                    line: s.start_line as u32,
                    col: s.start_col as u32 + 1,
                    len,
                }
            }
        };
        let mut d = Diagnostic::new(format!("{kind}: {message}")).at(span);
        d.hint = hint;
        d
    }
}

#[derive(Clone, Copy)]
enum Origin<'a> {
    Inline(&'a Tpl),
    File(FileId),
}

/// Tera's message, and a hint for the common mistakes.
fn explain(message: &str) -> (String, Option<String>) {
    let hint = if message.contains("is not defined") {
        Some(
            "templates can use `hire.FIELD`, `vars.NAME` (declared above this one) and \
             `steps.ID.OUTPUT` (of a step in `needs`); for an optional hire field use \
             `hire.FIELD | default(value=\"\")`"
                .to_owned(),
        )
    } else {
        None
    };
    (message.to_owned(), hint)
}

/// A login name from a person's name: ASCII letters and digits only, lowercase
/// (`Seán O'Brien` → `seanobrien`, `李雷` → `leilei`-style transliteration).
pub fn login(name: &str) -> String {
    deunicode::deunicode(name)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::Spanned;

    fn tpl(s: &str) -> Tpl {
        Spanned {
            value: s.into(),
            span: Span {
                file: FileId(0),
                line: 3,
                col: 10,
                len: s.chars().count() as u32,
            },
            verbatim: true,
        }
    }

    fn ctx() -> Context {
        let mut ctx = Context::new();
        let mut hire = std::collections::BTreeMap::new();
        hire.insert("given_name", "{{ 7*7 }}");
        hire.insert("family_name", "O'Brien, Seán");
        ctx.insert("hire", &hire);
        ctx
    }

    #[test]
    fn hire_data_is_never_evaluated() {
        let t = Templates::new();
        let out = t
            .render_inline(&tpl("{{ hire.given_name }} {{ hire.family_name }}"), &ctx())
            .unwrap();
        assert_eq!(out, "{{ 7*7 }} O'Brien, Seán");
    }

    #[test]
    fn filters_make_logins_and_escape() {
        let t = Templates::new();
        let out = t
            .render_inline(
                &tpl("{{ hire.family_name | login }}|{{ hire.family_name | dn_escape }}"),
                &ctx(),
            )
            .unwrap();
        assert_eq!(out, "obriensean|O'Brien\\, Seán");
        assert_eq!(login("李雷"), "lilei");
        assert_eq!(login("Zoë-Ann"), "zoeann");
    }

    #[test]
    fn undefined_variables_point_into_the_string() {
        let t = Templates::new();
        let d = t
            .render_inline(&tpl("x {{ hire.nickname }}"), &ctx())
            .unwrap_err();
        assert!(d.message.starts_with("template error"), "{}", d.message);
        let span = d.span.unwrap();
        assert_eq!(span.line, 3);
        assert!(span.col > 10, "{span:?}");
        assert!(d.hint.is_some(), "{d:?}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let t = Templates::new();
        let d = t
            .render_inline(&tpl("{{ hire.given_name "), &ctx())
            .unwrap_err();
        assert!(
            d.message.starts_with("template syntax error"),
            "{}",
            d.message
        );
    }

    /// Regression: map iteration followed a hash order, so a checksum over rendered text
    /// changed between runs and a done notification was refused as "changed".
    #[test]
    fn maps_iterate_in_a_stable_order() {
        let mut ctx = Context::new();
        let steps: std::collections::BTreeMap<String, u32> =
            (0..20).map(|i| (format!("step{i:02}"), i)).collect();
        ctx.insert("steps", &steps);
        let t = tpl("{% for k, v in steps %}{{ k }} {% endfor %}");
        let first = Templates::new().render_inline(&t, &ctx).unwrap();
        for _ in 0..10 {
            assert_eq!(Templates::new().render_inline(&t, &ctx).unwrap(), first);
        }
        assert!(first.starts_with("step00 step01 step02"));
    }

    #[test]
    fn html_files_are_autoescaped() {
        let mut t = Templates::new();
        t.add_file("w.html.tera", FileId(1), "<p>{{ hire.given_name }}</p>")
            .unwrap();
        let mut ctx = Context::new();
        let mut hire = std::collections::BTreeMap::new();
        hire.insert("given_name", "<script>alert(1)</script>");
        ctx.insert("hire", &hire);
        assert_eq!(
            t.render_file("w.html.tera", &ctx).unwrap(),
            "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
        );
    }
}

#[cfg(test)]
mod range_tests {
    use super::*;

    fn render(text: &str) -> Result<String, Diagnostic> {
        let tpl = Tpl {
            value: text.to_owned(),
            span: Span {
                file: FileId(0),
                line: 1,
                col: 1,
                len: 1,
            },
            verbatim: false,
        };
        Templates::new().render_inline(&tpl, &Context::new())
    }

    #[test]
    fn ranges_work_within_a_budget() {
        assert_eq!(
            render("{% for i in range(end=3) %}{{ i }}{% endfor %}").unwrap(),
            "012"
        );
        assert_eq!(
            render("{% for i in range(start=5, end=0, step_by=-2) %}{{ i }}{% endfor %}").unwrap(),
            "531"
        );
        let nested = "{% for a in range(end=100000) %}{% for b in range(end=100000) %}\
                      {% for c in range(end=100000) %}x{% endfor %}{% endfor %}{% endfor %}";
        let started = std::time::Instant::now();
        let e = render(nested).unwrap_err();
        assert!(e.message.contains("more than the 10000"), "{}", e.message);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let e = render("{{ range(end=9223372036854775807) | length }}").unwrap_err();
        assert!(e.message.contains("would make"), "{}", e.message);
    }
}
