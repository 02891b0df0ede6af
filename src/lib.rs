//! onboard: run, verify and journal a new hire's IT onboarding checklist.
//!
//! The library holds everything but terminal IO: see ARCHITECTURE.md for the layers.

pub mod diag;
pub mod yaml;
pub mod escape;
pub mod model;
pub mod template;
pub mod load;
pub mod plan;
pub mod cli;
