//! onboard: run, verify and journal a new hire's IT onboarding checklist.
//!
//! The library holds everything but terminal IO: see ARCHITECTURE.md for the layers.

// No function over 100 lines: a long one is two things that want names (CI denies warnings).
#![warn(clippy::too_many_lines)]

pub mod backend;
pub mod cli;
pub mod deadline;
pub mod diag;
pub mod digest;
pub mod engine;
pub mod escape;
pub mod evidence;
pub mod files;
pub mod hires;
pub mod journal;
pub mod load;
pub mod mail;
pub mod model;
pub mod plan;
pub mod policy;
pub mod readiness;
pub mod receipt;
pub mod report;
pub mod secret;
pub mod state;
pub mod steps;
pub mod store;
pub mod template;
pub mod web;
pub mod yaml;
