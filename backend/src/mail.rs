//! E-mail (SPEC M-1): every mail is written to the outbox in the same
//! transaction as the change that causes it; a worker sends it by SMTP and
//! marks it sent, retrying with backoff. Without an SMTP server configured,
//! mails stay in the outbox, which the admin panel shows.

use crate::store;
use crate::time::now;
use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use shomei_shared::{PrintNumber, Yen};
use sqlx::SqlitePool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

pub struct MailText {
    pub subject: String,
    pub body: String,
}

/// Who a mail is for: names in both scripts and the language they read first.
pub struct Recipient<'a> {
    pub name_ja: &'a str,
    pub name_en: &'a str,
    pub language: &'a str,
}

/// Both languages in every mail, the user's first.
fn bilingual(r: &Recipient<'_>, subject_ja: &str, subject_en: &str, ja: String, en: String) -> MailText {
    const RULE: &str = "\n----------------------------------------\n\n";
    if r.language == "en" {
        MailText { subject: format!("{subject_en} / {subject_ja}"), body: format!("{en}{RULE}{ja}") }
    } else {
        MailText { subject: format!("{subject_ja} / {subject_en}"), body: format!("{ja}{RULE}{en}") }
    }
}

/// The on-campus print number mail (O-3, O-5).
pub fn print_number_mail(
    to: &Recipient<'_>,
    number: &PrintNumber,
    lines: &[(String, String, i64)],
    total: Yen,
    deadline: &str,
    order_url: &str,
) -> MailText {
    let mut ja_lines = String::new();
    let mut en_lines = String::new();
    for (ja, en, n) in lines {
        ja_lines.push_str(&format!("  {ja} {n}通\n"));
        en_lines.push_str(&format!("  {en} x {n}\n"));
    }
    let grouped = number.grouped();
    bilingual(
        to,
        "【証明書発行】学内印刷番号のお知らせ",
        "Your on-campus print number",
        format!(
            "{name} 様\n\n証明書のお申し込みを受け付けました。\n学内の証明書発行機で次の印刷番号を入力し、ICカードでお支払いください。\n\n\
             学内印刷番号: {grouped}\n印刷期限: {deadline}\n金額: {total}\n{ja_lines}\n\
             期限を過ぎると印刷できません。\n申込内容: {order_url}\n",
            name = to.name_ja
        ),
        format!(
            "Dear {name},\n\nWe have received your certificate order.\n\
             Enter this number at an on-campus certificate printer and pay with your IC card.\n\n\
             On-campus print number: {grouped}\nPrint by: {deadline}\nAmount: {total}\n{en_lines}\n\
             After the deadline the number no longer prints.\nYour order: {order_url}\n",
            name = to.name_en
        ),
    )
}

/// Starts the outbox worker. `wake` lets request handlers nudge it after a commit.
pub fn spawn_worker(pool: SqlitePool, smtp: String, from: String, poll: Duration, wake: Arc<Notify>) {
    if smtp.is_empty() {
        tracing::info!("mail.smtp is empty: mails stay in the outbox (shown in the admin panel)");
        return;
    }
    tokio::spawn(async move {
        let (host, port) = match smtp.rsplit_once(':').and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p))) {
            Some((h, p)) => (h.to_string(), p),
            None => (smtp.clone(), 25),
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(Duration::from_secs(20)))
            .build();
        let from: Mailbox = match from.parse() {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "mail.from is not an address; mail worker stopped");
                return;
            }
        };
        loop {
            if let Err(e) = send_due(&pool, &transport, &from).await {
                tracing::warn!(error = %e, "mail outbox pass failed");
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    });
}

async fn send_due(
    pool: &SqlitePool,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
) -> anyhow::Result<()> {
    let mut c = pool.acquire().await?;
    let due = store::due_mails(&mut c, now(), 20).await?;
    drop(c);
    for m in due {
        let result = async {
            let msg = Message::builder()
                .from(from.clone())
                .to(m.to_addr.parse()?)
                .subject(m.subject.clone())
                .header(ContentType::TEXT_PLAIN)
                .body(m.body.clone())?;
            transport.send(msg).await?;
            anyhow::Ok(())
        }
        .await;
        let mut c = pool.acquire().await?;
        match result {
            Ok(()) => {
                store::mark_mail_sent(&mut c, m.id, now()).await?;
                tracing::info!(mail_id = m.id, "mail sent");
            }
            Err(e) => {
                // 30 s, 1 min, 2 min, ... up to an hour between attempts
                let backoff = (30i64 << m.attempts.min(7)).min(3600);
                store::mark_mail_failed(&mut c, m.id, &e.to_string(), now() + backoff).await?;
                tracing::warn!(mail_id = m.id, error = %e, backoff, "mail not sent, will retry");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_number_mail_has_both_languages_the_readers_first() {
        let n = PrintNumber::generate(&mut rand::thread_rng());
        let lines = [("卒業証明書".to_string(), "Certificate of Graduation".to_string(), 2)];
        let ja = Recipient { name_ja: "山田 花子", name_en: "YAMADA Hanako", language: "ja" };
        let m = print_number_mail(&ja, &n, &lines, Yen(700), "D", "U");
        assert!(m.subject.starts_with("【証明書発行】"));
        assert!(m.body.starts_with("山田 花子 様"));
        assert!(m.body.contains("Dear YAMADA Hanako,") && m.body.contains(&n.grouped()));
        assert!(m.body.contains("卒業証明書 2通") && m.body.contains("Certificate of Graduation x 2"));
        let en = Recipient { language: "en", ..ja };
        let m = print_number_mail(&en, &n, &lines, Yen(700), "D", "U");
        assert!(m.subject.starts_with("Your on-campus print number"));
        assert!(m.body.starts_with("Dear YAMADA Hanako,"));
        assert!(m.body.contains("¥700"));
    }
}
