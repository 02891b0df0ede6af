//! `onboard store copy`: every journal and evidence file from one store to another, each chain
//! verified on both sides; a hire the destination already holds is skipped when identical and
//! refused when it differs.

use std::io;

use super::{Store, StoreError};

/// What happened to one hire.
#[derive(Debug, PartialEq, Eq)]
pub enum Copied {
    /// Written to the destination: its records and evidence files.
    New { records: usize, evidence: usize },
    /// The destination holds the same journal already (evidence added if missing).
    Same { evidence: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{name} does not verify: {problem}")]
    Broken { name: String, problem: String },
    #[error("{name} differs from {from}: refusing to overwrite it")]
    Differs { name: String, from: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Copies the published policy texts from `from` to `to`; how many there are. A version
/// published with another text at the destination is refused.
pub fn copy_policies(from: &dyn Store, to: &dyn Store) -> Result<usize, CopyError> {
    let policies = from.policies()?;
    for p in &policies {
        let kept = to.publish_policy(p)?;
        if kept.sha256 != p.sha256 {
            return Err(CopyError::Differs {
                name: format!("{} version {} in {}", p.file, p.version, to.describe()),
                from: from.describe(),
            });
        }
    }
    Ok(policies.len())
}

/// Copies one hire's journal and evidence from `from` to `to`.
pub fn copy_hire(from: &dyn Store, to: &dyn Store, hire: &str) -> Result<Copied, CopyError> {
    let source = from.read(hire)?;
    source.verify().map_err(|b| CopyError::Broken {
        name: from.journal_name(hire),
        problem: b.to_string(),
    })?;
    let existing = match to.read(hire) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let new = match existing {
        Some(t) if t.text == source.text && t.unreadable.is_none() => false,
        Some(_) => {
            return Err(CopyError::Differs {
                name: to.journal_name(hire),
                from: from.journal_name(hire),
            });
        }
        None => {
            to.import(hire, &source.text)?;
            true
        }
    };
    // Read back: the destination's journal is the source's, and its chain verifies there.
    let written = to.read(hire)?;
    if written.text != source.text {
        return Err(CopyError::Differs {
            name: to.journal_name(hire),
            from: from.journal_name(hire),
        });
    }
    written.verify().map_err(|b| CopyError::Broken {
        name: to.journal_name(hire),
        problem: b.to_string(),
    })?;
    let have: Vec<String> = to
        .evidence(hire)?
        .iter()
        .map(|e| format!("{}-{}", crate::digest::sha256(&e.bytes), e.name))
        .collect();
    let mut evidence = 0;
    for file in from.evidence(hire)? {
        let key = format!("{}-{}", crate::digest::sha256(&file.bytes), file.name);
        if !have.contains(&key) {
            to.keep_evidence(hire, &file.name, &file.bytes)?;
            evidence += 1;
        }
    }
    Ok(if new {
        Copied::New {
            records: source.text.lines().count(),
            evidence,
        }
    } else {
        Copied::Same { evidence }
    })
}
