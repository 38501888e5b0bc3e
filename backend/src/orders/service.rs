//! Service hours (O-7): ordering is open 24/7 except in maintenance windows and
//! suspension periods that staff set; inside one, ordering is refused with a
//! message that says until when.

use crate::accounts::{self, Client};
use crate::error::{AppError, AppResult};
use crate::store;
use crate::time;
use crate::store::Pool;

/// The refusal, in both languages, naming the end of the break.
pub fn closed_message(b: &store::ServiceBreak) -> String {
    let until = time::jst_text(b.ends_at);
    let (what_ja, what_en) = if b.kind == "suspension" { ("受付を停止しています", "Ordering is suspended") } else { ("メンテナンス中です", "The service is under maintenance") };
    let note = |n: &str| if n.is_empty() { String::new() } else { format!(" {n}") };
    format!(
        "{what_ja}。{until} まで申込できません。{} / {what_en} until {until}: orders cannot be placed before then.{}",
        note(&b.note_ja),
        note(&b.note_en)
    )
}

/// Err with the message when ordering is closed for this university now.
pub async fn check_open(c: &mut store::Conn, university_id: i64) -> AppResult<()> {
    match store::current_break(c, university_id, time::now()).await? {
        Some(b) => Err(AppError::Page(closed_message(&b))),
        None => Ok(()),
    }
}

/// Staff set a break: times as typed in Japan time ("2026-12-01T02:00").
pub async fn add_break(
    pool: &Pool,
    staff: &store::Staff,
    client: Client<'_>,
    kind: &str,
    starts: &str,
    ends: &str,
    note_ja: &str,
    note_en: &str,
) -> AppResult<i64> {
    let parse = |s: &str| {
        chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M")
            .ok()
            .and_then(|d| d.and_local_timezone(chrono_tz::Asia::Tokyo).single())
            .map(|d| d.timestamp())
    };
    let (Some(a), Some(b)) = (parse(starts), parse(ends)) else {
        return Err(AppError::Page("開始と終了の日時を入力してください（日本時間）。 / Give the start and end (Japan time).".into()));
    };
    if b <= a {
        return Err(AppError::Page("終了は開始より後にしてください。 / The end must come after the start.".into()));
    }
    if !["maintenance", "suspension"].contains(&kind) {
        return Err(AppError::Page(crate::messages::CHECK_INPUT.into()));
    }
    let mut tx = store::begin_write(pool).await?;
    let id = store::insert_break(
        &mut tx,
        &store::NewBreak { university_id: staff.university_id, kind, starts_at: a, ends_at: b, note_ja: note_ja.trim(), note_en: note_en.trim(), staff_id: staff.id, now: time::now() },
    )
    .await?;
    accounts::audit(&mut tx, &format!("staff:{}", staff.login), "service_break.add", &format!("break:{id}"), client).await?;
    tx.commit().await?;
    Ok(id)
}

pub async fn remove_break(pool: &Pool, staff: &store::Staff, client: Client<'_>, id: i64) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    if !store::delete_break(&mut tx, staff.university_id, id).await? {
        return Err(crate::error::AppError::PageNotFound);
    }
    accounts::audit(&mut tx, &format!("staff:{}", staff.login), "service_break.remove", &format!("break:{id}"), client).await?;
    tx.commit().await?;
    Ok(())
}
