//! The demo data an empty database gets when `demo_data = true`.

use crate::accounts::hash_password;
use crate::store;
use crate::time::now;
use sqlx::SqlitePool;

pub const GRADUATE_EMAIL: &str = "hanako@example.ac.jp";
pub const GRADUATE_PASSWORD: &str = "Hanako2024pass";
pub const GRADUATE_SECOND_PASSWORD: &str = "Second2024pass";
pub const STAFF_LOGIN: &str = "staff";
pub const STAFF_PASSWORD: &str = "Staff2024pass";
/// The demo IC card (FeliCa IDm) linked to the graduate.
pub const CARD_UID: &str = "012E4CD8A1B2C3D4";
pub const CARD_BALANCE: i64 = 3000;

pub async fn seed_if_empty(pool: &SqlitePool) -> anyhow::Result<()> {
    let mut tx = store::begin_write(pool).await?;
    if store::university_count(&mut tx).await? > 0 {
        return Ok(());
    }
    store::seed_demo(
        &mut tx,
        &store::DemoSeed {
            graduate_email: GRADUATE_EMAIL,
            graduate_password_hash: &hash_password(GRADUATE_PASSWORD)?,
            graduate_second_hash: &hash_password(GRADUATE_SECOND_PASSWORD)?,
            staff_login: STAFF_LOGIN,
            staff_password_hash: &hash_password(STAFF_PASSWORD)?,
            card_uid: CARD_UID,
            card_balance: CARD_BALANCE,
            now: now(),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!("demo data loaded");
    Ok(())
}
