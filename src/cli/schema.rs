//! `onboard schema`: the JSON Schema of the playbook format, for editors.

use clap::Args;

use super::{CmdResult, Printer, emit};

/// Print the JSON Schema of the playbook format (derived from the same types the loader uses).
///
/// Point your editor's YAML language server at it, e.g. with a first line
/// `# yaml-language-server: $schema=onboard.schema.json`.
#[derive(Debug, Args)]
pub struct SchemaArgs {}

pub fn cmd_schema(_: SchemaArgs, printer: &Printer) -> CmdResult {
    let schema = crate::model::json_schema();
    let text = serde_json::to_string_pretty(&schema).expect("schema serializes");
    emit(printer, &(text + "\n"))
}
