//! Receipts (領収書): a PDF for every payment a user made, an order's fees
//! (by IC card, PayPal or Smart Pit) or an IC card top-up. Made on request
//! from what the order or top-up recorded, so a receipt downloaded again is
//! the same receipt with the same number.

use crate::documents::{self, FontSet, ReceiptData, ReceiptLine};
use crate::error::{AppError, AppResult};
use crate::store;
use crate::time::{self, now};
use crate::store::Pool;

pub const NOT_YET: &str = "領収書はお支払いの後に発行できます。 / A receipt is available once the order is paid.";
pub const REFUNDED: &str = "この申込は返金済みのため、領収書は発行できません。 / This order was refunded, so there is no receipt for it.";

fn method(payment_method: &str) -> (&'static str, &'static str) {
    match payment_method {
        "card" => ("ICカード（学内の証明書発行機）", "IC card (campus certificate printer)"),
        "paypal" => ("クレジットカード（PayPal）", "Credit card (PayPal)"),
        "smartpit" => ("コンビニ払い（Smart Pit）", "Cash at a convenience store (Smart Pit)"),
        "university" => ("大学が発行（料金なし）", "Issued by the university (no charge)"),
        _ => ("その他", "Other"),
    }
}

fn render(fonts: &FontSet, data: &ReceiptData) -> AppResult<Vec<u8>> {
    documents::render_receipt(fonts, data).map_err(|e| AppError::Internal(anyhow::anyhow!("receipt PDF: {e}")))
}

/// The receipt of a user's paid order: (file name, PDF).
pub async fn for_order(pool: &Pool, fonts: &FontSet, user_id: i64, order_id: i64) -> AppResult<(String, Vec<u8>)> {
    let mut c = pool.acquire().await?;
    let order = store::order(&mut c, order_id).await.map_err(|_| AppError::PageNotFound)?;
    if order.user_id != user_id {
        return Err(AppError::PageNotFound);
    }
    let paid_at = match (order.status.as_str(), order.paid_at) {
        ("paid" | "printed", Some(at)) => at,
        ("cancelled", Some(_)) => return Err(AppError::Page(REFUNDED.into())),
        _ => return Err(AppError::Page(NOT_YET.into())),
    };
    let record = store::student_records(&mut c, user_id).await?.into_iter().find(|r| r.id == order.student_record_id).ok_or(AppError::PageNotFound)?;
    let university = store::university(&mut c, record.university_id).await?;
    let zone = time::tz(&university.timezone);
    let mut lines: Vec<ReceiptLine> = store::order_lines(&mut c, order_id)
        .await?
        .into_iter()
        .map(|l| ReceiptLine { label_ja: l.name_ja, label_en: l.name_en, quantity: l.copies, amount: l.amount })
        .collect();
    lines.push(ReceiptLine { label_ja: "システム利用料".into(), label_en: "System usage fee".into(), quantity: 1, amount: order.system_fee });
    if order.postage > 0 {
        lines.push(ReceiptLine { label_ja: "送料".into(), label_en: "Postage".into(), quantity: 1, amount: order.postage });
    }
    let (method_ja, method_en) = method(&order.payment_method);
    let reference = match order.payment_method.as_str() {
        "paypal" => order.capture_id.clone().unwrap_or_default(),
        "smartpit" => order.smartpit_number.clone().unwrap_or_default(),
        _ => String::new(),
    };
    let data = ReceiptData {
        receipt_no: format!("R-O-{order_id:06}"),
        issue_date: time::local_date(now(), zone),
        paid_date: time::local_date(paid_at, zone),
        payer_ja: record.name_kanji,
        payer_en: record.name_roman,
        purpose_ja: "証明書発行手数料として".into(),
        purpose_en: "certificate issuance fees".into(),
        lines,
        total: order.total,
        method_ja: method_ja.into(),
        method_en: method_en.into(),
        reference,
        university_ja: university.name_ja,
        university_en: university.name_en,
    };
    Ok((format!("receipt-order-{order_id}.pdf"), render(fonts, &data)?))
}

/// The receipt of one of the user's completed IC card top-ups: (file name, PDF).
pub async fn for_topup(pool: &Pool, fonts: &FontSet, user_id: i64, topup_id: i64) -> AppResult<(String, Vec<u8>)> {
    let mut c = pool.acquire().await?;
    let (_, card, amount, capture, at) = store::captured_topups(&mut c, user_id).await?.into_iter().find(|t| t.0 == topup_id).ok_or(AppError::PageNotFound)?;
    let user = store::user(&mut c, user_id).await?;
    let record = store::student_records(&mut c, user_id).await?.into_iter().next();
    let university = match &record {
        Some(r) => Some(store::university(&mut c, r.university_id).await?),
        None => None,
    };
    let zone = time::tz(university.as_ref().map(|u| u.timezone.as_str()).unwrap_or("Asia/Tokyo"));
    let (payer_ja, payer_en) = record.map(|r| (r.name_kanji, r.name_roman)).unwrap_or_else(|| (user.email.clone(), user.email.clone()));
    let data = ReceiptData {
        receipt_no: format!("R-T-{topup_id:06}"),
        issue_date: time::local_date(now(), zone),
        paid_date: time::local_date(at, zone),
        payer_ja,
        payer_en,
        purpose_ja: "ICカードへの入金として".into(),
        purpose_en: "an IC card top-up".into(),
        lines: vec![ReceiptLine { label_ja: format!("ICカード入金（{card}）"), label_en: format!("IC card top-up ({card})"), quantity: 1, amount }],
        total: amount,
        method_ja: method("paypal").0.into(),
        method_en: method("paypal").1.into(),
        reference: capture,
        university_ja: university.as_ref().map(|u| u.name_ja.clone()).unwrap_or_default(),
        university_en: university.as_ref().map(|u| u.name_en.clone()).unwrap_or_default(),
    };
    Ok((format!("receipt-topup-{topup_id}.pdf"), render(fonts, &data)?))
}
