//! Universities come into being here: the first install of a real deployment
//! (no demo data) makes the first university and its administrator, who also
//! runs the platform; later universities are added by a platform operator in
//! the panel or by `shomei-backend add-university`, each with its own first
//! administrator. Each administrator's initial password and second factor are
//! shown once. Everything else (staff, catalogue, seal, stations) is then set
//! up in the admin panel by the university's own staff.

use crate::accounts::{self, SecondFactor};
use crate::accounts::passwords;
use crate::store;
use crate::time::now;
use crate::AppState;

pub struct FirstAdmin {
    pub university_id: i64,
    pub login: String,
    pub initial_password: String,
    pub factor: SecondFactor,
}

/// A new university as asked for (checked): its names, time zone and administrator's login.
pub struct NewUniversity<'a> {
    pub name_ja: &'a str,
    pub name_en: &'a str,
    pub timezone: &'a str,
    pub admin_login: &'a str,
}

impl NewUniversity<'_> {
    /// What is wrong with it, in both languages (the panel shows it; the command prints it).
    pub fn check(&self) -> Result<(), &'static str> {
        let login = self.admin_login.trim();
        if login.is_empty() || login.len() > 40 || !login.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            return Err("管理者のログインIDは40文字以内の英数字（. _ - 可）にしてください。 / The administrator's login is up to 40 letters, digits, dots, dashes or underscores.");
        }
        if self.name_ja.trim().is_empty() || self.name_en.trim().is_empty() || self.name_ja.chars().count() > 100 || self.name_en.chars().count() > 100 {
            return Err("大学名を日本語と英語で（各100文字以内）入力してください。 / Give the university's name in Japanese and in English (up to 100 characters each).");
        }
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err("タイムゾーンは Asia/Tokyo のような名前で入力してください。 / Give the time zone as a name like Asia/Tokyo.");
        }
        Ok(())
    }
}

/// Why a university could not be added.
#[derive(Debug)]
pub enum AddError {
    /// Something to tell whoever asked (both languages).
    Refused(&'static str),
    Other(anyhow::Error),
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::Refused(m) => f.write_str(m),
            AddError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for AddError {
    fn from(e: E) -> Self {
        AddError::Other(e.into())
    }
}

const LOGIN_TAKEN: &str = "このログインIDはすでに使われています。 / This login ID is taken.";

/// Writes the university and its administrator in `tx`.
async fn insert(state: &AppState, tx: &mut store::Conn, u: &NewUniversity<'_>, password_hash: &str, actor: &str) -> Result<(i64, i64, SecondFactor), AddError> {
    let login = u.admin_login.trim();
    if store::staff_by_login(tx, login).await?.is_some() {
        return Err(AddError::Refused(LOGIN_TAKEN));
    }
    let university_id = store::insert_university(tx, u.name_ja.trim(), u.name_en.trim(), u.timezone, 0).await?;
    let staff_id = store::insert_staff(tx, university_id, login, login, password_hash, "admin", "", now()).await?;
    let factor = accounts::new_second_factor(&state.seal, tx, staff_id, login).await.map_err(|e| AddError::Other(anyhow::anyhow!("{e}")))?;
    store::audit(tx, actor, "university.add", &format!("university {university_id}; admin staff:{login}"), now()).await?;
    Ok((university_id, staff_id, factor))
}

/// Creates the university and its administrator (a platform operator) in an empty, non-demo database.
pub async fn first_install(state: &AppState, name_ja: &str, name_en: &str, timezone: &str, admin_login: &str) -> anyhow::Result<FirstAdmin> {
    let u = NewUniversity { name_ja, name_en, timezone, admin_login };
    u.check().map_err(|m| anyhow::anyhow!(m))?;
    let password = passwords::initial_password();
    let hash = state.hasher.hash(&password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tx = store::begin_write(&state.pool).await?;
    if store::deployment_is_demo(&mut tx).await? == Some(true) {
        anyhow::bail!("this database was created as a demo; install into a new database");
    }
    if store::university_count(&mut tx).await? > 0 {
        anyhow::bail!("this database has a university already: add more with add-university");
    }
    store::set_deployment(&mut tx, false, now()).await?;
    let (university_id, staff_id, factor) = insert(state, &mut tx, &u, &hash, "console").await.map_err(|e| anyhow::anyhow!("{e}"))?;
    store::set_staff_platform(&mut tx, staff_id).await?;
    store::audit(&mut tx, "console", "install", &format!("university {university_id}; platform operator staff:{}", admin_login.trim()), now()).await?;
    tx.commit().await?;
    Ok(FirstAdmin { university_id, login: admin_login.trim().to_string(), initial_password: password, factor })
}

/// Adds a university to a running platform, usable at once (no restart):
/// its administrator logs in with the initial password and second factor
/// returned (shown once), and sets up the catalogue, seal, staff and stations.
pub async fn add_university(state: &AppState, u: &NewUniversity<'_>, actor: &str) -> Result<FirstAdmin, AddError> {
    u.check().map_err(AddError::Refused)?;
    let password = passwords::initial_password();
    let hash = state.hasher.hash(&password).await.map_err(|e| AddError::Other(anyhow::anyhow!("{e}")))?;
    let mut tx = store::begin_write(&state.pool).await?;
    if store::university_count(&mut tx).await? == 0 {
        return Err(AddError::Refused("最初の大学は init で作成してください。 / Make the first university with init."));
    }
    let (university_id, _, factor) = insert(state, &mut tx, u, &hash, actor).await?;
    tx.commit().await?;
    tracing::info!(university_id, admin = u.admin_login.trim(), "university added");
    Ok(FirstAdmin { university_id, login: u.admin_login.trim().to_string(), initial_password: password, factor })
}
