//! The backend's message catalogue for what pages say when something is
//! wrong: every text in Japanese and English ("日本語 / English"). Mails have
//! theirs in `mail`, certificates in `documents`, page wording in templates.

/// Same for every failed portal login: never says which part was wrong.
pub const LOGIN_FAILED: &str =
    "メールアドレス、パスワード、または第2パスワードが正しくありません。 / The e-mail address, password or second password is not correct.";
pub const STAFF_LOGIN_FAILED: &str = "ログインIDまたはパスワードが正しくありません。 / The login ID or password is not correct.";
pub const LOGIN_THROTTLED: &str =
    "ログインの失敗が続いたため、15分間ログインできません。 / Too many failed logins: please wait 15 minutes and try again.";
pub const STUDENT_LOGIN_FAILED: &str =
    "ユーザID、パスワード、または第2パスワードが正しくありません。 / The user ID, password or second password is not correct.";
pub const STAFF_INITIAL_PASSWORD_EXPIRED: &str = "初期パスワードの有効期限が切れています。管理者に新しい初期パスワードの発行を依頼してください。 / Your initial password has expired: ask an administrator to issue a new one.";
pub const INITIAL_PASSWORD_EXPIRED: &str = "初期パスワードの有効期限が切れています。「パスワードを忘れた方」から再設定してください。 / Your initial password has expired: use \"Forgot your password\" to set a new one.";
pub const DIRECTORY_UNAVAILABLE: &str =
    "大学の認証サーバに接続できません。しばらくしてからもう一度お試しください。 / The university's login server cannot be reached: please try again later.";
pub const CHOOSE_UNIVERSITY: &str = "大学を選んでください。 / Choose your university.";
pub const LINK_INVALID: &str = "このURLは有効期限切れか、すでに使われたか、正しくありません。もう一度手続きをやり直してください。 / This link has expired, has already been used or is not valid: please start again.";
pub const IMAGES_BUSY: &str = "ただいま画像の確認が混み合っています。数秒後に画像を添えてもう一度送信してください（入力した内容は残っています）。 / Many images are being checked right now: please attach the images and send again in a few seconds (what you typed is kept).";
pub const BUSY: &str = "ただいま混み合っています。数秒後にもう一度お試しください。 / The service is busy: please try again in a few seconds.";
pub const CROSS_SITE: &str = "他のサイトからの送信は受け付けません。 / Requests from other sites are refused.";
pub const FORM_EXPIRED: &str = "フォームの有効期限が切れました。ページを開き直してください。 / This form has expired: open the page again.";
pub const NO_ROLE: &str = "この操作の権限がありません。 / You do not have the role for this page.";
pub const NOT_FOUND: &str = "ページが見つかりません。 / This page does not exist.";
pub const SOMETHING_WRONG: &str = "エラーが発生しました。 / Something went wrong.";
pub const CHECK_INPUT: &str = "入力内容を確認してください。 / Please check what you entered.";
pub const COPIES_NOT_A_NUMBER: &str = "通数は数字で入力してください。 / Enter the number of copies as a number.";
pub const NO_STUDENT_RECORD: &str = "学籍情報が登録されていません。 / No student record is registered for you.";
pub const ONLY_CAMPUS_CARD: &str =
    "現在は学内印刷（ICカード払い、またはクレジットカード払い）のみ受け付けています。 / Only on-campus printing is available at the moment, paid by IC card or by credit card.";
pub const NO_COPIES: &str = "証明書を1通以上選んでください。 / Choose at least one copy of a certificate.";
pub const CHOOSE_STUDENT_ID: &str = "学籍番号を選び直してください。 / Choose your student ID again.";
/// D-3: approving past a register warning needs the reviewer's acknowledgement.
pub const ACKNOWLEDGE_REGISTER: &str = "学籍記録がないか申請と異なります。内容を確認し、「学籍記録との相違を確認した」にチェックしてから承認してください（証明書は学籍記録からのみ発行されます）。 / The school register has no record for this application or differs from it. Check the differences and tick \"I checked the school register warning\" to approve (certificates print only from the school register).";

/// D-3: the school register has no entry for the student number.
pub const NOT_IN_REGISTER: &str = "教務課の学籍簿にこの学籍番号の記録がないため、証明書を発行できません。教務課にお問い合わせください。 / The registrar's school register has no entry for this student number, so no certificate can be issued. Please contact the registrar.";

/// D-3: the register entry lacks something the certificates would state.
pub fn register_lacks(fields: &[(&str, &str)]) -> String {
    let ja: Vec<&str> = fields.iter().map(|f| f.0).collect();
    let en: Vec<&str> = fields.iter().map(|f| f.1).collect();
    format!(
        "教務課の学籍簿に{}の記録がないため、この証明書を発行できません。教務課にお問い合わせください。 / The registrar's school register does not record your {}, so this certificate cannot be issued. Please contact the registrar.",
        ja.join("・"),
        en.join(", ")
    )
}

pub const CERTIFICATE_NOT_ORDERABLE: &str = "選んだ証明書は申請できません。 / The chosen certificate cannot be ordered.";
pub const CANNOT_CANCEL: &str =
    "支払済みまたは期限切れの申込は取り消せません。 / Only an order not paid yet can be cancelled.";
pub const POST_ADDRESS: &str = "郵送先の氏名と住所を入力してください。 / Give the name and address to post it to.";
pub const POST_POSTAL_CODE: &str = "郵送先の郵便番号を7桁で入力してください（例: 100-0001）。 / Give the 7-digit postal code to post it to, e.g. 100-0001.";
pub const CARD_ONLY_ON_CAMPUS: &str = "ICカード払いは学内印刷と電子証明書のときだけ選べます。郵送・コンビニ印刷はクレジットカード（PayPal）かコンビニ払い（Smart Pit）でお支払いください。 / IC card payment is only for on-campus printing and digital certificates: pay for postal delivery or convenience-store print by credit card (PayPal) or in cash at a convenience store (Smart Pit).";
pub const STOREPRINT_UNAVAILABLE: &str = "コンビニ印刷サービスに接続できないため、登録を取り消せませんでした。返金は行っていません。しばらくしてからもう一度お試しください。 / The convenience-store print service cannot be reached, so its numbers could not be withdrawn and nothing was refunded: try again in a while.";
pub const NOT_TO_POST: &str = "この申込は発送待ちではありません。 / This order is not waiting to be posted.";
pub const NOTHING_TO_PAY_BACK: &str = "この申込には窓口で返金する金額がありません（返金済みの印が付いているか、返金がありません）。 / This order has nothing for the office to pay back (marked paid back already, or no refund).";
pub const REFUND_REASON: &str = "返金の理由を300文字以内で入力してください。 / Give the reason for the refund (at most 300 characters).";
pub const NOT_HELD: &str = "この申込は確認待ちではありません。 / This order is not held.";
pub const BANK_NAME: &str = "銀行名を40文字以内で入力してください。 / Give the name of the bank (at most 40 characters).";
pub const BANK_BRANCH: &str = "支店名を40文字以内で入力してください。 / Give the name of the branch (at most 40 characters).";
pub const BANK_ACCOUNT_TYPE: &str = "口座種別（普通・当座）を選んでください。 / Choose the type of account (ordinary or current).";
pub const BANK_ACCOUNT_NUMBER: &str = "口座番号を7桁の数字で入力してください。 / Give the account number as 7 digits.";
pub const BANK_HOLDER: &str = "口座名義を全角カタカナ（60文字以内）で入力してください。 / Give the account holder's name in full-width katakana (at most 60 characters).";
pub const CANNOT_REFUND: &str = "この申込は返金できません（未払い、または返金済み）。 / This order cannot be refunded (not paid, or refunded already).";
pub const PAYMENT_UNAVAILABLE: &str = "決済サービスが応答しないため、処理できませんでした。何も変更していません。しばらくしてからもう一度お試しください。 / The payment service did not answer, so nothing was done or changed: please try again in a while.";
pub const SMARTPIT_UNAVAILABLE: &str = "支払番号を発行できませんでした。しばらくしてからもう一度お試しください。 / The payment number could not be issued: please try again in a while.";
pub const CANNOT_PAY: &str =
    "この申込は支払済みか、支払期限を過ぎています。 / This order is paid already or past its payment deadline.";
pub const CANNOT_RESEND: &str =
    "この申込の番号はもう使えないため、再送できません。 / This order's number no longer works, so it is not sent again.";
pub const STATION_NAME: &str =
    "ステーション名を80文字以内で入力してください。 / Give the station a name of at most 80 characters.";

/// A throttled login or request: how long to wait (None: until the
/// window passes), in both languages.
pub fn throttled(seconds: Option<i64>) -> String {
    match seconds {
        Some(s) => format!(
            "失敗が続いたため、{s}秒待ってからもう一度お試しください。 / Too many failed attempts: please wait {s} second{} and try again.",
            if s == 1 { "" } else { "s" }
        ),
        None => LOGIN_THROTTLED.to_string(),
    }
}

pub fn orders_too_fast(seconds: i64) -> String {
    format!("短い時間にたくさんのお申し込みがありました。{seconds}秒待ってからもう一度お試しください。 / Many orders in a short time: please wait {seconds} seconds and try again.")
}

pub fn too_many_copies(name_ja: &str, name_en: &str, max: i64) -> String {
    format!("{name_ja}は{max}通までです。 / {name_en}: at most {max} copies.")
}

/// Japanese and English names of an order status.
pub fn order_status(status: &str) -> (&'static str, &'static str) {
    match status {
        "awaiting_payment" => ("支払待ち", "awaiting payment"),
        "paid" => ("支払済・未印刷", "paid, not printed yet"),
        "printed" => ("印刷済", "printed"),
        "expired" => ("期限切れ", "expired"),
        "cancelled" => ("取消", "cancelled"),
        "held" => ("確認待ち", "held for the registrar"),
        _ => ("不明", "unknown"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_message_has_both_languages() {
        use super::*;
        for m in [LOGIN_FAILED, STAFF_LOGIN_FAILED, LOGIN_THROTTLED, FORM_EXPIRED, NO_ROLE, NOT_FOUND, SOMETHING_WRONG,
                  CHECK_INPUT, COPIES_NOT_A_NUMBER, NO_STUDENT_RECORD, ONLY_CAMPUS_CARD, NO_COPIES, CHOOSE_STUDENT_ID,
                  CERTIFICATE_NOT_ORDERABLE, STATION_NAME, CANNOT_CANCEL, CANNOT_RESEND, CANNOT_PAY, PAYMENT_UNAVAILABLE, SMARTPIT_UNAVAILABLE, REFUND_REASON, NOTHING_TO_PAY_BACK, CANNOT_REFUND, NOT_HELD, BANK_NAME, BANK_BRANCH, BANK_ACCOUNT_TYPE, BANK_ACCOUNT_NUMBER, BANK_HOLDER, POST_ADDRESS, POST_POSTAL_CODE, CARD_ONLY_ON_CAMPUS, STOREPRINT_UNAVAILABLE, NOT_TO_POST, STUDENT_LOGIN_FAILED, INITIAL_PASSWORD_EXPIRED, STAFF_INITIAL_PASSWORD_EXPIRED,
                  DIRECTORY_UNAVAILABLE, CHOOSE_UNIVERSITY, LINK_INVALID, BUSY, CROSS_SITE,
                  DIGITAL_NOT_OFFERED, DIGITAL_ONE_COPY, DIGITAL_NOT_READY, DIGITAL_REVOKED, SIGNING_UNAVAILABLE, SHARE_NAME, SHARE_EMAIL,
                  SHARE_DAYS, SHARE_DOWNLOADS, SHARE_LINK_GONE, NOT_A_PDF, PDF_TOO_BIG, CHOOSE_CARD, COHORT_TYPE, COHORT_DATE, COHORT_ALL_DONE, NOTHING_TO_REFUND] {
            let (ja, en) = m.split_once(" / ").expect("日本語 / English");
            assert!(!ja.is_ascii() && en.is_ascii(), "{m}");
        }
    }
}

// ---------------------------------------------------------------- digital certificates (issue 16)

pub const DIGITAL_NOT_OFFERED: &str = "この大学は電子証明書（PDF）をまだ交付していません。別の受け取り方法を選んでください。 / This university does not deliver digital certificates (PDF) yet: choose another way to receive them.";
pub const DIGITAL_ONE_COPY: &str = "電子証明書は1種類につき1通です。提出先ごとの写しは、お支払いの後に何件でも作れます。 / A digital certificate is one copy per type: after payment you can make a copy for each recipient, as many as you need.";
pub fn not_digital(name_ja: &str, name_en: &str) -> String {
    format!("{name_ja}は電子証明書（PDF）では交付していません。 / {name_en} is not delivered as a digital certificate (PDF).")
}
pub const DIGITAL_NOT_READY: &str = "この申込の電子証明書はまだダウンロードできません（お支払いの確認後にできます）。 / This order's digital certificate cannot be downloaded yet (it can once the payment is in).";
pub const DIGITAL_REVOKED: &str = "この証明書は大学により失効されています。 / The university has revoked this certificate.";
pub const SIGNING_UNAVAILABLE: &str = "ただいま電子署名（タイムスタンプ）を付けられません。しばらくしてからもう一度お試しください。 / The certificate cannot be signed (time-stamped) right now: please try again in a few minutes.";
pub const SHARE_NAME: &str = "提出先のお名前と組織名を入力してください（各100文字まで）。 / Give the recipient's name and organisation (up to 100 characters each).";
pub const SHARE_EMAIL: &str = "提出先のメールアドレスを正しく入力してください。 / Give the recipient's e-mail address.";
pub const SHARE_DAYS: &str = "有効期間は1〜365日で入力してください。 / The link lasts 1 to 365 days.";
pub const SHARE_DOWNLOADS: &str = "ダウンロードできる回数は1〜20回で入力してください。 / Allow 1 to 20 downloads.";
pub const SHARE_LINK_GONE: &str = "このリンクは正しくないか、提出者により取り消されました。 / This link is not valid, or the sender withdrew it.";
pub const NOT_A_PDF: &str = "PDFファイルを選んでください。 / Choose a PDF file.";
pub const PDF_TOO_BIG: &str = "PDFファイルを読み込めませんでした（10MBまで）。 / The PDF could not be read (10 MB at most).";
pub const CHOOSE_CARD: &str = "お支払いに使うICカード（ご自身の登録済みで使えるもの）を選んでください。 / Choose one of your linked, usable IC cards to pay with.";
pub fn balance_too_low(balance: &str, missing: &str) -> String {
    format!("カードの残高が足りません（残高 {balance}、不足 {missing}）。チャージしてからもう一度お支払いください。 / The card's balance is too low ({balance}; {missing} short): top it up, then pay again.")
}
pub fn shares_throttled(max: usize, minutes: i64) -> String {
    format!("1時間に作れる写しは{max}件までです。{minutes}分後にもう一度お試しください。 / You can send at most {max} copies an hour: please try again in {minutes} minutes.")
}

// ---------------------------------------------------------------- graduation day (issue 16)

pub const COHORT_TYPE: &str = "電子証明書（PDF）として交付する証明書を選んでください。 / Choose a certificate type delivered as a signed PDF.";
pub const COHORT_DATE: &str = "学籍記録に、この卒業日・学部の卒業生はいません。 / The school register has no graduates of this date and faculty.";
pub const NOTHING_TO_REFUND: &str = "この申込は大学が料金なしで発行したため、返金するものがありません。取り消すには証明書を失効させてください。 / The university issued this order at no charge, so there is nothing to refund: revoke the certificate to withdraw it.";
pub const COHORT_ALL_DONE: &str = "この卒業生には全員、この証明書をすでに発行しているか発行中です。 / Every graduate of this cohort has been issued this certificate already, or is being issued it.";
pub fn cohort_gave_up(tries: i64, why: &str) -> String {
    format!("{tries}回試しても発行できませんでした。もう一度一括発行すると、改めて試します。 / Not issued after {tries} tries: issue the cohort again to try once more. （{why}）")
}
pub fn unprintable_name(chars: &str) -> String {
    format!("氏名（または科目名）に、どのフォントでも印刷できない文字があります（{chars}）。個別に確認して申込を作成してください。 / The name (or a course name) has characters no installed font can print ({chars}): check it and issue this one by hand.")
}
