//! `[policies]`: acknowledgement campaigns (`onboard policies campaign`) and who counts as
//! behind (`onboard policies status`).
//!
//! | key | environment | meaning | default |
//! |---|---|---|---|
//! | `policies.from` | `ONBOARD_POLICIES_FROM` (flag `--from`) | the sender of campaign messages | none: required to send |
//! | `policies.max_age_days` | — | an acceptance older than this is behind (0: never) | 365 |
//! | `policies.remind_days` | — | days from a message to its reminder | 7 |
//! | `policies.reminders` | — | at most this many reminders (0: none) | 2 |

use super::layers::Layers;
use super::web::number;
use crate::cli::config_file::Policies;

/// The `[policies]` settings in effect.
#[derive(Debug, Clone, Default)]
pub struct PolicySettings {
    pub from: Option<String>,
    pub max_age_days: u32,
    pub remind_days: u32,
    pub reminders: u32,
}

pub(super) fn policies(layers: &mut Layers) -> PolicySettings {
    let p: Policies = layers
        .file
        .as_ref()
        .map(|f| f.doc.policies.clone())
        .unwrap_or_default();
    let from = layers.text("ONBOARD_POLICIES_FROM", "policies.from", p.from.as_ref());
    layers.show_found(
        "policies.from",
        &from,
        from.as_ref()
            .map_or("(none)".to_owned(), |f| f.value.clone()),
    );
    let mut n = |key, value: Option<&toml::Spanned<u64>>, default| {
        u32::try_from(number(layers, key, value, default, 0)).unwrap_or(u32::MAX)
    };
    PolicySettings {
        from: from.map(|f| f.value),
        max_age_days: n("policies.max_age_days", p.max_age_days.as_ref(), 365),
        remind_days: n("policies.remind_days", p.remind_days.as_ref(), 7),
        reminders: n("policies.reminders", p.reminders.as_ref(), 2),
    }
}
