//! onboard: run, verify and journal a new hire's IT onboarding checklist.
//!
//! The library holds everything but terminal IO: see ARCHITECTURE.md for the layers.

pub mod cli;
pub mod diag;
pub mod escape;
pub mod load;
pub mod model;
pub mod plan;
pub mod template;
pub mod yaml;
pub mod journal;
pub mod state;
pub mod secret;
pub mod target;
pub mod engine;
pub mod mail;
pub mod steps;
