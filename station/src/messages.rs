//! The kiosk's message catalogue: every word a user reads at the station, in
//! Japanese and English. The flow in `kiosk` says *what* happened; this says
//! it in words, in one place, so both languages stay complete and consistent.

use shomei_shared::api::PrinterStatus;
use shomei_shared::{ErrorCode, PrintNumberError, Yen};

/// One text in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text {
    pub ja: String,
    pub en: String,
}

fn t(ja: impl Into<String>, en: impl Into<String>) -> Text {
    Text { ja: ja.into(), en: en.into() }
}

/// A screen's headline and message.
pub enum Says<'a> {
    EnterNumber,
    Checking,
    NumberInvalid(&'a PrintNumberError),
    CannotConnect,
    NumberRefused(ErrorCode),
    OutOfService(&'a Text),
    /// The backend revoked this station: it takes no users.
    Revoked,
    /// Offline (P-3 default policy): an unpaid number cannot be paid by IC card now.
    OfflinePaymentPaused,
    /// Offline: too many numbers the offline copy does not know (guessing).
    OfflineTooManyWrong { seconds: u64 },
    /// Offline (P-3 policy b): this station took as much as it may offline.
    OfflineTotalReached,
    /// P-5: the e-money terminal waits for the user's card.
    TerminalCharging { amount: Yen },
    /// P-5: the terminal's answer was lost and it cannot be asked yet.
    TerminalUnknown,
    StationFault,
    TapCard { amount: Yen },
    Charging,
    PaymentRefused(ErrorCode),
    ConnectionLostDuringPayment,
    ReaderFault,
    Printing,
    Done,
    PrintFailed { deadline: &'a str },
    /// The printer stopped under a paid job (out of paper, paused, jammed).
    PrinterStopped { problem: &'a Text, deadline: &'a str },
    /// Paid, but the journal could not record it: nothing prints here.
    FaultAfterPayment { deadline: &'a str },
    /// The printer holds the job and would not cancel it: it is not reported
    /// failed (it might still print) until the printer lets it go.
    PrintUnsettled,
}

impl Says<'_> {
    /// (headline, message)
    pub fn text(&self) -> (Text, Text) {
        match self {
            Says::EnterNumber => (
                t("学内印刷番号を入力してください", "Enter your on-campus print number"),
                t("メールでお知らせした12桁の番号です。", "The 12-digit number from your e-mail."),
            ),
            Says::Checking => (t("確認中", "Checking"), t("しばらくお待ちください。", "Please wait.")),
            Says::NumberInvalid(e) => {
                let detail = match e {
                    PrintNumberError::WrongLength(n) => t(format!("12桁のところ{n}桁です。"), format!("It has {n} digits instead of 12.")),
                    PrintNumberError::NotDigits => t("数字だけを入力してください。", "Use digits only."),
                    PrintNumberError::CheckDigit => t("数字の誤りか入れ替わりがあります。", "A digit is wrong or two digits are swapped."),
                };
                (
                    t("番号をご確認ください", "Please check the number"),
                    t(
                        format!("入力された番号は正しくありません。{}", detail.ja),
                        format!("The number you entered is not valid. {}", detail.en),
                    ),
                )
            }
            Says::CannotConnect => (
                t("通信できません", "Cannot connect"),
                t(
                    "ただいまサーバーと通信できません。しばらくしてからもう一度お試しください。料金は引き落とされていません。",
                    "The service cannot be reached right now. Please try again later. Nothing was charged.",
                ),
            ),
            Says::NumberRefused(code) => (t("この番号は印刷できません", "This number cannot be printed"), refusal(*code)),
            Says::OutOfService(problem) => (
                t("ただいまご利用いただけません", "Out of service"),
                t(
                    format!("この発行機はただいま使えません（{}）。料金はいただいていません。他の発行機をご利用ください。", problem.ja),
                    format!("This station cannot be used right now ({}). Nothing was charged. Please use another printer.", problem.en),
                ),
            ),
            Says::OfflinePaymentPaused => (
                t("ただいまICカードでのお支払いを停止しています", "IC card payment is paused"),
                t(
                    "サーバーと通信できないため、ICカードでのお支払いを一時停止しています。料金は引き落とされていません。しばらくしてからもう一度お試しください。お支払い済みの番号はこのまま印刷できます。",
                    "The service cannot be reached, so IC card payment is paused. Nothing was charged. Please try again later. Numbers already paid still print here.",
                ),
            ),
            Says::OfflineTooManyWrong { seconds } => (
                t("しばらくお待ちください", "Please wait a moment"),
                t(
                    format!("使えない番号の入力が続きました。{seconds}秒待ってからもう一度お試しください。料金は引き落とされていません。"),
                    format!("Several numbers in a row could not be used. Please wait {seconds} seconds and try again. Nothing was charged."),
                ),
            ),
            Says::OfflineTotalReached => (
                t("ただいまICカードでのお支払いを停止しています", "IC card payment is paused"),
                t(
                    "サーバーと通信できない間にこの発行機で受け付けられる金額の上限に達しました。料金は引き落とされていません。通信が戻るまでお待ちいただくか、他の発行機をご利用ください。お支払い済みの番号はこのまま印刷できます。",
                    "This station has taken as much as it may while the service cannot be reached. Nothing was charged. Please wait until it is back, or use another printer. Numbers already paid still print here.",
                ),
            ),
            Says::Revoked => (
                t("ただいまご利用いただけません", "Out of service"),
                t(
                    "この発行機は使用を停止しています。料金はいただいていません。他の発行機をご利用ください。",
                    "This printer has been taken out of service. Nothing was charged. Please use another printer.",
                ),
            ),
            Says::StationFault => (
                t("この発行機は故障中です", "This printer is out of order"),
                t(
                    "装置の異常のため、ただいまご利用いただけません。料金は引き落とされていません。",
                    "A fault stops this station from serving you. Nothing was charged.",
                ),
            ),
            Says::TapCard { amount } => (
                t("ICカードをタッチしてください", "Tap your IC card"),
                t(
                    format!("お支払い金額は {amount} です。カードをリーダーに置いてください。"),
                    format!("The amount due is {amount}. Place your card on the reader."),
                ),
            ),
            Says::TerminalCharging { amount } => (
                t("電子マネー端末にカードをタッチしてください", "Touch your card on the e-money terminal"),
                t(
                    format!("お支払い金額は {amount} です。交通系電子マネー（Suica・ICOCA・manaca など）のカードを、端末の画面に従ってタッチしてください。"),
                    format!("The amount due is {amount}. Touch your transit e-money card (Suica, ICOCA, manaca...) on the terminal as its screen says."),
                ),
            ),
            Says::TerminalUnknown => (
                t("お支払いの結果を確認しています", "Checking your payment"),
                t(
                    "電子マネー端末からの応答が途切れました。引き落としがあった場合は自動で記録され、二重に引き落とされることはありません。この番号はお支払いが確認でき次第、どの発行機でも印刷できます。",
                    "The e-money terminal stopped answering. If your card was charged this is recorded automatically and never charged twice; once the payment is confirmed the number prints at any station.",
                ),
            ),
            Says::Charging => (t("お支払い中", "Paying"), t("カードを離さないでください。", "Keep the card on the reader.")),
            Says::PaymentRefused(code) => {
                let r = refusal(*code);
                (
                    t("お支払いできませんでした", "Payment failed"),
                    t(format!("{}料金は引き落とされていません。", r.ja), format!("{} Nothing was charged.", r.en)),
                )
            }
            Says::ConnectionLostDuringPayment => (
                t("通信が切れました", "Connection lost"),
                t(
                    "支払いの途中で通信が切れました。引き落としがあった場合、同じ番号で再度の支払いなしに印刷できます。",
                    "The connection was lost during payment. If you were charged, the same number prints without paying again.",
                ),
            ),
            Says::ReaderFault => (
                t("カードリーダーの故障", "Card reader out of order"),
                t("カードリーダーが使えません。料金はいただいていません。", "The card reader is not working. Nothing was charged."),
            ),
            Says::Printing => (
                t("印刷中", "Printing"),
                t("証明書を印刷しています。しばらくお待ちください。", "Your certificates are printing. Please wait."),
            ),
            Says::Done => (
                t("印刷が終わりました", "Printing finished"),
                t("証明書をお取りください。ご利用ありがとうございました。", "Please take your certificates. Thank you."),
            ),
            Says::PrintFailed { deadline } => (
                t("印刷できませんでした", "Printing failed"),
                t(
                    format!("お支払いは保持されています。印刷期限（{deadline}）まで、どの発行機でも同じ番号で再印刷できます。"),
                    format!("Your payment is kept: the same number prints at any station until the deadline ({deadline})."),
                ),
            ),
            Says::PrinterStopped { problem, deadline } => (
                t("プリンタが止まりました", "The printer stopped"),
                t(
                    format!("印刷中にプリンタが止まりました（{}）。お支払いは保持されています。印刷期限（{deadline}）まで、他の発行機で同じ番号で印刷できます。", problem.ja),
                    format!("The printer stopped while printing ({}). Your payment is kept: the same number prints at another station until the deadline ({deadline}).", problem.en),
                ),
            ),
            Says::FaultAfterPayment { deadline } => (
                t("この発行機は故障中です", "This station has a fault"),
                t(
                    format!("お支払いは完了しましたが、この発行機では印刷できません。印刷期限（{deadline}）まで、他の発行機で同じ番号で印刷できます。"),
                    format!("Your payment went through, but this station cannot print. The same number prints at another station until the deadline ({deadline})."),
                ),
            ),
            Says::PrintUnsettled => (
                t("印刷が終わっていません", "Printing did not finish"),
                t(
                    "プリンタが印刷を終えず、取り消しもできませんでした。お支払いは保持されています。二重に印刷されないよう、この番号はプリンタが止まるまで他の発行機では印刷できません。係員にお知らせください。",
                    "The printer did not finish and would not cancel the job. Your payment is kept. So that nothing prints twice, the number prints elsewhere only once the printer lets the job go. Please tell the staff.",
                ),
            ),
        }
    }
}

/// The second line of the card screen.
pub enum Notice {
    CardLyingOnReader,
    CardRemovedTooSoon,
    CardUnreadable,
    LowBalance { balance: Yen, missing: Yen },
    CardRefused(ErrorCode),
    /// A card no account holds: how to link it, with its ID (groups of 4) and
    /// the one-time code (shown large beside the notice).
    LinkCard { card_id: String, code: String, minutes: i64 },
    /// A card the station does not know while the backend cannot be reached:
    /// linking needs the network.
    LinkNeedsNetwork,
    /// The done screen after an e-money terminal paid (its card's ID is not known here).
    BalanceLeft(Yen),
    /// The done screen after a linked IC card paid: the last four of its ID and what is left on it.
    CardBalanceLeft { tail: String, balance: Yen },
    /// Offline (P-3 policy b): this card may not go that far below zero here.
    OfflineLimit { balance: Yen },
    /// P-5: the terminal declined; nothing was charged.
    TerminalDeclined(crate::terminal::Declined),
    /// P-5: the terminal is not connected.
    TerminalUnavailable,
}

impl Notice {
    pub fn text(&self) -> Text {
        match self {
            Notice::CardLyingOnReader => t(
                "カードが置かれたままです。いったんリーダーから離し、お支払いに使うカードをタッチしてください。",
                "A card is already lying on the reader. Lift it, then tap the card you want to pay with.",
            ),
            Notice::CardRemovedTooSoon => t(
                "カードが途中で離れました。もう一度タッチしてください。",
                "The card was taken away too soon. Please tap it again.",
            ),
            Notice::CardUnreadable => t(
                "カードを読み取れませんでした。カードを1枚だけ置いてください。",
                "The card could not be read. Place one card only.",
            ),
            Notice::LowBalance { balance, missing } => t(
                format!("残高が不足しています（残高 {balance}、不足 {missing}）。チャージ済みの別のカードをタッチしてください。"),
                format!("Not enough balance on this card (balance {balance}, {missing} missing). Tap another card with enough balance."),
            ),
            Notice::CardRefused(code) => refusal(*code),
            // the card's ID and the code itself are shown large beside this (Screen::card_id, link_code)
            Notice::LinkCard { minutes, .. } => t(
                format!(
                    "このカードはまだ登録されていません。スマートフォンなどでポータルにログイン ›「ICカード」› 下の登録コードを入力（{minutes}分間有効）。そのあとカードに入金すると支払えます。この番号はこのまま使えます。別のカードをタッチするか、「やめる」を押してください。"
                ),
                format!(
                    "This card is not linked to an account yet. Log in to the portal (on your phone) › IC cards › enter the link code below (valid {minutes} minutes); then top the card up to pay with it. Your number still works: tap another card, or press Cancel."
                ),
            ),
            Notice::LinkNeedsNetwork => t(
                "このカードはこの発行機では確認できません。まだ登録していないカードの登録には、サーバーとの通信が必要です（ただいま通信できません）。料金は引き落とされていません。登録済みの別のカードをタッチするか、通信が戻ってからお試しください。",
                "This card is not known here. Linking a card needs the network, and the service cannot be reached right now. Nothing was charged. Tap another, linked card, or try again once the service is back.",
            ),
            Notice::CardBalanceLeft { tail, balance } => t(
                format!("カードをお取りください。カード（末尾 {tail}）の残高: {balance}"),
                format!("Please take your card. Balance left on card …{tail}: {balance}"),
            ),
            // the done screen after the e-money terminal paid: the card is not forgotten
            Notice::BalanceLeft(b) => t(format!("カードをお取りください。カード残高: {b}"), format!("Please take your card. Card balance: {b}")),
            Notice::TerminalDeclined(d) => match d {
                crate::terminal::Declined::Insufficient => t(
                    "電子マネーの残高が足りません。料金は引き落とされていません。別のカードか、ICカードリーダーでお支払いください。",
                    "Not enough e-money on the card. Nothing was charged. Use another card, or pay on the IC card reader.",
                ),
                crate::terminal::Declined::CardError => t(
                    "端末がカードを読み取れませんでした。料金は引き落とされていません。もう一度お試しください。",
                    "The terminal could not read the card. Nothing was charged. Please try again.",
                ),
                crate::terminal::Declined::NoCard | crate::terminal::Declined::Cancelled => t(
                    "端末にカードがタッチされませんでした。料金は引き落とされていません。",
                    "No card was touched on the terminal. Nothing was charged.",
                ),
            },
            Notice::TerminalUnavailable => t(
                "電子マネー端末はただいま使えません。ICカードリーダーでお支払いください。",
                "The e-money terminal is not available right now. Please pay on the IC card reader.",
            ),
            Notice::OfflineLimit { balance } => t(
                format!("通信できない間は、このカードではこの金額をお支払いいただけません（確認できる残高 {balance}）。料金は引き落とされていません。別のカードをタッチするか、通信が戻ってからお試しください。"),
                format!("While the service cannot be reached this card cannot pay this amount (last known balance {balance}). Nothing was charged. Tap another card, or try again once the service is back."),
            ),
        }
    }
}

/// Why the backend said no, for people.
pub fn refusal(code: ErrorCode) -> Text {
    match code {
        ErrorCode::PrintNumberUnknown => t(
            "この番号の申込は見つかりません。番号をご確認ください。",
            "No order has this number. Please check the number.",
        ),
        ErrorCode::PrintNumberUsed => t("この番号の証明書は印刷済みです。", "The certificates for this number were printed already."),
        ErrorCode::PrintNumberExpired => t(
            "この番号は印刷期限を過ぎたため使えません。",
            "This number has passed its print deadline and can no longer be used.",
        ),
        ErrorCode::PrintNumberBusy => t(
            "この番号は別の発行機で使用中です。しばらくしてからお試しください。",
            "This number is in use at another printer. Please try again in a few minutes.",
        ),
        ErrorCode::Throttled => t("誤った番号が続いたため、1分ほどお待ちください。", "Too many wrong numbers: please wait a minute."),
        ErrorCode::ReservationExpired => t("時間切れになりました。最初からやり直してください。", "Time ran out. Please start again."),
        ErrorCode::CardUnknown => t(
            "このカードは登録されていません。別のカードをタッチしてください。",
            "This card is not registered. Please tap another card.",
        ),
        ErrorCode::CardBlocked => t(
            "このカードは利用停止中です。別のカードをタッチしてください。",
            "This card is blocked. Please tap another card.",
        ),
        ErrorCode::StationRevoked | ErrorCode::Unauthorized => {
            t("この発行機は現在ご利用いただけません。", "This printer is out of service.")
        }
        ErrorCode::ServiceSuspended => t("ただいまサービスを停止しています。", "The service is suspended at the moment."),
        ErrorCode::NotPaid => t(
            "この申込はまだお支払いが済んでいません。クレジットカードまたはコンビニでのお支払いが確認されると印刷できます。",
            "This order is not paid yet. It prints once the credit card or convenience-store payment has gone through.",
        ),
        _ => t("処理できませんでした。", "This could not be done."),
    }
}

/// The card reader is gone, for the out-of-service screen.
pub fn maintenance() -> Text {
    t("係員が保守のため休止しています", "staff have taken it out of service for maintenance")
}

pub fn storage_full() -> Text {
    t("記録領域の空きがありません", "the station's storage is full")
}

pub fn reader_missing() -> Text {
    t("カードリーダーが接続されていません", "the card reader is not connected")
}

/// Printer problems in words, for the out-of-service screen.
pub fn printer_problem(status: &PrinterStatus) -> Text {
    if !status.reachable {
        return t("プリンタが応答しません", "the printer does not respond");
    }
    let mut ja = Vec::new();
    let mut en = Vec::new();
    for r in status.blocking_reasons() {
        let (j, e) = match r.trim_end_matches("-report").trim_end_matches("-warning").trim_end_matches("-error") {
            "media-empty" | "media-needed" => ("用紙切れ", "out of paper"),
            "media-jam" => ("紙づまり", "paper jam"),
            "toner-empty" | "marker-supply-empty" => ("トナー切れ", "out of toner"),
            "door-open" | "cover-open" => ("カバーが開いています", "a cover is open"),
            "paused" | "moving-to-paused" => ("一時停止中", "paused"),
            _ => ("プリンタの異常", "printer fault"),
        };
        if !ja.contains(&j) {
            ja.push(j);
            en.push(e);
        }
    }
    if ja.is_empty() && status.state == "stopped" {
        ja.push("プリンタ停止中");
        en.push("the printer is stopped");
    }
    t(ja.join("・"), en.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_problems_are_named_in_both_languages() {
        let s = PrinterStatus { reachable: true, state: "idle".into(), reasons: vec!["media-empty-report".into()], ..PrinterStatus::default() };
        assert_eq!(printer_problem(&s), t("用紙切れ", "out of paper"));
        assert_eq!(printer_problem(&PrinterStatus::default()).en, "the printer does not respond");
    }

    #[test]
    fn the_end_says_to_take_the_certificates_and_the_card_that_paid() {
        let (_, done) = Says::Done.text();
        assert!(done.ja.contains("証明書をお取りください") && done.en.contains("take your certificates"), "{done:?}");
        let card = Notice::BalanceLeft(Yen(2600)).text();
        assert!(card.ja.contains("カードをお取りください") && card.en.contains("take your card"), "{card:?}");
        assert!(card.ja.contains("¥2,600") && card.en.contains("¥2,600"), "{card:?}");
    }

    #[test]
    fn an_unlinked_card_is_told_how_to_link_it_and_the_done_screen_names_only_its_tail() {
        let link = Notice::LinkCard { card_id: "0A1B 2C3D 4E5F 6071".into(), code: "7KQ 2M9".into(), minutes: 15 }.text();
        assert!(link.ja.contains("15分間") && link.en.contains("15 minutes"), "{link:?}");
        assert!(link.ja.contains("ポータル") && link.ja.contains("登録コード") && link.ja.contains("入金"), "{link:?}");
        assert!(link.en.contains("IC cards") && link.en.contains("link code") && link.en.contains("top the card up"), "{link:?}");
        let offline = Notice::LinkNeedsNetwork.text();
        assert!(offline.ja.contains("通信") && offline.en.contains("needs the network"), "{offline:?}");
        let done = Notice::CardBalanceLeft { tail: "6071".into(), balance: Yen(1400) }.text();
        assert!(done.ja.contains("6071") && done.en.contains("…6071") && done.ja.contains("¥1,400") && done.en.contains("¥1,400"), "{done:?}");
        assert!(done.ja.contains("カードをお取りください") && done.en.contains("take your card"), "{done:?}");
        assert!(!done.en.contains("0A1B"), "{done:?}");
    }

    #[test]
    fn every_refusal_has_both_languages() {
        use ErrorCode::*;
        for code in [PrintNumberUnknown, PrintNumberUsed, PrintNumberExpired, PrintNumberBusy, Throttled, ReservationExpired,
                     CardUnknown, CardBlocked, StationRevoked, ServiceSuspended, NotPaid, Internal] {
            let r = refusal(code);
            assert!(!r.ja.is_empty() && !r.en.is_empty(), "{code:?}");
            assert!(!r.ja.is_ascii() && r.en.is_ascii(), "{code:?}: {r:?}");
        }
    }
}
