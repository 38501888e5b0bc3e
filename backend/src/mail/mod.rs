//! E-mail (SPEC M-1): every mail is written to the outbox in the same
//! transaction as the change that causes it; a worker sends it by SMTP and
//! marks it sent, retrying with backoff. Without an SMTP server configured,
//! mails stay in the outbox, which the admin panel shows.

use crate::sealed::SealKey;
use crate::store;
use crate::time::now;
use lettre::message::{header::ContentType, Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use shomei_shared::{PrintNumber, Yen};
use crate::store::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct MailText {
    pub subject: String,
    pub body: String,
    /// The same text as HTML (links clickable), sent as the alternative part.
    pub html: String,
    /// The sender's display name (a university's, on mails about its orders); empty: none.
    pub sender: String,
}

/// What is sealed in an outbox row.
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedBody {
    text: String,
    html: String,
}

/// Bodies are bound to their recipient: a sealed body copied to another row does not open.
fn body_aad(to: &str) -> String {
    format!("outbox:{to}")
}

impl MailText {
    /// Writes the mail to the outbox on `c` (the caller's transaction), its
    /// body sealed under the data key.
    /// A mail to someone who belongs to one university (a student, a
    /// graduate, an applicant) is signed by that university's office.
    pub async fn enqueue(&self, c: &mut store::Conn, seal: &SealKey, to: &str) -> Result<i64, sqlx::Error> {
        match store::person_office(c, to).await? {
            Some(office) => self.clone().signed_by(&office).write(c, seal, to).await,
            None => self.write(c, seal, to).await,
        }
    }

    async fn write(&self, c: &mut store::Conn, seal: &SealKey, to: &str) -> Result<i64, sqlx::Error> {
        let body = serde_json::to_string(&SealedBody { text: self.body.clone(), html: self.html.clone() }).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        let sealed = seal.seal_str(&body, &body_aad(to)).map_err(|e| sqlx::Error::Protocol(format!("sealing a mail: {e}")))?;
        store::enqueue_mail(c, to, &self.subject, &sealed, &self.sender, now()).await
    }

    /// The mail signed by a university's office: its footer names the desk to
    /// contact (hours, phone, e-mail) instead of "the university office", and it
    /// goes out under the university's sender name. An office left empty changes nothing.
    pub fn signed_by(mut self, office: &store::Office) -> MailText {
        let join = |parts: &[&str], sep: &str| parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(sep);
        if !office.desk_ja.trim().is_empty() || !office.desk_en.trim().is_empty() {
            let reach = join(&[&office.contact_phone, &office.contact_email], " / ");
            let ja = join(&[&office.desk_ja, &reach, &office.hours_ja], "　");
            let en = join(&[&office.desk_en, &reach, &office.hours_en], ", ");
            self.body = self
                .body
                .replace(FOOTER_JA, &format!("\n※このメールは送信専用です。お問い合わせは次の窓口へお願いします: {ja}\n"))
                .replace(FOOTER_EN, &format!("\nThis mail is sent from an address that receives no replies. For questions, contact: {en}\n"));
            self.html = to_html(&self.body);
        }
        self.sender = office.mail_sender.trim().to_string();
        self
    }

    /// Writes a mail about an order, signed by the office of the order's university.
    pub async fn enqueue_for_order(self, c: &mut store::Conn, seal: &SealKey, to: &str, order_id: i64) -> Result<i64, sqlx::Error> {
        let office = store::order_office(c, order_id).await?;
        self.signed_by(&office).write(c, seal, to).await
    }
}

/// Opens an outbox row's body: (text, html).
pub fn open_body(seal: &SealKey, m: &store::Mail) -> anyhow::Result<(String, String)> {
    let sealed = m.sealed.as_deref().ok_or_else(|| anyhow::anyhow!("the body is gone (delivered)"))?;
    let json = seal.open_str(sealed, &body_aad(&m.to_addr)).map_err(|e| anyhow::anyhow!("opening mail {}: {e}", m.id))?;
    let b: SealedBody = serde_json::from_str(&json)?;
    Ok((b.text, b.html))
}

/// Seals the bodies of rows written before bodies were sealed (and empties
/// those already sent). Idempotent; run at start.
pub async fn seal_plain_outbox(pool: &Pool, seal: &SealKey) -> anyhow::Result<usize> {
    const PASS: &str = "seal-outbox";
    let mut tx = store::begin_write(pool).await?;
    if store::maintenance_done(&mut tx, PASS).await? {
        return Ok(0);
    }
    let rows = store::plain_mails(&mut tx).await?;
    for (id, to, text, html, sent) in &rows {
        if *sent {
            store::set_mail_sealed(&mut tx, *id, None).await?;
        } else {
            let body = serde_json::to_string(&SealedBody { text: text.clone(), html: html.clone() })?;
            let sealed = seal.seal_str(&body, &body_aad(to)).map_err(|e| anyhow::anyhow!("{e}"))?;
            store::set_mail_sealed(&mut tx, *id, Some(&sealed)).await?;
        }
    }
    store::mark_maintenance_done(&mut tx, PASS, now()).await?;
    tx.commit().await?;
    Ok(rows.len())
}

/// Plain text to HTML: escaped, line breaks kept, URLs as links.
fn to_html(text: &str) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"></head><body><div style=\"font-family:sans-serif;white-space:pre-wrap;line-height:1.6\">",
    );
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for (j, word) in line.split(' ').enumerate() {
            if j > 0 {
                out.push(' ');
            }
            let esc = html_escape(word);
            if word.starts_with("http://") || word.starts_with("https://") {
                out.push_str(&format!("<a href=\"{esc}\">{esc}</a>"));
            } else {
                out.push_str(&esc);
            }
        }
    }
    out.push_str("</div></body></html>");
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// Who a mail is for: names in both scripts and the language they read first.
pub struct Recipient<'a> {
    pub name_ja: &'a str,
    pub name_en: &'a str,
    pub language: &'a str,
}

/// Both languages in every mail, the user's first.
const FOOTER_JA: &str = "\n※このメールは送信専用です。お問い合わせは大学の担当窓口へお願いします。\n";
const FOOTER_EN: &str = "\nThis mail is sent from an address that receives no replies. For questions, contact the university office.\n";

fn bilingual(r: &Recipient<'_>, subject_ja: &str, subject_en: &str, ja: String, en: String) -> MailText {
    const RULE: &str = "\n----------------------------------------\n\n";
    let (subject, body) = if r.language == "en" {
        (format!("{subject_en} / {subject_ja}"), format!("{en}{FOOTER_EN}{RULE}{ja}{FOOTER_JA}"))
    } else {
        (format!("{subject_ja} / {subject_en}"), format!("{ja}{FOOTER_JA}{RULE}{en}{FOOTER_EN}"))
    };
    let html = to_html(&body);
    MailText { subject, body, html, sender: String::new() }
}

/// The on-campus print number mail (O-3, O-5): how to pay (an IC card at the
/// printer, or nothing more when the order is paid already), the deadline and
/// its no-refund rule, the order's number.
#[allow(clippy::too_many_arguments)]
pub fn print_number_mail(
    to: &Recipient<'_>,
    number: &PrintNumber,
    lines: &[(String, String, i64)],
    total: Yen,
    deadline: &str,
    order_url: &str,
    order_id: i64,
    paid: bool,
) -> MailText {
    let mut ja_lines = String::new();
    let mut en_lines = String::new();
    for (ja, en, n) in lines {
        ja_lines.push_str(&format!("  {ja} {n}通\n"));
        en_lines.push_str(&format!("  {en} x {n}\n"));
    }
    let grouped = number.grouped();
    let (how_ja, how_en) = if paid {
        (
            "お支払いは済んでいます。学内の証明書発行機で次の印刷番号を入力すると、そのまま印刷されます。",
            "Your payment is in. Enter this number at an on-campus certificate printer: it prints with no further payment.",
        )
    } else {
        (
            "学内の証明書発行機で次の印刷番号を入力し、ICカードでお支払いください（カードはポータルで登録し、残高を入れておいてください。交通系電子マネーの端末がある発行機ではそれでも払えます）。",
            "Enter this number at an on-campus certificate printer and pay with your IC card (link the card in the portal and top it up first; where the printer has a transit e-money terminal, that pays too).",
        )
    };
    bilingual(
        to,
        "【証明書発行】学内印刷番号のお知らせ",
        "Your on-campus print number",
        format!(
            "{name} 様\n\n証明書のお申し込みを受け付けました（申込番号 {order_id}）。\n{how_ja}\n\n\
             学内印刷番号: {grouped}\n印刷期限: {deadline}\n金額: {total}\n{ja_lines}\n\
             期限を過ぎると印刷できず、支払済みの手数料は返金されません（システムの不具合で印刷できなかった場合を除きます）。\n申込内容: {order_url}\n",
            name = to.name_ja
        ),
        format!(
            "Dear {name},\n\nWe have received your certificate order (order no. {order_id}).\n{how_en}\n\n\
             On-campus print number: {grouped}\nPrint by: {deadline}\nAmount: {total}\n{en_lines}\n\
             After the deadline the number no longer prints and fees paid are not refunded (unless printing failed through the system).\nYour order: {order_url}\n",
            name = to.name_en
        ),
    )
}

/// Someone who has no name on record yet (a registration link): addressed plainly.
pub const APPLICANT: Recipient<'static> = Recipient { name_ja: "", name_en: "", language: "ja" };

fn dear_ja(r: &Recipient<'_>) -> String {
    if r.name_ja.is_empty() { "お客様\n\n".into() } else { format!("{} 様\n\n", r.name_ja) }
}

fn dear_en(r: &Recipient<'_>) -> String {
    if r.name_en.is_empty() { "Hello,\n\n".into() } else { format!("Dear {},\n\n", r.name_en) }
}

/// A mail whose point is a one-time link: what it is for, the link, until when.
fn link_mail(r: &Recipient<'_>, subject: (&str, &str), what: (&str, &str), url: &str, until: &str) -> MailText {
    bilingual(
        r,
        subject.0,
        subject.1,
        format!(
            "{dear}{what}\n\n{url}\n\nこのURLは {until} まで、1回だけ使えます。\n心当たりがない場合は、このメールを破棄してください。\n",
            dear = dear_ja(r),
            what = what.0
        ),
        format!(
            "{dear}{what}\n\n{url}\n\nThis link works once, until {until}.\nIf you did not ask for it, ignore this mail.\n",
            dear = dear_en(r),
            what = what.1
        ),
    )
}

/// G-1: the one-time URL that starts a registration.
pub fn registration_link(url: &str, until: &str) -> MailText {
    link_mail(
        &APPLICANT,
        ("【証明書発行】利用申請のご案内", "Your application link"),
        (
            "証明書発行サービスの利用申請を受け付けました。次のURLを開いて申請情報を入力してください。",
            "To apply for the certificate issuance service, open this link and enter your details.",
        ),
        url,
        until,
    )
}

/// G-1 for an address that already has an account: no new account, a pointer instead.
pub fn already_registered(r: &Recipient<'_>, login_url: &str, reset_url: &str) -> MailText {
    bilingual(
        r,
        "【証明書発行】このアドレスは登録済みです",
        "This address is already registered",
        format!(
            "{dear}このメールアドレスを新規登録またはメールアドレス変更に使う手続きがありましたが、このアドレスはすでに登録されています。\n\
             ログイン: {login_url}\nパスワードを忘れた場合: {reset_url}\n心当たりがない場合は、このメールを破棄してください。\n",
            dear = dear_ja(r)
        ),
        format!(
            "{dear}Someone asked to use this address for a new registration or an address change, but it already has an account.\n\
             Log in: {login_url}\nForgot your password: {reset_url}\nIf this was not you, ignore this mail.\n",
            dear = dear_en(r)
        ),
    )
}

/// G-3: the application was received and waits for the university.
pub fn application_received(r: &Recipient<'_>, status_url: &str) -> MailText {
    bilingual(
        r,
        "【証明書発行】利用申請を受け付けました",
        "We have received your application",
        format!("{}利用申請を受け付けました。大学で内容を確認し、結果をメールでお知らせします。\n審査の状況はこちらで確認できます:\n{status_url}\n", dear_ja(r)),
        format!("{}We have received your application. The university will check it and mail you the result.\nSee where it stands here:\n{status_url}\n", dear_en(r)),
    )
}

/// G-4: approved; the initial password and where to log in.
pub fn application_approved(r: &Recipient<'_>, initial_password: &str, login_url: &str, until: &str) -> MailText {
    bilingual(
        r,
        "【証明書発行】利用申請の結果（承認）",
        "Result of your application: approved",
        format!(
            "{dear}利用申請が承認されました。次の初期パスワードでログインしてください（第2パスワードは空欄のまま）。\n\
             ログイン後、パスワードと第2パスワードを設定していただきます。\n\n初期パスワード: {initial_password}\n有効期限: {until}（1回のみ有効）\n\nログインはこちら\n{login_url}\n",
            dear = dear_ja(r)
        ),
        format!(
            "{dear}Your application has been approved. Log in with this initial password (leave the second password empty).\n\
             You will then set your own password and second password.\n\nInitial password: {initial_password}\nValid until: {until} (once)\n\nLog in here\n{login_url}\n",
            dear = dear_en(r)
        ),
    )
}

/// G-4: rejected, with the reason.
pub fn application_rejected(r: &Recipient<'_>, reason: &str) -> MailText {
    bilingual(
        r,
        "【証明書発行】利用申請の結果（不承認）",
        "Result of your application: not approved",
        format!("{}利用申請は承認されませんでした。\n理由: {reason}\nご不明な点は大学の担当窓口にお問い合わせください。\n", dear_ja(r)),
        format!("{}Your application was not approved.\nReason: {reason}\nFor questions, contact the university office.\n", dear_en(r)),
    )
}

/// G-4: asked to correct the application, with the reason and a link back to it.
pub fn application_resubmit(r: &Recipient<'_>, reason: &str, url: &str, until: &str) -> MailText {
    link_mail(
        r,
        ("【証明書発行】利用申請の再提出のお願い", "Please correct and resubmit your application"),
        (
            &format!("利用申請の内容について、再提出をお願いします。\n理由: {reason}\n次のURLから申請内容を修正し、もう一度申請してください。"),
            &format!("Please correct your application and send it again.\nReason: {reason}\nOpen this link to change it and apply again."),
        ),
        url,
        until,
    )
}

/// G-6: a further student ID was approved: the number added, quoted.
pub fn student_id_approved(r: &Recipient<'_>, student_no: &str) -> MailText {
    bilingual(
        r,
        "【証明書発行】学籍番号の追加が承認されました",
        "Your additional student ID was approved",
        format!(
            "{}学籍番号の追加が承認されました。\n\n追加した学籍番号: {student_no}\n\n証明書の申込時に、どの学籍番号の証明書かを選べます。\n",
            dear_ja(r)
        ),
        format!(
            "{}Your additional student ID was approved.\n\nStudent ID added: {student_no}\n\nWhen you order a certificate, you choose which student ID it is for.\n",
            dear_en(r)
        ),
    )
}

/// G-6: a further student ID was refused: its own words (the account itself
/// stays as it was), the number asked for and the reason.
pub fn student_id_refused(r: &Recipient<'_>, student_no: &str, reason: &str) -> MailText {
    bilingual(
        r,
        "【証明書発行】学籍番号の追加は承認されませんでした",
        "Your request to add a student ID was refused",
        format!(
            "{}学籍番号の追加申請は承認されませんでした。ご登録のアカウントと、これまでの学籍番号はそのままお使いいただけます。\n\n\
             申請した学籍番号: {student_no}\n理由: {reason}\n\n内容を確かめて、もう一度申請することができます。ご不明な点は大学の担当窓口にお問い合わせください。\n",
            dear_ja(r)
        ),
        format!(
            "{}Your request to add a student ID to your account was refused. Your account and the student IDs already on it are unchanged.\n\n\
             Student ID requested: {student_no}\nReason: {reason}\n\nYou may check the details and request it again. For questions, contact the university office.\n",
            dear_en(r)
        ),
    )
}

/// G-6: the link to enter a further enrolment.
pub fn add_student_id_link(r: &Recipient<'_>, url: &str, until: &str) -> MailText {
    link_mail(
        r,
        ("【証明書発行】学籍番号の追加", "Add a student ID"),
        ("学籍番号の追加申請を受け付けました。次のURLから在学時の情報を入力してください。", "Open this link to enter the details of your other enrolment."),
        url,
        until,
    )
}

/// G-8 / S-3: the link that confirms a new address (sent to the NEW address).
pub fn email_change_link(r: &Recipient<'_>, url: &str, until: &str) -> MailText {
    link_mail(
        r,
        ("【証明書発行】メールアドレス変更の確認", "Confirm your new e-mail address"),
        ("メールアドレスの変更を受け付けました。次のURLを開くと変更が完了します。", "Open this link to finish changing your e-mail address."),
        url,
        until,
    )
}

/// G-8: notice to the OLD address once the change is done.
pub fn email_changed_notice(r: &Recipient<'_>, new_masked: &str) -> MailText {
    bilingual(
        r,
        "【証明書発行】メールアドレスが変更されました",
        "Your e-mail address was changed",
        format!("{}ご登録のメールアドレスが {new_masked} に変更されました。心当たりがない場合は、すぐに大学の担当窓口へご連絡ください。\n", dear_ja(r)),
        format!("{}The e-mail address of your account was changed to {new_masked}. If this was not you, contact the university office at once.\n", dear_en(r)),
    )
}

/// G-11 / S-3: the link to set a new password (or second password).
pub fn reset_link(r: &Recipient<'_>, second_only: bool, url: &str, until: &str) -> MailText {
    if second_only {
        link_mail(
            r,
            ("【証明書発行】第2パスワードの再設定", "Reset your second password"),
            ("第2パスワードの再設定を受け付けました。次のURLから新しい第2パスワードを設定してください。", "Open this link to set a new second password."),
            url,
            until,
        )
    } else {
        link_mail(
            r,
            ("【証明書発行】パスワードの再設定", "Reset your password"),
            ("パスワードの再設定を受け付けました。次のURLから新しいパスワードと第2パスワードを設定してください。", "Open this link to set a new password and second password."),
            url,
            until,
        )
    }
}

/// G-10 / G-11: a password was changed (so a stranger's change does not go unnoticed).
pub fn password_changed_notice(r: &Recipient<'_>) -> MailText {
    bilingual(
        r,
        "【証明書発行】パスワードが変更されました",
        "Your password was changed",
        format!("{}パスワードが変更されました。心当たりがない場合は、すぐに大学の担当窓口へご連絡ください。\n", dear_ja(r)),
        format!("{}Your password was changed. If this was not you, contact the university office at once.\n", dear_en(r)),
    )
}

/// S-2: the link that registers an enrolled student's e-mail address.
pub fn student_email_link(r: &Recipient<'_>, url: &str, until: &str) -> MailText {
    link_mail(
        r,
        ("【証明書発行】メールアドレス登録の確認", "Confirm your e-mail address"),
        (
            "メールアドレスの登録を受け付けました。次のURLを開くと、メールアドレスの登録が完了します。\n\
             完了後、ログイン画面から大学のユーザIDとパスワードで（第2パスワードは空欄のまま）ログインし、第2パスワードを設定してください。",
            "Open this link to finish registering your e-mail address.\n\
             Then log in with your university user ID and password (leave the second password empty) and set your second password.",
        ),
        url,
        until,
    )
}

/// O-4 Smart Pit: the payment number to pay in cash at a convenience store.
pub fn smartpit_mail(r: &Recipient<'_>, number: &str, amount: Yen, deadline: &str, order_id: i64) -> MailText {
    bilingual(
        r,
        "【証明書発行】お支払番号（コンビニ払い）のお知らせ",
        "Your payment number for convenience-store payment",
        format!(
            "{}コンビニエンスストアの端末で次の支払番号を入力し、現金でお支払いください（申込番号 {order_id}）。\n\n支払番号: {number}\n金額: {amount}\n支払期限: {deadline}\n\n\
             お支払いできる店舗: ローソン、ファミリーマート、ミニストップ、セイコーマート\n\
             手順: 1. 店頭端末（Loppi・マルチコピー機など）で「Smart Pit」を選ぶ 2. 支払番号を入力する 3. 出てきた申込券を30分以内にレジに出し、現金で支払う\n\n\
             期限を過ぎると申込は無効になります。\n",
            dear_ja(r)
        ),
        format!(
            "{}Pay in cash at a convenience store: enter this payment number at the store's terminal (order {order_id}).\n\nPayment number: {number}\nAmount: {amount}\nPay by: {deadline}\n\n\
             Stores: Lawson, FamilyMart, Ministop, Seicomart\n\
             Steps: 1. at the store's terminal (Loppi, multifunction copier) choose \"Smart Pit\" 2. enter the payment number 3. take the slip to the register within 30 minutes and pay in cash\n\n\
             After the deadline the order lapses.\n",
            dear_en(r)
        ),
    )
}

/// Issue 16: a digital order is paid: its signed PDF is ready on the order page.
pub fn digital_ready_mail(r: &Recipient<'_>, order_id: i64, order_url: &str) -> MailText {
    bilingual(
        r,
        "【証明書発行】電子証明書をダウンロードできます",
        "Your digital certificate is ready",
        format!(
            "{}お支払いを確認しました（申込番号 {order_id}）。電子証明書（大学の電子署名とタイムスタンプ付きPDF）を申込内容のページからダウンロードできます。\n\
             提出先（就職先・進学先など）ごとに、その提出先あての写しを作ってリンクをメールで送れます。\n\n{order_url}\n",
            dear_ja(r)
        ),
        format!(
            "{}Your payment is in (order {order_id}). Your digital certificate (a PDF signed and time-stamped by the university) can be downloaded from the order page, \
             where you can also make a copy for each recipient (an employer, a school) and send them its link.\n\n{order_url}\n",
            dear_en(r)
        ),
    )
}

/// Issue 16, graduation day: the university issued the graduate's digital
/// certificate (a degree certificate, at no charge): where to download it.
pub fn cohort_issued_mail(r: &Recipient<'_>, type_ja: &str, type_en: &str, university_ja: &str, university_en: &str, order_url: &str) -> MailText {
    bilingual(
        r,
        &format!("【証明書発行】{type_ja}（電子証明書）を発行しました"),
        &format!("Your {type_en} has been issued as a digital certificate"),
        format!(
            "{}ご卒業おめでとうございます。{university_ja}が、あなたの{type_ja}を電子証明書（大学の電子署名とタイムスタンプ付きPDF）として発行しました。料金はかかりません。\n\
             次のページからダウンロードできます。提出先（就職先・進学先など）ごとに、その提出先あての写しを作ってリンクをメールで送ることもできます。\n\n{order_url}\n",
            dear_ja(r)
        ),
        format!(
            "{}Congratulations on your graduation. {university_en} has issued your {type_en} as a digital certificate (a PDF signed and time-stamped by the university), free of charge.\n\
             Download it from the page below, where you can also make a copy for each recipient (an employer, a school) and send them its link.\n\n{order_url}\n",
            dear_en(r)
        ),
    )
}

/// Issue 16: a graduate shared a signed digital certificate with a recipient
/// (an employer, a school): the link to it, until when, how many downloads.
pub fn share_mail(r: &Recipient<'_>, holder_ja: &str, holder_en: &str, university_ja: &str, university_en: &str, url: &str, until: &str, downloads: i64) -> MailText {
    bilingual(
        r,
        "【証明書】電子証明書が提出されました",
        "A digital certificate was submitted to you",
        format!(
            "{}{holder_ja} さんが、{university_ja} の電子証明書（署名付きPDF）をあなたに提出しました。次のリンクから証明書の状態を確かめ、ダウンロードできます。\n\n{url}\n\n\
             有効期限: {until}\nダウンロードできる回数: {downloads}回\n\n\
             PDFには大学の電子署名とタイムスタンプが付いています。PDFリーダーの署名パネル、または大学の検証ページで改ざんがないことを確かめられます。\n",
            dear_ja(r)
        ),
        format!(
            "{}{holder_en} has submitted a digital certificate from {university_en} (a signed PDF) to you. The link shows its status and lets you download it:\n\n{url}\n\n\
             Valid until: {until}\nDownloads allowed: {downloads}\n\n\
             The PDF carries the university's digital signature and a time-stamp: a PDF reader's signature panel, or the university's verification page, shows it is unaltered.\n",
            dear_en(r)
        ),
    )
}

/// O-3: a convenience-store print order is ready at the stores' printers.
pub fn store_print_mail(r: &Recipient<'_>, user_number: &str, reservation_number: &str, deadline: &str, pages: i64, order_url: &str) -> MailText {
    bilingual(
        r,
        "【証明書発行】コンビニ印刷のユーザー番号のお知らせ",
        "Your number for printing at a convenience store",
        format!(
            "{}お支払いを確認しました。ファミリーマート・ローソンのマルチコピー機で「ネットワークプリント」を選び、次の番号を入力して印刷してください。

             ユーザー番号: {user_number}
プリント予約番号: {reservation_number}
印刷期限: {deadline}
ページ数: {pages}

             印刷料金はコピー機で別途お支払いください。期限を過ぎると印刷できません。
申込内容: {order_url}
",
            dear_ja(r)
        ),
        format!(
            "{}Your payment is in. At a FamilyMart or Lawson multifunction copier choose \"Network Print\" and enter this number to print.\n\n\
             User number: {user_number}\nPrint reservation number: {reservation_number}\nPrint by: {deadline}\nPages: {pages}\n\n\
             The store's printing fee is paid at the copier. After the deadline it no longer prints.\nYour order: {order_url}\n",
            dear_en(r)
        ),
    )
}

/// operators are told a station needs attention.
pub fn station_alert_mail(station: &str, ja: &str, en: &str, link: &str) -> MailText {
    bilingual(
        &OPERATORS,
        &format!("【証明書発行機】{station}: {ja}"),
        &format!("Print station {station}: {en}"),
        format!("証明書発行機「{station}」の対応が必要です。\n\n状態: {ja}\n\n詳細: {link}\n"),
        format!("The print station \"{station}\" needs attention.\n\nCondition: {en}\n\nDetails: {link}\n"),
    )
}

/// the station is fine again.
pub fn station_recovered_mail(station: &str, link: &str) -> MailText {
    bilingual(
        &OPERATORS,
        &format!("【証明書発行機】{station}: 復旧しました"),
        &format!("Print station {station}: back to normal"),
        format!("証明書発行機「{station}」は正常に戻りました。\n\n詳細: {link}\n"),
        format!("The print station \"{station}\" is back to normal.\n\nDetails: {link}\n"),
    )
}

const OPERATORS: Recipient<'static> = Recipient { name_ja: "", name_en: "", language: "ja" };

/// a postal order was posted.
/// O-3: a postal order is paid and its printing booked ("print reservation
/// completed", as the manual has it); the "posted" mail follows.
pub fn post_reserved_mail(r: &Recipient<'_>, order_id: i64, address: &str) -> MailText {
    bilingual(
        r,
        "【証明書発行】印刷予約完了のお知らせ（郵送）",
        "Your certificates are booked for posting",
        format!("{}お支払いを確認し、証明書（申込番号 {order_id}）の印刷予約が完了しました。教務課で印刷し、次の宛先に郵送します。発送したら改めてお知らせします。\n\n郵送先: {address}\n", dear_ja(r)),
        format!("{}Your payment is in and the certificates of order {order_id} are booked: the registrar prints them and posts them to the address below. We will tell you when they are posted.\n\nPosted to: {address}\n", dear_en(r)),
    )
}

pub fn shipped_mail(r: &Recipient<'_>, order_id: i64) -> MailText {
    bilingual(
        r,
        "【証明書発行】証明書を発送しました",
        "Your certificates are in the post",
        format!("{}お申し込みの証明書（申込番号 {order_id}）を郵便で発送しました。数日でお届けします。\n", dear_ja(r)),
        format!("{}The certificates of your order {order_id} were posted today; they should arrive in a few days.\n", dear_en(r)),
    )
}

/// O-5, ST-5, A-4: an order was refunded: its number, the amount, why, and
/// how the money goes back. `way`: "card" (to the IC card's balance, at
/// once), "paypal" (through PayPal), "office" (by bank transfer from the
/// office, once the user has given their bank account at `details_url`).
pub fn refund_mail(r: &Recipient<'_>, order_id: i64, amount: Yen, way: &str, automatic: bool, details_url: &str) -> MailText {
    let (why_ja, why_en) = if automatic {
        (
            "学内の証明書発行機での印刷が失敗し、印刷期限までに印刷されなかったため、お支払いいただいた金額を自動で返金します。",
            "Printing failed at an on-campus certificate printer and the certificates were not printed by the deadline, so the amount you paid is refunded automatically.",
        )
    } else {
        ("大学の担当窓口で、お支払いいただいた金額を返金する手続きをしました。", "The university office has refunded the amount you paid.")
    };
    let (how_ja, how_en) = match way {
        "card" => (
            "返金方法: お支払いに使ったICカードの残高に戻しました。すぐにご利用いただけます。".to_string(),
            "How: credited back to the IC card you paid with; the balance can be used at once.".to_string(),
        ),
        "paypal" => (
            "返金方法: PayPal（お支払いに使ったクレジットカード等）に返金しました。明細に反映される時期はカード会社によります。".to_string(),
            "How: refunded through PayPal to the card or account you paid with; when it shows on your statement depends on your card issuer.".to_string(),
        ),
        _ => (
            format!("返金方法: 大学から銀行振込でお返しします。次のページで振込先の口座（銀行名・支店名・口座種別・口座番号・口座名義（カタカナ））を入力してください。\n{details_url}"),
            format!("How: by bank transfer from the university office. Give the bank account to pay it to (bank, branch, account type and number, account holder in katakana) on this page:\n{details_url}"),
        ),
    };
    bilingual(
        r,
        "【証明書発行】返金のお知らせ",
        "Your order has been refunded",
        format!("{dear}{why_ja}\n\n申込番号: {order_id}\n返金額: {amount}\n{how_ja}\n", dear = dear_ja(r)),
        format!("{dear}{why_en}\n\nOrder no.: {order_id}\nAmount refunded: {amount}\n{how_en}\n", dear = dear_en(r)),
    )
}

/// A refund the office pays back by hand (bank transfer, or cash at the desk) was paid.
pub fn refund_paid_back_mail(r: &Recipient<'_>, order_id: i64, amount: Yen) -> MailText {
    bilingual(
        r,
        "【証明書発行】返金のお支払いが完了しました",
        "Your refund has been paid",
        format!(
            "{}証明書のお申し込み（申込番号 {order_id}）の返金 {amount} をお支払いしました（ご指定の口座へのお振込み、または窓口でのお渡し）。\n",
            dear_ja(r)
        ),
        format!("{}The refund of {amount} for your order {order_id} has been paid to you (by transfer to the account you gave, or at the office).\n", dear_en(r)),
    )
}

/// A held order (a character of the name no font could draw) was released
/// by staff: it goes ahead; `next` says what the user does now.
pub fn order_released_mail(r: &Recipient<'_>, order_id: i64, next: (&str, &str), order_url: &str) -> MailText {
    bilingual(
        r,
        "【証明書発行】お申し込みの確認が済みました",
        "Your order can go ahead",
        format!(
            "{}お申し込み（申込番号 {order_id}）は、氏名の文字を証明書に印刷できるか大学で確認するため、お手続きを止めていました。確認が済み、お手続きを進められるようになりました。\n{}\n\n申込内容: {order_url}\n",
            dear_ja(r),
            next.0
        ),
        format!(
            "{}Your order {order_id} was held while the university made sure every character of your name can be printed on the certificates. That is done: your order can go ahead.\n{}\n\nYour order: {order_url}\n",
            dear_en(r),
            next.1
        ),
    )
}

/// Starts the outbox worker. `wake` lets request handlers nudge it after a commit.
/// The SMTP transport for `mail`: STARTTLS or implicit TLS with the system's
/// or a given CA, AUTH over TLS only; plain SMTP only to a relay on this
/// machine (checked by the configuration).
pub fn transport(mail: &MailConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let (host, port) = mail.relay();
    let tls = || -> anyhow::Result<TlsParameters> {
        let mut b = TlsParameters::builder(host.clone());
        if let Some(ca) = &mail.ca_file {
            let pem = std::fs::read(ca).map_err(|e| anyhow::anyhow!("mail.ca_file {}: {e}", ca.display()))?;
            b = b.add_root_certificate(Certificate::from_pem(&pem)?);
        }
        Ok(b.build_rustls()?)
    };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone());
    let builder = match mail.tls_mode() {
        "tls" => builder.tls(Tls::Wrapper(tls()?)),
        "starttls" => builder.tls(Tls::Required(tls()?)),
        _ => builder,
    };
    let builder = if mail.username.is_empty() { builder } else { builder.credentials(Credentials::new(mail.username.clone(), mail.password.clone())) };
    Ok(builder.port(port).timeout(Some(Duration::from_secs(20))).build())
}

/// The outbox's sender, to be spawned; None when there is no relay (mails stay in the outbox).
pub fn worker(
    pool: Pool,
    seal: Arc<SealKey>,
    mail: &MailConfig,
    poll: Duration,
    wake: Arc<Notify>,
    leases: crate::jobs::Leases,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    if mail.smtp.is_empty() {
        tracing::info!("mail.smtp is empty: mails stay in the outbox (shown in the admin panel)");
        return None;
    }
    let transport = match transport(mail) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "mail transport cannot be set up; mail worker stopped");
            return None;
        }
    };
    let from = mail.from.clone();
    Some(async move {
        let from: Mailbox = match from.parse() {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "mail.from is not an address; mail worker stopped");
                return;
            }
        };
        loop {
            // one sender across backends: the one holding the lease
            if leases.hold(crate::jobs::MAIL).await {
                if let Err(e) = send_due(&pool, &seal, &transport, &from).await {
                    tracing::warn!(error = %e, "mail outbox pass failed");
                }
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    })
}

async fn send_due(
    pool: &Pool,
    seal: &SealKey,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
) -> anyhow::Result<()> {
    let mut c = pool.acquire().await?;
    let due = store::due_mails(&mut c, now(), 20).await?;
    drop(c);
    for m in due {
        let result = async {
            // a university's sender name on the mails about its orders, the address the relay's
            let from = if m.sender_name.is_empty() { from.clone() } else { Mailbox::new(Some(m.sender_name.clone()), from.email.clone()) };
            let msg = Message::builder()
                .from(from)
                .to(m.to_addr.parse()?)
                .subject(m.subject.clone());
            let (text, html) = open_body(seal, &m)?;
            let msg = if html.is_empty() {
                msg.header(ContentType::TEXT_PLAIN).body(text)?
            } else {
                msg.multipart(MultiPart::alternative_plain_html(text, html))?
            };
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

/// A plausible e-mail address (one @, a dot in the domain, no spaces, <= 254).
pub fn valid_email(s: &str) -> bool {
    let s = s.trim();
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.len() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        }
        None => false,
    }
}

// ---------------------------------------------------------------- the relay's settings

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `host:port` of an SMTP server. Empty: mails stay in the outbox (demo default).
    pub smtp: String,
    pub from: String,
    /// Seconds between outbox passes when nothing wakes the worker.
    pub poll_interval_s: u64,
    /// `starttls` (port 587), `tls` (implicit TLS, port 465), or `none`, which
    /// is allowed only for a relay on this machine. Empty: `none` for a relay
    /// on this machine, `starttls` otherwise.
    pub tls: String,
    /// SMTP AUTH (over TLS only); empty: no authentication.
    pub username: String,
    pub password: String,
    pub password_file: Option<std::path::PathBuf>,
    /// PEM file of the CA that signed the relay's certificate (empty: the system's CAs).
    pub ca_file: Option<std::path::PathBuf>,
}

impl MailConfig {
    /// `host`, `port` of the relay.
    pub fn relay(&self) -> (String, u16) {
        match self.smtp.rsplit_once(':').and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p))) {
            Some((h, p)) => (h.trim_matches(['[', ']']).to_string(), p),
            None => (self.smtp.clone(), 25),
        }
    }

    /// The TLS mode in force: `none`, `starttls` or `tls`.
    pub fn tls_mode(&self) -> &str {
        match self.tls.as_str() {
            "" if shomei_shared::net::url_is_loopback(&format!("smtp://{}", self.relay().0)) => "none",
            "" => "starttls",
            m => m,
        }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            smtp: String::new(),
            from: "shomei@localhost".into(),
            poll_interval_s: 5,
            tls: String::new(),
            username: String::new(),
            password: String::new(),
            password_file: None,
            ca_file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_number_mail_has_both_languages_the_readers_first() {
        let n = PrintNumber::generate(&mut rand::thread_rng());
        let lines = [("卒業証明書".to_string(), "Certificate of Graduation".to_string(), 2)];
        let ja = Recipient { name_ja: "山田 花子", name_en: "YAMADA Hanako", language: "ja" };
        let m = print_number_mail(&ja, &n, &lines, Yen(700), "D", "U", 7, false);
        assert!(m.subject.starts_with("【証明書発行】"));
        assert!(m.body.contains("ICカードでお支払いください") && m.body.contains("pay with your IC card") && m.body.contains("order no. 7"));
        assert!(m.body.contains("返金されません") && m.body.contains("not refunded"));
        let paid = print_number_mail(&ja, &n, &lines, Yen(700), "D", "U", 7, true);
        assert!(!paid.body.contains("ICカードでお支払いください") && !paid.body.contains("pay with your IC card"), "{}", paid.body);
        assert!(paid.body.contains("お支払いは済んでいます") && paid.body.contains("Your payment is in"));
        assert!(m.body.starts_with("山田 花子 様"));
        assert!(m.body.contains("Dear YAMADA Hanako,") && m.body.contains(&n.grouped()));
        assert!(m.body.contains("卒業証明書 2通") && m.body.contains("Certificate of Graduation x 2"));
        let en = Recipient { language: "en", ..ja };
        let m = print_number_mail(&en, &n, &lines, Yen(700), "D", "U", 7, false);
        assert!(m.subject.starts_with("Your on-campus print number"));
        assert!(m.body.starts_with("Dear YAMADA Hanako,"));
        assert!(m.body.contains("¥700"));
    }

    #[test]
    fn a_university_office_signs_both_languages_footers_and_the_sender_an_empty_one_changes_nothing() {
        let m = || shipped_mail(&Recipient { name_ja: "山田 花子", name_en: "YAMADA Hanako", language: "ja" }, 7);
        let plain = m().signed_by(&store::Office::default());
        assert_eq!((plain.body.as_str(), plain.sender.as_str()), (m().body.as_str(), ""));
        let office = store::Office {
            mail_sender: "北大学 証明書窓口".into(),
            desk_ja: "北大学 学務課".into(),
            desk_en: "Kita University Student Affairs".into(),
            contact_email: "desk@kita.example".into(),
            ..Default::default()
        };
        let signed = m().signed_by(&office);
        assert_eq!(signed.sender, "北大学 証明書窓口");
        assert!(!signed.body.contains(FOOTER_JA) && !signed.body.contains(FOOTER_EN), "{}", signed.body);
        assert!(signed.body.contains("お問い合わせは次の窓口へお願いします: 北大学 学務課　desk@kita.example\n"), "{}", signed.body);
        assert!(signed.body.contains("For questions, contact: Kita University Student Affairs, desk@kita.example\n"), "{}", signed.body);
        assert!(signed.html.contains("Kita University Student Affairs"));
    }
}
