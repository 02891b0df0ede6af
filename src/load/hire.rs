//! Hire data checks: required fields, and each value's rules (one line, length, ids, email
//! addresses, dates, times, zones).

use crate::diag::{Diagnostic, Diagnostics, Span};
use crate::model::Hire;
use crate::yaml::Spanned;

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
            .map_err(|p| (p.0, Some("write a plain address: name@example.org".into()))),
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
pub fn check_email(value: &str) -> Result<(), crate::diag::Invalid> {
    let ok = value.parse::<lettre::Address>().is_ok()
        && !value.contains(['<', '>', ' ', ','])
        && value.rsplit_once('@').is_some_and(|(_, d)| d.contains('.'));
    if ok {
        Ok(())
    } else {
        Err(format!("`{value}` is not an email address").into())
    }
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
