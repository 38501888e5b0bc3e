//! `shomei-backend backup FILE` and `shomei-backend restore FILE`: the
//! database copied while the backend serves (`VACUUM INTO`), and put back
//! with the backend stopped. A restored copy is checked whole first and then
//! migrated, so a backup from an older version comes back upgraded.
//! (The sealing key lives in the configuration: back it up with the config.)
//!
//! `shomei-backend copy-to-postgres URL`: a SQLite deployment moved to
//! PostgreSQL in one command (the backend stopped), every table checked.

use crate::store;
use anyhow::{bail, Context};
use std::path::Path;

/// Writes a consistent copy of the database to `dest` (which must not exist).
pub async fn backup(database_url: &str, dest: &Path) -> anyhow::Result<String> {
    if dest.exists() {
        bail!("{} exists already: back up into a new file", dest.display());
    }
    let pool = store::connect(database_url).await.context("opening the database")?;
    store::backup_into(&pool, dest).await.with_context(|| format!("writing {}", dest.display()))?;
    pool.close().await;
    let (integrity, migrations, orders) = store::inspect_backup(dest).await.context("reading the backup back")?;
    if integrity != "ok" {
        bail!("the backup in {} fails its integrity check: {integrity}", dest.display());
    }
    Ok(format!("backup written to {} ({migrations} migrations, {orders} orders)", dest.display()))
}

/// Replaces the database with the backup in `src` (the backend must be stopped).
pub async fn restore(database_url: &str, src: &Path) -> anyhow::Result<String> {
    let (integrity, _, orders) = store::inspect_backup(src).await.with_context(|| format!("{} is not a shomei backend database", src.display()))?;
    if integrity != "ok" {
        bail!("{} fails its integrity check ({integrity}): not restored", src.display());
    }
    let target = store::database_file(database_url)?;
    let tmp = target.with_extension("restoring");
    std::fs::copy(src, &tmp).with_context(|| format!("copying to {}", tmp.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", target.display()));
        if side.exists() {
            std::fs::remove_file(&side).with_context(|| format!("removing {}", side.display()))?;
        }
    }
    std::fs::rename(&tmp, &target).with_context(|| format!("replacing {}", target.display()))?;
    // an older backup is brought up to this version's schema now
    let pool = store::connect(database_url).await.context("migrating the restored database")?;
    pool.close().await;
    Ok(format!("restored {} into {} ({orders} orders)", src.display(), target.display()))
}

/// Copies the SQLite database of this deployment into the empty PostgreSQL
/// database `target_url` (migrated first), all or nothing, every table's
/// rows counted and checksummed on both sides. Refuses a non-empty target.
pub async fn copy_to_postgres(database_url: &str, target_url: &str) -> anyhow::Result<String> {
    if store::Engine::of_url(database_url)? != store::Engine::Sqlite {
        bail!("database.url is not a SQLite database: nothing to copy from");
    }
    if store::Engine::of_url(target_url)? != store::Engine::Postgres {
        bail!("the target {} is not a postgres:// URL", store::redact_url(target_url));
    }
    let src = store::connect(database_url).await.context("opening the SQLite database")?;
    let dst = store::connect(target_url).await.with_context(|| format!("opening {}", store::redact_url(target_url)))?;
    let copied = store::copy_database(&src, &dst).await.context("copying")?;
    src.close().await;
    dst.close().await;
    let mut out = String::new();
    let rows: i64 = copied.iter().map(|t| t.rows).sum();
    for t in &copied {
        out.push_str(&format!("{:<24} {:>8} rows  sha256 {}  (source and target agree)\n", t.table, t.rows, &t.source_sum[..16]));
    }
    out.push_str(&format!("copied {} tables, {rows} rows into {}", copied.len(), store::redact_url(target_url)));
    Ok(out)
}
