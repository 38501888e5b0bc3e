//! The fleet of print stations as operators see it (A-5, ST-4): each
//! station's condition in colour AND words, the alerts mailed to operators
//! when a station goes offline or its printer needs attention (once per
//! incident, and once when it is fine again), and the 24-hour charts.

use crate::error::AppResult;
use crate::mail;
use crate::store::{self, Station};
use crate::time::now;
use shomei_shared::api::{Marker, PrinterStatus};
use crate::store::Pool;

/// How bad: `ok` (green), `warn` (amber), `bad` (red), `off` (grey, not in service).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Condition {
    pub level: &'static str,
    pub ja: String,
    pub en: String,
    /// What operators are alerted about; empty when nothing is.
    pub alert: String,
}

fn cond(level: &'static str, ja: impl Into<String>, en: impl Into<String>, alert: impl Into<String>) -> Condition {
    Condition { level, ja: ja.into(), en: en.into(), alert: alert.into() }
}

/// Printer-state-reasons in words (the base keyword, severity suffix removed).
fn reason_words(reason: &str) -> Option<(&'static str, &'static str)> {
    let base = reason.trim_end_matches("-report").trim_end_matches("-warning").trim_end_matches("-error");
    Some(match base {
        "media-empty" | "media-needed" => ("用紙切れ", "out of paper"),
        "media-low" => ("用紙残少", "paper low"),
        "media-jam" => ("紙づまり", "paper jam"),
        "toner-empty" | "marker-supply-empty" => ("トナー切れ", "out of toner"),
        "toner-low" | "marker-supply-low" => ("トナー残少", "toner low"),
        "door-open" | "cover-open" => ("カバーが開いています", "a cover is open"),
        "input-tray-missing" => ("給紙トレイなし", "paper tray missing"),
        "output-area-full" => ("排紙トレイが満杯", "output tray full"),
        "paused" => ("一時停止中", "paused"),
        "offline" | "shutdown" => ("プリンタ停止", "printer offline"),
        "spool-area-full" => ("スプール満杯", "spool full"),
        _ => return None,
    })
}

/// What the station says when its printer has no A4 loaded (certificates are A4).
pub const NO_A4: (&str, &str) = ("A4 用紙が入っていません", "no A4 paper loaded");

/// Whether the media the printer reports loaded (`media-ready`, comma-separated
/// as stored) lack A4; false when it reports none (unknown is not a warning).
pub fn lacks_a4(media_ready: &str) -> bool {
    let media: Vec<&str> = media_ready.split(',').map(str::trim).filter(|m| !m.is_empty()).collect();
    !media.is_empty() && !media.iter().any(|m| m.starts_with("iso_a4_"))
}

/// One medium (an IPP media keyword) in words.
fn medium_words(m: &str) -> (&'static str, &'static str) {
    let prefix = |p: &str| m.starts_with(p);
    if prefix("iso_a4_") {
        ("A4", "A4")
    } else if prefix("iso_a3_") {
        ("A3", "A3")
    } else if prefix("iso_a5_") {
        ("A5", "A5")
    } else if prefix("jis_b5_") {
        ("B5", "B5")
    } else if prefix("jis_b4_") {
        ("B4", "B4")
    } else if prefix("na_letter_") {
        ("レター（米国）", "US Letter")
    } else if prefix("na_legal_") {
        ("リーガル（米国）", "US Legal")
    } else if prefix("na_number-10_") || prefix("iso_dl_") || m.contains("env") {
        ("封筒", "envelope")
    } else {
        ("その他の用紙", "other paper")
    }
}

/// The media loaded, in words ("A4・封筒" / "A4, envelope"); "-" when not reported.
pub fn media_words(media_ready: &str) -> (String, String) {
    let mut words: Vec<(&str, &str)> = Vec::new();
    for m in media_ready.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let w = medium_words(m);
        if !words.contains(&w) {
            words.push(w);
        }
    }
    if words.is_empty() {
        return ("-".into(), "-".into());
    }
    (words.iter().map(|w| w.0).collect::<Vec<_>>().join("・"), words.iter().map(|w| w.1).collect::<Vec<_>>().join(", "))
}

/// printer-state in words.
pub fn state_words(state: Option<&str>) -> (&'static str, &'static str) {
    match state {
        None => ("-", "-"),
        Some("idle") => ("待機中", "idle"),
        Some("processing") => ("印刷中", "printing"),
        Some("stopped") => ("停止中", "stopped"),
        Some(_) => ("不明", "unknown"),
    }
}

/// printer-state-reasons (comma-separated, as stored) in words: the known
/// ones named, the others counted; never the printer's keywords.
pub fn reasons_words(reasons: &str) -> (String, String) {
    let (mut ja, mut en, mut other) = (Vec::<String>::new(), Vec::<String>::new(), 0);
    for r in reasons.split(',').map(str::trim).filter(|r| !r.is_empty() && *r != "none") {
        match reason_words(r) {
            Some((j, e)) if !ja.iter().any(|x| x == j) => {
                ja.push(j.into());
                en.push(e.into());
            }
            Some(_) => {}
            None => other += 1,
        }
    }
    if other > 0 {
        ja.push(format!("その他の通知 {other}件"));
        en.push(if other == 1 { "1 other notice".to_string() } else { format!("{other} other notices") });
    }
    if ja.is_empty() {
        return ("通知なし".into(), "no alerts".into());
    }
    (ja.join("・"), en.join(", "))
}

/// How urgent a level is: bad first, then warn, then ok, then off.
pub fn urgency(level: &str) -> u8 {
    match level {
        "bad" => 0,
        "warn" => 1,
        "ok" => 2,
        _ => 3,
    }
}

/// Whether a station at this level needs someone to look at it.
pub fn needs_attention(level: &str) -> bool {
    matches!(level, "bad" | "warn")
}

/// The station's condition now.
pub fn condition(s: &Station, offline_after_s: i64) -> Condition {
    match s.status.as_str() {
        "revoked" => return cond("off", "失効（使用停止）", "revoked: out of service", ""),
        "pending" => return cond("off", "登録待ち", "awaiting enrolment", ""),
        _ => {}
    }
    if s.last_seen.is_none() && s.enrolled_at.is_some_and(|at| now() - at <= offline_after_s) {
        // just enrolled, its first heartbeat on the way: not an incident to mail about
        return cond("off", "初回の通信待ち", "waiting for its first heartbeat", "");
    }
    if !crate::stations::is_online(s, offline_after_s) {
        let since = s.last_seen.map(|t| crate::time::local_text(t, crate::time::tz("Asia/Tokyo"))).unwrap_or_else(|| "-".into());
        return cond("bad", format!("オフライン（最終通信 {since}）"), format!("offline (last seen {since})"), "offline");
    }
    if !s.in_service {
        // taken out of service on purpose: said so, not alerted on
        return cond("off", "休止中（保守）", "out of service (maintenance)", "");
    }
    let status = PrinterStatus {
        reachable: s.printer_reachable.unwrap_or(false),
        state: s.printer_state.clone().unwrap_or_default(),
        reasons: s.printer_reasons.clone().unwrap_or_default().split(',').filter(|r| !r.is_empty() && *r != "none").map(str::to_string).collect(),
        ..PrinterStatus::default()
    };
    if !status.reachable {
        return cond("bad", "プリンタが応答しません", "the printer does not respond", "printer:unreachable");
    }
    let words: Vec<(&str, &str)> = status.reasons.iter().filter_map(|r| reason_words(r)).collect();
    let join = |w: &[(&str, &str)]| (w.iter().map(|x| x.0).collect::<Vec<_>>().join("・"), w.iter().map(|x| x.1).collect::<Vec<_>>().join(", "));
    if !status.can_print() {
        let (ja, en) = if words.is_empty() { ("プリンタ停止中".to_string(), "the printer is stopped".to_string()) } else { join(&words) };
        return cond("bad", ja, en.clone(), format!("printer:{en}"));
    }
    if s.reader_present == Some(false) {
        return cond("bad", "カードリーダがありません", "the card reader is missing", "reader");
    }
    let markers: Vec<Marker> = serde_json::from_str(&s.markers).unwrap_or_default();
    let low: Vec<&Marker> = markers.iter().filter(|m| m.is_low()).collect();
    // certificates print on A4: a printer without it loaded is flagged before anyone pays
    let mut words = words;
    if lacks_a4(&s.media_ready) {
        words.insert(0, NO_A4);
    }
    if !words.is_empty() || !low.is_empty() {
        let (mut ja, mut en) = join(&words);
        for m in low {
            let sep = if ja.is_empty() { "" } else { "・" };
            ja = format!("{ja}{sep}{} 残り{}%", m.name, m.level);
            let sep = if en.is_empty() { "" } else { ", " };
            en = format!("{en}{sep}{} at {}%", m.name, m.level);
        }
        return cond("warn", ja, en.clone(), format!("supplies:{en}"));
    }
    if s.outbox_len.unwrap_or(0) > 0 {
        let n = s.outbox_len.unwrap_or(0);
        return cond("warn", format!("未送信の報告 {n}件"), format!("{n} reports not synced yet"), "");
    }
    if status.state == "processing" {
        return cond("ok", "印刷中", "printing", "");
    }
    cond("ok", "稼働中", "ready", "")
}

/// Mails operators about every station whose alert changed since the last
/// pass (a new problem, or fine again) and remembers it. Idempotent: a
/// second pass with nothing changed sends nothing. Returns mails queued.
pub async fn alert_pass(pool: &Pool, seal: &crate::sealed::SealKey, offline_after_s: i64, operators: &[String], public_url: &str) -> AppResult<usize> {
    let mut tx = store::begin_write(pool).await?;
    let mut sent = 0;
    // the platform's addresses get every station's alerts, a university's its own stations'
    let mut lists: std::collections::HashMap<i64, Vec<String>> = std::collections::HashMap::new();
    for s in store::stations(&mut tx).await? {
        if s.status != "active" {
            continue;
        }
        let c = condition(&s, offline_after_s);
        if c.alert == s.alert {
            continue;
        }
        store::set_station_alert(&mut tx, s.id, &c.alert).await?;
        tracing::warn!(station = %s.name, before = %s.alert, now = %c.alert, "station alert changed");
        let link = format!("{public_url}/admin/stations/{}", s.id);
        let m = if c.alert.is_empty() { mail::station_recovered_mail(&s.name, &link) } else { mail::station_alert_mail(&s.name, &c.ja, &c.en, &link) };
        for to in recipients(&mut tx, &mut lists, operators, s.university_id).await? {
            m.enqueue(&mut tx, seal, &to).await?;
            sent += 1;
        }
    }
    // claims the backend refused (a station lying about money or prints)
    for claim in store::take_unalerted_claims(&mut tx).await? {
        let link = format!("{public_url}/admin/stations");
        let ja = format!("ステーションの申告を拒否しました（{}、注文 {}）：{}", claim.kind, claim.order_id.unwrap_or_default(), claim.reason);
        let en = format!("a claim of this station was refused ({}, order {}): {}", claim.kind, claim.order_id.unwrap_or_default(), claim.reason);
        let m = mail::station_alert_mail(&claim.station, &ja, &en, &link);
        for to in recipients(&mut tx, &mut lists, operators, claim.university_id).await? {
            m.enqueue(&mut tx, seal, &to).await?;
            sent += 1;
        }
    }
    if sent > 0 {
        store::audit(&mut tx, "system", "station.alert", &format!("{sent} mails"), now()).await?;
    }
    tx.commit().await?;
    Ok(sent)
}

/// Who is mailed about a station of `university_id`: the platform's
/// addresses and the university's own (each list read once per pass).
async fn recipients(tx: &mut store::Conn, lists: &mut std::collections::HashMap<i64, Vec<String>>, operators: &[String], university_id: i64) -> AppResult<Vec<String>> {
    if let Some(l) = lists.get(&university_id) {
        return Ok(l.clone());
    }
    let own = store::university_alert_emails(tx, university_id).await?;
    let mut all: Vec<String> = operators.iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    for a in split_addresses(&own) {
        if !all.contains(&a) {
            all.push(a);
        }
    }
    lists.insert(university_id, all.clone());
    Ok(all)
}

/// The addresses of a comma- (or line-) separated list, trimmed, empty ones dropped.
pub fn split_addresses(list: &str) -> Vec<String> {
    list.split([',', '\n', ';']).map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect()
}

/// One chart: an SVG polyline/bars for 24 hours, drawn on the server (no script needed).
pub struct Charts {
    /// Minutes with a heartbeat in each hour (0-60), oldest hour first.
    pub online_minutes: Vec<i64>,
    /// Jobs printed in each hour.
    pub jobs: Vec<i64>,
    /// Lowest supply level seen in each hour (per cent), None when unknown.
    pub supply: Vec<Option<i64>>,
    /// Minutes in each hour the printer could not print.
    pub blocked_minutes: Vec<i64>,
}

/// The last 24 hours of a station, per hour.
pub async fn charts(pool: &Pool, station_id: i64) -> AppResult<Charts> {
    let end = now() - now() % 3600 + 3600;
    let start = end - 24 * 3600;
    let mut c = pool.acquire().await?;
    let samples = store::station_samples(&mut c, station_id, start).await?;
    let mut out = Charts { online_minutes: vec![0; 24], jobs: vec![0; 24], supply: vec![None; 24], blocked_minutes: vec![0; 24] };
    let mut last_jobs: Option<i64> = None;
    for s in &samples {
        let Ok(h) = usize::try_from((s.at - start) / 3600) else { continue };
        if h >= 24 {
            continue;
        }
        out.online_minutes[h] += 1;
        if !s.printer_ready {
            out.blocked_minutes[h] += 1;
        }
        if let Some(level) = s.supply_level {
            out.supply[h] = Some(out.supply[h].map_or(level, |l| l.min(level)));
        }
        if let Some(prev) = last_jobs {
            out.jobs[h] += (s.jobs_printed - prev).max(0);
        }
        last_jobs = Some(s.jobs_printed);
    }
    Ok(out)
}

/// Bars as SVG (`max` is the top of the scale), with a text title for screen readers.
pub fn bar_svg(title: &str, values: &[i64], max: i64, colour: &str) -> String {
    let (w, h, bar) = (480, 90, 20);
    let max = max.max(1);
    let mut bars = String::new();
    for (i, v) in values.iter().enumerate() {
        let bh = (*v).clamp(0, max) * (h - 10) / max;
        bars.push_str(&format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\"><title>{v}</title></rect>",
            i * bar,
            h - bh,
            bar - 2,
            bh
        ));
    }
    format!(
        "<svg role=\"img\" aria-label=\"{t}\" viewBox=\"0 0 {w} {h}\" width=\"100%\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{t}</title>\
         <line x1=\"0\" y1=\"{h}\" x2=\"{w}\" y2=\"{h}\" stroke=\"#888\"/>{bars}</svg>",
        t = html_escape(title)
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn station() -> Station {
        Station {
            id: 1,
            university_id: 1,
            name: "Library".into(),
            status: "active".into(),
            created_at: 0,
            enrolled_at: Some(0),
            last_seen: Some(now()),
            version: None,
            printer_reachable: Some(true),
            printer_state: Some("idle".into()),
            printer_reasons: Some("none".into()),
            printer_message: None,
            reader_present: Some(true),
            outbox_len: Some(0),
            clock_skew_s: Some(0),
            markers: "[]".into(),
            media_ready: String::new(),
            terminal_present: None,
            disk_free_mb: None,
            uptime_s: None,
            jobs_printed: 0,
            alert: String::new(),
            in_service: true,
            test_page_wanted: 0,
            test_page_done: 0,
            test_page_result: String::new(),
            test_page_at: None,
        }
    }

    #[test]
    fn conditions_are_named_in_words_and_levels() {
        assert_eq!(condition(&station(), 30).en, "ready");
        let mut s = station();
        s.printer_reasons = Some("media-empty-report".into());
        let c = condition(&s, 30);
        assert_eq!((c.level, c.ja.as_str(), c.en.as_str(), c.alert.as_str()), ("bad", "用紙切れ", "out of paper", "printer:out of paper"));
        let mut s = station();
        s.markers = r#"[{"name":"Black Toner","kind":"toner","level":4,"low":10}]"#.into();
        let c = condition(&s, 30);
        assert_eq!((c.level, c.en.as_str()), ("warn", "Black Toner at 4%"));
        let mut s = station();
        s.last_seen = Some(now() - 100);
        assert_eq!(condition(&s, 30).alert, "offline");
        s.status = "revoked".into();
        assert_eq!((condition(&s, 30).level, condition(&s, 30).alert.as_str()), ("off", ""));
    }

    #[test]
    fn a_printer_without_a4_loaded_is_a_warning_in_words() {
        let mut s = station();
        s.media_ready = "na_letter_8.5x11in,na_number-10_4.125x9.5in".into();
        let c = condition(&s, 30);
        assert_eq!((c.level, c.ja.as_str(), c.en.as_str()), ("warn", "A4 用紙が入っていません", "no A4 paper loaded"));
        assert_eq!(media_words(&s.media_ready), ("レター（米国）・封筒".to_string(), "US Letter, envelope".to_string()));
        s.media_ready = "iso_a4_210x297mm,na_number-10_4.125x9.5in".into();
        assert_eq!(condition(&s, 30).en, "ready");
        // not reported: not a warning
        s.media_ready = String::new();
        assert_eq!(condition(&s, 30).en, "ready");
        // out of paper says so first
        s.media_ready = "na_letter_8.5x11in".into();
        s.printer_reasons = Some("media-empty-report".into());
        assert_eq!(condition(&s, 30).en, "out of paper");
    }

    #[test]
    fn printer_states_and_reasons_are_words_never_keywords() {
        assert_eq!(reasons_words("none"), ("通知なし".to_string(), "no alerts".to_string()));
        assert_eq!(reasons_words("media-empty-report,media-needed-error"), ("用紙切れ".to_string(), "out of paper".to_string()));
        assert_eq!(reasons_words("toner-low-report,moving-to-paused"), ("トナー残少・その他の通知 1件".to_string(), "toner low, 1 other notice".to_string()));
        assert_eq!(state_words(Some("idle")), ("待機中", "idle"));
        assert_eq!(state_words(None), ("-", "-"));
        let order = ["off", "ok", "bad", "warn"].map(urgency);
        assert_eq!(order, [3, 2, 0, 1]);
    }

    #[test]
    fn a_station_just_enrolled_is_not_offline_until_its_first_heartbeat_is_late() {
        let mut s = station();
        s.last_seen = None;
        s.enrolled_at = Some(now() - 5);
        let c = condition(&s, 30);
        assert_eq!((c.level, c.en.as_str(), c.alert.as_str()), ("off", "waiting for its first heartbeat", ""));
        s.enrolled_at = Some(now() - 100);
        assert_eq!(condition(&s, 30).alert, "offline", "enrolled long ago and never heard from");
    }

    #[test]
    fn charts_are_svg_with_a_title() {
        let svg = bar_svg("Jobs <per hour>", &[0, 3, 10], 10, "#2a6");
        assert!(svg.starts_with("<svg") && svg.contains("Jobs &lt;per hour&gt;") && svg.matches("<rect").count() == 3);
    }
}
