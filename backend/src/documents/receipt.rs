//! Receipt (領収書) for a payment: an order's fees or an IC card top-up, one
//! A4 page, Japanese with English under it.

use super::{assemble, Canvas, Date, DocumentError, FontSet, Shaper, PAGE_W};

/// One line of what was paid for.
#[derive(Clone, Debug)]
pub struct ReceiptLine {
    pub label_ja: String,
    pub label_en: String,
    /// Copies, or 1 for a fee.
    pub quantity: i64,
    /// Yen for the line (quantity included).
    pub amount: i64,
}

#[derive(Clone, Debug)]
pub struct ReceiptData {
    /// e.g. "R-O-000042" (order 42) or "R-T-000007" (top-up 7).
    pub receipt_no: String,
    /// `YYYY-MM-DD`.
    pub issue_date: String,
    /// `YYYY-MM-DD`.
    pub paid_date: String,
    pub payer_ja: String,
    pub payer_en: String,
    /// "但し" wording, e.g. ("証明書発行手数料として", "for certificate issuance fees").
    pub purpose_ja: String,
    pub purpose_en: String,
    pub lines: Vec<ReceiptLine>,
    pub total: i64,
    /// e.g. ("クレジットカード（PayPal）", "Credit card (PayPal)").
    pub method_ja: String,
    pub method_en: String,
    /// The payment service's reference (capture id, payment number); may be empty.
    pub reference: String,
    pub university_ja: String,
    pub university_en: String,
}

const MARGIN: f32 = 64.0;
const RIGHT: f32 = PAGE_W - MARGIN;
const WIDTH: f32 = RIGHT - MARGIN;

/// "¥1,234".
fn yen(amount: i64) -> String {
    shomei_shared::Yen(amount).to_string()
}

/// Render a receipt as a one-page PDF.
pub fn render_receipt(fonts: &FontSet, r: &ReceiptData) -> Result<Vec<u8>, DocumentError> {
    let issued = Date::parse("issue_date", r.issue_date.trim())?;
    let paid = Date::parse("paid_date", r.paid_date.trim())?;
    let sum: i64 = r.lines.iter().map(|l| l.amount).sum();
    if r.lines.is_empty() || sum != r.total || r.total <= 0 {
        return Err(DocumentError::InvalidField { field: "total", value: format!("{} (lines add up to {sum})", r.total) });
    }
    let mut shaper = Shaper::new(fonts.faces()?);
    let mut c = Canvas { shaper: &mut shaper, ops: String::new() };

    c.centered("領収書", 770.0, 28.0, 0.5, WIDTH);
    c.centered("Receipt", 744.0, 13.0, 0.0, WIDTH);
    c.text_right(&format!("No. {}", r.receipt_no.trim()), RIGHT, 714.0, 10.0, 200.0);
    c.text_right(&format!("発行日 {}　Issued {}", issued.ja(), issued.en()), RIGHT, 700.0, 9.0, 300.0);

    // Payer.
    c.text(&format!("{}　様", r.payer_ja.trim()), MARGIN, 660.0, 18.0, WIDTH * 0.6);
    c.text(r.payer_en.trim(), MARGIN, 642.0, 10.0, WIDTH * 0.6);
    c.hline(MARGIN, MARGIN + WIDTH * 0.62, 636.0, 0.6);

    // Amount box.
    c.ops.push_str("0.3 0.3 0.3 RG\n");
    c.stroke_rect(MARGIN, 560.0, WIDTH, 56.0, 1.0);
    c.ops.push_str("0 0 0 RG\n");
    c.text("金額", MARGIN + 14.0, 592.0, 12.0, 60.0);
    c.text("Amount", MARGIN + 14.0, 578.0, 8.0, 60.0);
    c.text_center(&format!("{}－", yen(r.total)), PAGE_W / 2.0 + 20.0, 580.0, 26.0, WIDTH - 140.0);
    c.text(&format!("但し　{}", r.purpose_ja.trim()), MARGIN, 536.0, 11.0, WIDTH);
    c.text(&format!("For {}", r.purpose_en.trim()), MARGIN, 522.0, 8.5, WIDTH);
    c.text("上記の金額を正に領収いたしました。", MARGIN, 500.0, 11.0, WIDTH);
    c.text("Received with thanks the amount above.", MARGIN, 486.0, 8.5, WIDTH);

    // Details.
    let qty_x = RIGHT - 130.0;
    let mut y = 450.0;
    c.fill_rect(MARGIN, y - 6.0, WIDTH, 20.0, 0.9);
    c.text("内訳 Details", MARGIN + 6.0, y, 9.0, 200.0);
    c.text_right("数量 Qty", qty_x, y, 9.0, 80.0);
    c.text_right("金額 Amount", RIGHT - 6.0, y, 9.0, 100.0);
    y -= 24.0;
    for line in &r.lines {
        c.text(line.label_ja.trim(), MARGIN + 6.0, y, 10.0, qty_x - MARGIN - 70.0);
        c.text(line.label_en.trim(), MARGIN + 6.0, y - 11.0, 7.5, qty_x - MARGIN - 70.0);
        c.text_right(&line.quantity.to_string(), qty_x, y, 10.0, 60.0);
        c.text_right(&yen(line.amount), RIGHT - 6.0, y, 10.0, 100.0);
        c.ops.push_str("0.7 0.7 0.7 RG\n");
        c.hline(MARGIN, RIGHT, y - 17.0, 0.3);
        c.ops.push_str("0 0 0 RG\n");
        y -= 30.0;
        if y < 230.0 {
            return Err(DocumentError::Layout(format!("receipt {}: too many lines for one page", r.receipt_no)));
        }
    }
    c.text("合計 Total", MARGIN + 6.0, y, 11.0, 200.0);
    c.text_right(&yen(r.total), RIGHT - 6.0, y, 11.0, 120.0);
    c.hline(MARGIN, RIGHT, y - 6.0, 0.8);
    y -= 34.0;

    // Payment.
    c.text(&format!("支払方法 Payment: {}　{}", r.method_ja.trim(), r.method_en.trim()), MARGIN, y, 9.5, WIDTH);
    c.text(&format!("支払日 Date paid: {}　{}", paid.ja(), paid.en()), MARGIN, y - 15.0, 9.5, WIDTH);
    if !r.reference.trim().is_empty() {
        c.text(&format!("取引番号 Reference: {}", r.reference.trim()), MARGIN, y - 30.0, 9.5, WIDTH);
    }

    // Issuer.
    let issuer_x = PAGE_W / 2.0 + 20.0;
    c.text(r.university_ja.trim(), issuer_x, 150.0, 15.0, RIGHT - issuer_x);
    c.text(r.university_en.trim(), issuer_x, 134.0, 9.0, RIGHT - issuer_x);
    c.text("証明書発行サービス", issuer_x, 116.0, 10.0, RIGHT - issuer_x);
    c.text("Certificate Issuance Service", issuer_x, 104.0, 8.0, RIGHT - issuer_x);
    c.ops.push_str("0.4 0.4 0.4 RG\n");
    c.hline(MARGIN, RIGHT, 80.0, 0.4);
    c.ops.push_str("0 0 0 RG\n");
    c.text("この領収書は電子的に発行されたものです。再発行分も同じ番号で発行されます。", MARGIN, 66.0, 7.5, WIDTH);
    c.text("This receipt was issued electronically; a copy downloaded again carries the same number.", MARGIN, 56.0, 7.0, WIDTH);

    let ops = c.ops;
    let out = assemble(fonts, shaper, vec![ops], &format!("領収書 / Receipt {}", r.receipt_no.trim()))?;
    tracing::debug!(receipt = %r.receipt_no, bytes = out.len(), "rendered receipt PDF");
    Ok(out)
}

/// The operators' test page: which station, when, and a few lines to judge
/// the print by (both scripts, a frame, a grey bar).
/// A station's test page: its university, its name and the time, in both languages.
pub fn render_test_page(fonts: &FontSet, university: (&str, &str), station: &str, when: &str) -> Result<Vec<u8>, DocumentError> {
    let mut shaper = Shaper::new(fonts.faces()?);
    let mut c = Canvas { shaper: &mut shaper, ops: String::new() };
    c.centered("テストページ", 740.0, 28.0, 0.0, WIDTH);
    c.centered("Test page", 712.0, 14.0, 0.0, WIDTH);
    c.text(&format!("{} {}", university.0.trim(), university.1.trim()), MARGIN, 680.0, 12.0, WIDTH);
    c.text(&format!("発行機 Station: {}", station.trim()), MARGIN, 660.0, 12.0, WIDTH);
    c.text(&format!("日時 Time: {when}"), MARGIN, 640.0, 12.0, WIDTH);
    c.text("証明書発行サービス　Certificate Issuance Service", MARGIN, 610.0, 11.0, WIDTH);
    c.text("あいうえお　アイウエオ　漢字　ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789", MARGIN, 580.0, 11.0, WIDTH);
    c.hline(MARGIN, RIGHT, 560.0, 1.0);
    c.ops.push_str(&format!("0.5 g {MARGIN} 500 {WIDTH} 30 re f 0 g\n"));
    c.ops.push_str(&format!("{MARGIN} 60 {WIDTH} 720 re S\n"));
    let ops = c.ops;
    assemble(fonts, shaper, vec![ops], "テストページ / Test page")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ipaex_set, pdftotext, run, write_temp};
    use super::*;

    fn receipt() -> ReceiptData {
        ReceiptData {
            receipt_no: "R-O-000042".into(),
            issue_date: "2026-11-24".into(),
            paid_date: "2026-11-23".into(),
            payer_ja: "山田 花子".into(),
            payer_en: "YAMADA Hanako".into(),
            purpose_ja: "証明書発行手数料として".into(),
            purpose_en: "certificate issuance fees".into(),
            lines: vec![
                ReceiptLine { label_ja: "卒業証明書".into(), label_en: "Certificate of Graduation".into(), quantity: 2, amount: 600 },
                ReceiptLine { label_ja: "システム利用料".into(), label_en: "System usage fee".into(), quantity: 1, amount: 100 },
            ],
            total: 700,
            method_ja: "クレジットカード（PayPal）".into(),
            method_en: "Credit card (PayPal)".into(),
            reference: "CAP-123".into(),
            university_ja: "国立証明大学".into(),
            university_en: "Shomei National University".into(),
        }
    }

    #[test]
    fn a_receipt_names_payer_amount_lines_and_method() {
        let pdf = render_receipt(&ipaex_set(), &receipt()).expect("render");
        let file = write_temp(&pdf);
        let report = run("qpdf", &["--check"], file.path());
        assert!(report.contains("No syntax or stream encoding errors"), "{report}");
        let text = pdftotext(file.path());
        let squeezed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        assert!(squeezed.contains("領収書"), "the title is spaced out:\n{text}");
        for needle in [ "Receipt", "R-O-000042", "山田 花子", "YAMADA Hanako", "¥700", "卒業証明書", "¥600", "Credit card (PayPal)", "CAP-123", "2026年11月23日", "国立証明大学"] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
    }

    #[test]
    fn a_total_that_does_not_add_up_is_refused() {
        let mut r = receipt();
        r.total = 800;
        assert!(matches!(render_receipt(&ipaex_set(), &r), Err(DocumentError::InvalidField { field: "total", .. })));
        r.lines.clear();
        assert!(render_receipt(&ipaex_set(), &r).is_err());
        let mut r = receipt();
        r.paid_date = "2026/11/23".into();
        assert!(matches!(render_receipt(&ipaex_set(), &r), Err(DocumentError::InvalidField { field: "paid_date", .. })));
    }
}
