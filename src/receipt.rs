//! The hand-off receipt: what was handed to whom, in what condition, cleaned by whom, received
//! when. Written to the state directory as text and HTML when the hire acknowledges receipt,
//! for printing or mailing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::journal::SignOffRequest;

pub struct Receipt<'a> {
    pub hire: &'a str,
    pub step: &'a str,
    pub request: &'a SignOffRequest,
    /// The hire's name as they typed it.
    pub received_by: &'a str,
    pub received_at: &'a str,
    /// The cleaning sign-off's outputs (`signed_by`, `signed_at`).
    pub cleaning: Option<&'a BTreeMap<String, String>>,
}

impl Receipt<'_> {
    fn lines(&self) -> Vec<(&'static str, String)> {
        let a = &self.request.asset;
        let get = |k: &str| a.get(k).cloned().unwrap_or_else(|| "-".into());
        let cleaned = match (self.request.cleaning.as_deref(), self.cleaning) {
            (Some(step), Some(c)) => format!(
                "{} (step {step}) at {}",
                c.get("signed_by").map_or("-", String::as_str),
                c.get("signed_at").map_or("-", String::as_str)
            ),
            _ => "-".into(),
        };
        vec![
            ("Hire", self.hire.to_owned()),
            ("Asset tag", get("asset_tag")),
            ("Serial number", get("serial")),
            ("Model", get("model")),
            ("Condition", get("condition")),
            ("Accessories", get("accessories")),
            ("Cleaned and signed off by", cleaned),
            ("Received by", self.received_by.to_owned()),
            ("Received at", self.received_at.to_owned()),
        ]
    }

    pub fn text(&self) -> String {
        let mut out = String::from("DEVICE HAND-OFF RECEIPT\n\n");
        for (k, v) in self.lines() {
            let _ = writeln!(out, "{k:<26} {v}");
        }
        let _ = writeln!(out, "\nThe hire confirmed:");
        for item in &self.request.items {
            let _ = writeln!(out, "  [x] {item}");
        }
        out
    }

    pub fn html(&self) -> String {
        let e = |s: &str| {
            let mut out = Vec::new();
            tera::escape_html(s, &mut out).expect("writing to a Vec");
            String::from_utf8(out).expect("escaping keeps UTF-8")
        };
        let mut rows = String::new();
        for (k, v) in self.lines() {
            let _ = writeln!(rows, "<tr><th>{}</th><td>{}</td></tr>", e(k), e(&v));
        }
        let items: String = self
            .request
            .items
            .iter()
            .map(|i| format!("<li>{}</li>\n", e(i)))
            .collect();
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Hand-off receipt {}</title>\n\
             <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}th{{text-align:left;padding-right:1em}}</style>\n\
             </head><body>\n<h1>Device hand-off receipt</h1>\n<table>\n{rows}</table>\n<h2>The hire confirmed</h2>\n<ul>\n{items}</ul>\n</body></html>\n",
            e(self
                .request
                .asset
                .get("asset_tag")
                .map_or("", String::as_str))
        )
    }
}
