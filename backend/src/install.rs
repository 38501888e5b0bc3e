//! The first install of a real deployment (no demo data): the university and
//! its first administrator, whose initial password and second factor are
//! printed once on the server's console. Everything else (staff, catalogue,
//! seal, stations) is then set up in the admin panel.

use crate::accounts::{self, SecondFactor};
use crate::accounts::passwords;
use crate::store;
use crate::time::now;
use crate::AppState;

pub struct FirstAdmin {
    pub university_id: i64,
    pub initial_password: String,
    pub factor: SecondFactor,
}

/// Creates the university and its administrator in an empty, non-demo database.
pub async fn first_install(state: &AppState, name_ja: &str, name_en: &str, timezone: &str, admin_login: &str) -> anyhow::Result<FirstAdmin> {
    let login = admin_login.trim();
    if login.is_empty() || login.len() > 40 || !login.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        anyhow::bail!("the login is up to 40 letters, digits, dots, dashes or underscores");
    }
    if name_ja.trim().is_empty() || name_en.trim().is_empty() {
        anyhow::bail!("the university needs a Japanese and an English name");
    }
    if timezone.parse::<chrono_tz::Tz>().is_err() {
        anyhow::bail!("{timezone:?} is not a time zone name like Asia/Tokyo");
    }
    let password = passwords::initial_password();
    let hash = state.hasher.hash(&password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = store::begin_write(&state.pool).await?;
    if store::deployment_is_demo(&mut tx).await? == Some(true) {
        anyhow::bail!("this database was created as a demo; install into a new database");
    }
    if store::university_count(&mut tx).await? > 0 {
        anyhow::bail!("this database has a university already");
    }
    store::set_deployment(&mut tx, false, now()).await?;
    let university_id = store::insert_university(&mut tx, name_ja.trim(), name_en.trim(), timezone, 0).await?;
    let staff_id = store::insert_staff(&mut tx, login, login, &hash, "admin", "", now()).await?;
    let factor = accounts::new_second_factor(&state.seal, &mut tx, staff_id, login).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    store::audit(&mut tx, "console", "install", &format!("university {university_id}; admin staff:{login}"), now()).await?;
    tx.commit().await?;
    Ok(FirstAdmin { university_id, initial_password: password, factor })
}
