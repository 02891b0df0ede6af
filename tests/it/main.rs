//! Integration tests: one binary that runs the built `onboard` like a person would.

mod ad;
mod browser;
mod cohort;
mod commands;
mod common;
mod faults;
mod hostile;
mod human;
mod ldap;
mod never_panics;
mod ownership;
mod playbooks;
mod policies;
mod postgres;
mod probe;
mod readiness;
mod report;
mod run;
mod samba;
mod serve;
mod slapd;
mod smtp;
mod smtp_server;
mod store;
mod streams;
