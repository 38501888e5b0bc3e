//! `shomei-backend backup FILE` and `shomei-backend restore FILE`: the
//! database copied while the backend serves (`VACUUM INTO`), and put back
//! with the backend stopped. A restored copy is checked whole first and then
//! migrated, so a backup from an older version comes back upgraded.
//! (The sealing key lives in the configuration: back it up with the config.)

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
