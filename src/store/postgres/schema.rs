//! The schema: created and upgraded by onboard itself from numbered migrations whose SHA-256
//! is recorded; a newer schema, or an applied migration that differs from this build's, is
//! refused.

use postgres::Client;

use super::connect::{PgConfig, PgError};
use super::lock_key;

/// The migrations, in order: (version, what it does, SQL). Never edit one that has shipped:
/// add the next.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "journals, lock holders, evidence, receipts",
        include_str!("migrations/0001_record.sql"),
    ),
    (
        2,
        "published policy texts",
        include_str!("migrations/0002_policy.sql"),
    ),
    (
        3,
        "lock holders by server process; when each record was written",
        include_str!("migrations/0003_holder.sql"),
    ),
];

/// Applies the migrations this database lacks, one transaction each, under an advisory lock
/// so that two onboards starting at once do not both apply them. Says whether onboard's
/// tables are there (not when reading a database onboard never wrote to).
pub(super) fn migrate(
    client: &mut Client,
    config: &PgConfig,
    create: bool,
) -> Result<bool, PgError> {
    let fail = |e: postgres::Error| config.unavailable(&e);
    let exists: bool = client
        .query_one("SELECT to_regclass('onboard_schema') IS NOT NULL", &[])
        .map_err(fail)?
        .get(0);
    if !exists && !create {
        return Ok(false);
    }
    let key = lock_key("schema");
    client
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .map_err(fail)?;
    let result = (|| {
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS onboard_schema (
                     version    integer     PRIMARY KEY,
                     checksum   text        NOT NULL,
                     about      text        NOT NULL,
                     onboard    text        NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
            )
            .map_err(fail)?;
        let applied: Vec<(i32, String)> = client
            .query(
                "SELECT version, checksum FROM onboard_schema ORDER BY version",
                &[],
            )
            .map_err(fail)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if let Some((newest, _)) = applied.iter().rfind(|(v, _)| *v > known) {
            return Err(PgError::Schema(format!(
                "the database {} has onboard schema version {newest}, newer than this onboard \
                 knows ({known}): it was upgraded by a newer onboard",
                config.url
            )));
        }
        for (version, about, sql) in MIGRATIONS {
            let checksum = crate::digest::sha256(sql);
            match applied.iter().find(|(v, _)| v == version) {
                Some((_, c)) if *c == checksum => continue,
                Some(_) => {
                    return Err(PgError::Schema(format!(
                        "the database {} has a schema version {version} that differs from this \
                         onboard's (its checksum does not match)",
                        config.url
                    )));
                }
                None if !create => continue,
                None => {}
            }
            let mut tx = client.transaction().map_err(fail)?;
            tx.batch_execute(sql).map_err(fail)?;
            tx.execute(
                "INSERT INTO onboard_schema (version, checksum, about, onboard) VALUES ($1, $2, $3, $4)",
                &[version, &checksum, about, &env!("CARGO_PKG_VERSION")],
            )
            .map_err(fail)?;
            tx.commit().map_err(fail)?;
        }
        Ok(true)
    })();
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&key]);
    result
}
