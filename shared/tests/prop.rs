//! Property tests of what the shared crate parses from untrusted input:
//! print numbers as people type them, and the sync API's JSON as the
//! station and the backend receive it from each other.
//!
//! Cases per property: `SHOMEI_PROPTEST_CASES` (default 256); see `support`.

mod support;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shomei_shared::api::*;
use shomei_shared::print_number::{damm, LEN};
use shomei_shared::{ApiError, ErrorCode, PrintNumber, PrintNumberError, Yen};

const CASES: u32 = 256;

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

// ------------------------------------------------------------------ print numbers

/// 11 random digits and their Damm check digit.
fn valid_digits() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(0u8..10, LEN - 1).prop_map(|mut d| {
        d.push(damm(&d));
        d
    })
}

fn spell(d: &[u8]) -> String {
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

/// Characters `PrintNumber::parse` skips between digits.
const SEPARATORS: [char; 10] = [' ', '-', '\u{3000}', '\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2015}', '\u{30FC}'];

/// Strings that look like what people type: mostly digits (ASCII and
/// full-width) and separators, sometimes anything else.
fn typed_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        6 => (0u32..10).prop_map(|d| char::from_u32('0' as u32 + d).unwrap_or('0')),
        2 => (0u32..10).prop_map(|d| char::from_u32(0xFF10 + d).unwrap_or('0')),
        2 => proptest::sample::select(SEPARATORS.to_vec()),
        1 => Just('\u{FF0D}'),
        1 => any::<char>(),
    ];
    prop_oneof![
        4 => proptest::collection::vec(ch, 0..20).prop_map(|cs| cs.into_iter().collect::<String>()),
        1 => any::<String>(),
    ]
}

/// The digit a character stands for, as the print number rules say; None for a separator.
fn digit_of(c: char) -> Result<Option<u8>, ()> {
    match c {
        '0'..='9' => Ok(Some(c as u8 - b'0')),
        '\u{FF10}'..='\u{FF19}' => Ok(Some((c as u32 - 0xFF10) as u8)),
        ' ' | '-' | '\u{3000}' | '\u{2010}'..='\u{2015}' | '\u{30FC}' | '\u{FF0D}' => Ok(None),
        _ => Err(()),
    }
}

#[test]
fn print_number_parse_classifies_any_text() {
    support::check("print_number_parse_classifies_any_text", support::cases(CASES), typed_text(), |s| {
        let got = PrintNumber::parse(&s);
        // the rules, stated independently: characters, then count, then check digit
        let digits: Result<Vec<u8>, ()> = s.chars().map(digit_of).filter_map(Result::transpose).collect();
        let expected = match digits {
            Err(()) => Err(PrintNumberError::NotDigits),
            Ok(d) if d.len() != LEN => Err(PrintNumberError::WrongLength(d.len())),
            Ok(d) if damm(&d) != 0 => Err(PrintNumberError::CheckDigit),
            Ok(d) => Ok(spell(&d)),
        };
        match (&got, &expected) {
            (Ok(n), Ok(bare)) => {
                prop_assert_eq!(n.as_str(), bare.as_str());
                prop_assert_eq!(PrintNumber::parse(n.as_str()), Ok(n.clone()), "parsing is idempotent");
            }
            (Err(a), Err(b)) => {
                prop_assert_eq!(a, b);
            }
            _ => return Err(fail(format!("{s:?}: got {got:?}, expected {expected:?}"))),
        }
        Ok(())
    });
}

#[test]
fn valid_print_numbers_round_trip_in_every_spelling() {
    support::check("valid_print_numbers_round_trip_in_every_spelling", support::cases(CASES), valid_digits(), |d| {
        let bare = spell(&d);
        let n = PrintNumber::parse(&bare).map_err(fail)?;
        prop_assert_eq!(n.as_str(), bare.as_str());
        prop_assert_eq!(PrintNumber::parse(&n.grouped()), Ok(n.clone()));
        prop_assert_eq!(PrintNumber::parse(&n.to_string()), Ok(n.clone()));
        prop_assert_eq!(bare.parse::<PrintNumber>(), Ok(n.clone()));
        let hyphens = format!("{}-{}-{}", &bare[..4], &bare[4..8], &bare[8..]);
        prop_assert_eq!(PrintNumber::parse(&hyphens), Ok(n.clone()));
        let full_width: String = d.iter().filter_map(|x| char::from_u32(0xFF10 + u32::from(*x))).collect();
        prop_assert_eq!(PrintNumber::parse(&full_width), Ok(n.clone()));
        let json = serde_json::to_string(&n).map_err(fail)?;
        prop_assert_eq!(&json, &format!("\"{bare}\""));
        prop_assert_eq!(serde_json::from_str::<PrintNumber>(&json).map_err(fail)?, n.clone());
        prop_assert!(n.masked().ends_with(&bare[LEN - 4..]) && !n.masked().contains(&bare[..LEN - 4]));
        Ok(())
    });
}

#[test]
fn generated_print_numbers_are_valid() {
    support::check("generated_print_numbers_are_valid", support::cases(CASES), any::<u64>(), |seed| {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = PrintNumber::generate(&mut rng);
        prop_assert_eq!(n.as_str().len(), LEN);
        prop_assert_eq!(PrintNumber::parse(n.as_str()), Ok(n.clone()));
        Ok(())
    });
}

/// The Damm check digit catches every single wrong digit (check digit included).
#[test]
fn any_single_wrong_digit_is_refused() {
    let strategy = (valid_digits(), 0..LEN, 1u8..10);
    support::check("any_single_wrong_digit_is_refused", support::cases(CASES), strategy, |(d, pos, delta)| {
        let mut wrong = d.clone();
        wrong[pos] = (wrong[pos] + delta) % 10;
        prop_assert_eq!(PrintNumber::parse(&spell(&wrong)), Err(PrintNumberError::CheckDigit), "{} from {}", spell(&wrong), spell(&d));
        Ok(())
    });
}

/// ... and every swap of two different neighbouring digits (the check digit and
/// the last data digit included).
#[test]
fn any_neighbour_swap_is_refused() {
    let strategy = (valid_digits(), 0..LEN - 1);
    support::check("any_neighbour_swap_is_refused", support::cases(CASES), strategy, |(d, pos)| {
        let mut swapped = d.clone();
        swapped.swap(pos, pos + 1);
        if d[pos] == d[pos + 1] {
            prop_assert_eq!(PrintNumber::parse(&spell(&swapped)).map(|n| n.as_str().to_string()), Ok(spell(&d)));
        } else {
            prop_assert_eq!(PrintNumber::parse(&spell(&swapped)), Err(PrintNumberError::CheckDigit), "{} from {}", spell(&swapped), spell(&d));
        }
        Ok(())
    });
}

// ------------------------------------------------------------------ money

#[test]
fn yen_display_groups_digits_and_keeps_the_value() {
    support::check("yen_display_groups_digits_and_keeps_the_value", support::cases(CASES), any::<i64>(), |n| {
        let s = Yen(n).to_string();
        let (neg, rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.as_str()),
        };
        prop_assert_eq!(neg, n < 0);
        let grouped = rest.strip_prefix('¥').ok_or_else(|| fail(format!("{s:?} has no ¥")))?;
        let groups: Vec<&str> = grouped.split(',').collect();
        prop_assert!(!groups[0].is_empty() && groups[0].len() <= 3, "{:?}", s);
        prop_assert!(groups[1..].iter().all(|g| g.len() == 3), "{:?}", s);
        prop_assert!(groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit())), "{:?}", s);
        prop_assert_eq!(groups.concat().parse::<u64>().map_err(fail)?, n.unsigned_abs());
        Ok(())
    });
}

// ------------------------------------------------------------------ the sync API's JSON

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9_.:-]{0,16}",
        1 => proptest::collection::vec(any::<char>(), 0..16).prop_map(|cs| cs.into_iter().collect::<String>()),
    ]
}

fn yen() -> impl Strategy<Value = Yen> {
    prop_oneof![3 => (-100_000i64..1_000_000).prop_map(Yen), 1 => any::<i64>().prop_map(Yen)]
}

fn print_number() -> impl Strategy<Value = PrintNumber> {
    valid_digits().prop_filter_map("valid by construction", |d| PrintNumber::parse(&spell(&d)).ok())
}

fn print_settings() -> impl Strategy<Value = PrintSettings> {
    (text(), text(), any::<u32>()).prop_map(|(media, sides, copies)| PrintSettings { media, sides, copies })
}

fn line() -> impl Strategy<Value = ReservationLine> {
    (text(), text(), any::<u32>(), yen()).prop_map(|(name_ja, name_en, copies, amount)| ReservationLine { name_ja, name_en, copies, amount })
}

fn lines() -> impl Strategy<Value = Vec<ReservationLine>> {
    proptest::collection::vec(line(), 0..4)
}

fn reservation() -> impl Strategy<Value = Reservation> {
    (any::<i64>(), print_number(), lines(), yen(), yen(), any::<bool>(), text(), any::<i64>(), text(), any::<i64>(), any::<u32>(), print_settings()).prop_map(
        |(reservation_id, print_number, lines, system_fee, amount, paid, payment_method, print_deadline, print_deadline_text, expires_at, pages, print)| Reservation {
            reservation_id,
            print_number,
            lines,
            system_fee,
            amount,
            paid,
            payment_method,
            print_deadline,
            print_deadline_text,
            expires_at,
            pages,
            print,
        },
    )
}

fn outcome() -> impl Strategy<Value = PrintOutcome> {
    prop_oneof![Just(PrintOutcome::Printed), text().prop_map(|reason| PrintOutcome::Failed { reason })]
}

fn marker() -> impl Strategy<Value = Marker> {
    (text(), text(), any::<i32>(), any::<i32>()).prop_map(|(name, kind, level, low)| Marker { name, kind, level, low })
}

fn printer_status() -> impl Strategy<Value = PrinterStatus> {
    (any::<bool>(), text(), proptest::collection::vec(text(), 0..4), text(), proptest::collection::vec(marker(), 0..3), proptest::collection::vec(text(), 0..3))
        .prop_map(|(reachable, state, reasons, message, markers, media_ready)| PrinterStatus { reachable, state, reasons, message, markers, media_ready })
}

fn heartbeat() -> impl Strategy<Value = Heartbeat> {
    (text(), any::<u64>(), printer_status(), any::<bool>(), any::<u32>(), any::<i64>(), any::<Option<bool>>(), any::<Option<u64>>(), any::<u64>()).prop_map(
        |(version, uptime_s, printer, reader_present, outbox_len, station_time, terminal_present, disk_free_mb, jobs_printed)| Heartbeat {
            version,
            uptime_s,
            printer,
            reader_present,
            outbox_len,
            station_time,
            terminal_present,
            disk_free_mb,
            jobs_printed,
        },
    )
}

fn offline_job() -> impl Strategy<Value = OfflineJob> {
    let policy = proptest::option::of((yen(), yen()).prop_map(|(floor_limit, station_total)| OfflineCardPolicy { floor_limit, station_total }));
    (any::<i64>(), text(), lines(), yen(), yen(), any::<bool>(), any::<i64>(), text(), any::<u32>(), text(), print_settings(), policy).prop_map(
        |(order_id, number_mac, lines, system_fee, amount, paid, print_deadline, print_deadline_text, pages, document_sha256, print, card_payment)| OfflineJob {
            order_id,
            number_mac,
            lines,
            system_fee,
            amount,
            paid,
            print_deadline,
            print_deadline_text,
            pages,
            document_sha256,
            print,
            card_payment,
        },
    )
}

fn offline_bundle() -> impl Strategy<Value = OfflineBundle> {
    let balance = (text(), yen()).prop_map(|(uid, balance)| CardBalance { uid, balance });
    (any::<i64>(), any::<i64>(), any::<i64>(), proptest::collection::vec(offline_job(), 0..3), proptest::collection::vec(text(), 0..3), proptest::collection::vec(balance, 0..3)).prop_map(
        |(station_id, issued_at, max_age_s, jobs, blocked_cards, balances)| OfflineBundle { station_id, issued_at, max_age_s, jobs, blocked_cards, balances },
    )
}

const ERROR_CODES: [ErrorCode; 20] = [
    ErrorCode::BadRequest,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::Conflict,
    ErrorCode::Throttled,
    ErrorCode::EnrolmentCodeInvalid,
    ErrorCode::StationRevoked,
    ErrorCode::PrintNumberUnknown,
    ErrorCode::PrintNumberUsed,
    ErrorCode::PrintNumberExpired,
    ErrorCode::PrintNumberBusy,
    ErrorCode::ReservationExpired,
    ErrorCode::CardUnknown,
    ErrorCode::CardBlocked,
    ErrorCode::InsufficientBalance,
    ErrorCode::NotPaid,
    ErrorCode::ServiceSuspended,
    ErrorCode::ClaimRefused,
    ErrorCode::Internal,
];

/// One value of each wire type, to be sent as JSON.
#[derive(Debug, Clone)]
enum Wire {
    Enroll(EnrollRequest),
    Enrolled(EnrollResponse),
    BundleKey(BundleKey),
    Heartbeat(Heartbeat),
    HeartbeatResponse(HeartbeatResponse),
    TestPage(TestPageReport),
    Reserve(ReserveRequest),
    Reservation(Reservation),
    Charge(ChargeRequest),
    Charged(ChargeResponse),
    TerminalPayment(TerminalPayment),
    Report(PrintReport),
    ReportResponse(ReportResponse),
    SignedBundle(SignedBundle),
    Bundle(OfflineBundle),
    Debit(OfflineDebit),
    OfflinePrint(OfflinePrint),
    Applied(AppliedOnce),
    Error(ApiError),
}

fn wire() -> impl Strategy<Value = Wire> {
    prop_oneof![
        (text(), text()).prop_map(|(code, version)| Wire::Enroll(EnrollRequest { code, version })),
        (any::<i64>(), text(), text(), text()).prop_map(|(station_id, name, token, bundle_key)| Wire::Enrolled(EnrollResponse { station_id, name, token, bundle_key })),
        text().prop_map(|ed25519| Wire::BundleKey(BundleKey { ed25519 })),
        heartbeat().prop_map(Wire::Heartbeat),
        (any::<i64>(), any::<bool>(), any::<Option<i64>>(), text(), text()).prop_map(|(server_time, out_of_service, test_page, university_ja, university_en)| Wire::HeartbeatResponse(HeartbeatResponse { server_time, out_of_service, test_page, university_ja, university_en })),
        (any::<bool>(), text()).prop_map(|(printed, detail)| Wire::TestPage(TestPageReport { printed, detail })),
        print_number().prop_map(|print_number| Wire::Reserve(ReserveRequest { print_number })),
        reservation().prop_map(Wire::Reservation),
        (text(), text()).prop_map(|(card_uid, idempotency_key)| Wire::Charge(ChargeRequest { card_uid, idempotency_key })),
        (yen(), yen()).prop_map(|(charged, balance_after)| Wire::Charged(ChargeResponse { charged, balance_after })),
        (text(), text(), yen(), text(), any::<i64>()).prop_map(|(idempotency_key, transaction_id, amount, brand, at)| Wire::TerminalPayment(TerminalPayment { idempotency_key, transaction_id, amount, brand, at })),
        (text(), outcome(), any::<Option<i32>>(), any::<i64>(), any::<Option<u32>>()).prop_map(|(idempotency_key, outcome, ipp_job_id, at, impressions)| Wire::Report(PrintReport { idempotency_key, outcome, ipp_job_id, at, impressions })),
        text().prop_map(|order_status| Wire::ReportResponse(ReportResponse { order_status })),
        (text(), text()).prop_map(|(bundle, signature)| Wire::SignedBundle(SignedBundle { bundle, signature })),
        offline_bundle().prop_map(Wire::Bundle),
        (text(), any::<i64>(), text(), yen(), any::<i64>()).prop_map(|(idempotency_key, order_id, card_uid, amount, at)| Wire::Debit(OfflineDebit { idempotency_key, order_id, card_uid, amount, at })),
        (text(), any::<i64>(), outcome(), any::<Option<i32>>(), any::<i64>()).prop_map(|(idempotency_key, order_id, outcome, ipp_job_id, at)| Wire::OfflinePrint(OfflinePrint { idempotency_key, order_id, outcome, ipp_job_id, at })),
        (text(), any::<bool>()).prop_map(|(order_status, duplicate)| Wire::Applied(AppliedOnce { order_status, duplicate })),
        (proptest::sample::select(ERROR_CODES.to_vec()), text(), proptest::option::of(yen()), proptest::option::of(yen()))
            .prop_map(|(code, message, balance, missing)| Wire::Error(ApiError { code, message, balance, missing })),
    ]
}

/// Serializes, parses back as the same type, and compares as JSON values
/// (most wire types have no `PartialEq`).
fn round_trip<T: Serialize + DeserializeOwned>(v: &T) -> Result<(), TestCaseError> {
    let bytes = serde_json::to_vec(v).map_err(fail)?;
    let back: T = serde_json::from_slice(&bytes).map_err(|e| fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
    prop_assert_eq!(serde_json::to_value(v).map_err(fail)?, serde_json::to_value(&back).map_err(fail)?);
    Ok(())
}

impl Wire {
    fn json(&self) -> Result<Vec<u8>, serde_json::Error> {
        match self {
            Wire::Enroll(v) => serde_json::to_vec(v),
            Wire::Enrolled(v) => serde_json::to_vec(v),
            Wire::BundleKey(v) => serde_json::to_vec(v),
            Wire::Heartbeat(v) => serde_json::to_vec(v),
            Wire::HeartbeatResponse(v) => serde_json::to_vec(v),
            Wire::TestPage(v) => serde_json::to_vec(v),
            Wire::Reserve(v) => serde_json::to_vec(v),
            Wire::Reservation(v) => serde_json::to_vec(v),
            Wire::Charge(v) => serde_json::to_vec(v),
            Wire::Charged(v) => serde_json::to_vec(v),
            Wire::TerminalPayment(v) => serde_json::to_vec(v),
            Wire::Report(v) => serde_json::to_vec(v),
            Wire::ReportResponse(v) => serde_json::to_vec(v),
            Wire::SignedBundle(v) => serde_json::to_vec(v),
            Wire::Bundle(v) => serde_json::to_vec(v),
            Wire::Debit(v) => serde_json::to_vec(v),
            Wire::OfflinePrint(v) => serde_json::to_vec(v),
            Wire::Applied(v) => serde_json::to_vec(v),
            Wire::Error(v) => serde_json::to_vec(v),
        }
    }

    fn round_trip(&self) -> Result<(), TestCaseError> {
        match self {
            Wire::Enroll(v) => round_trip(v),
            Wire::Enrolled(v) => round_trip(v),
            Wire::BundleKey(v) => round_trip(v),
            Wire::Heartbeat(v) => round_trip(v),
            Wire::HeartbeatResponse(v) => round_trip(v),
            Wire::TestPage(v) => round_trip(v),
            Wire::Reserve(v) => round_trip(v),
            Wire::Reservation(v) => {
                // Reservation has PartialEq: compare the values themselves too
                let back: Reservation = serde_json::from_slice(&serde_json::to_vec(v).map_err(fail)?).map_err(fail)?;
                prop_assert_eq!(&back, v);
                round_trip(v)
            }
            Wire::Charge(v) => round_trip(v),
            Wire::Charged(v) => round_trip(v),
            Wire::TerminalPayment(v) => round_trip(v),
            Wire::Report(v) => round_trip(v),
            Wire::ReportResponse(v) => round_trip(v),
            Wire::SignedBundle(v) => round_trip(v),
            Wire::Bundle(v) => {
                let back: OfflineBundle = serde_json::from_slice(&serde_json::to_vec(v).map_err(fail)?).map_err(fail)?;
                prop_assert_eq!(&back, v);
                round_trip(v)
            }
            Wire::Debit(v) => round_trip(v),
            Wire::OfflinePrint(v) => round_trip(v),
            Wire::Applied(v) => round_trip(v),
            Wire::Error(v) => round_trip(v),
        }
    }
}

/// Parses `bytes` as `T`; whatever parses must serialize and parse again to
/// the same JSON (what one side accepts, it can also send on).
fn parse_as<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(v) = serde_json::from_slice::<T>(bytes) {
        round_trip(&v)?;
    }
    Ok(())
}

/// Every wire type, parsed from the same bytes.
fn parse_as_every_type(bytes: &[u8]) -> Result<(), TestCaseError> {
    parse_as::<EnrollRequest>(bytes)?;
    parse_as::<EnrollResponse>(bytes)?;
    parse_as::<BundleKey>(bytes)?;
    parse_as::<PrinterStatus>(bytes)?;
    parse_as::<Marker>(bytes)?;
    parse_as::<Heartbeat>(bytes)?;
    parse_as::<HeartbeatResponse>(bytes)?;
    parse_as::<TestPageReport>(bytes)?;
    parse_as::<ReserveRequest>(bytes)?;
    parse_as::<ReservationLine>(bytes)?;
    parse_as::<Reservation>(bytes)?;
    parse_as::<PrintSettings>(bytes)?;
    parse_as::<ChargeRequest>(bytes)?;
    parse_as::<ChargeResponse>(bytes)?;
    parse_as::<TerminalPayment>(bytes)?;
    parse_as::<PrintReport>(bytes)?;
    parse_as::<PrintOutcome>(bytes)?;
    parse_as::<ReportResponse>(bytes)?;
    parse_as::<SignedBundle>(bytes)?;
    parse_as::<OfflineBundle>(bytes)?;
    parse_as::<CardBalance>(bytes)?;
    parse_as::<OfflineCardPolicy>(bytes)?;
    parse_as::<OfflineJob>(bytes)?;
    parse_as::<OfflineDebit>(bytes)?;
    parse_as::<OfflinePrint>(bytes)?;
    parse_as::<AppliedOnce>(bytes)?;
    parse_as::<ApiError>(bytes)?;
    parse_as::<ErrorCode>(bytes)?;
    parse_as::<Yen>(bytes)?;
    parse_as::<PrintNumber>(bytes)?;
    // a print number inside any JSON that parsed is a valid one
    if let Ok(r) = serde_json::from_slice::<ReserveRequest>(bytes) {
        prop_assert_eq!(damm(&r.print_number.as_str().bytes().map(|b| b - b'0').collect::<Vec<_>>()), 0);
    }
    Ok(())
}

/// One change to a byte string: the ways bytes get damaged or forged.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Set { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = proptest::sample::select(b"{}[]\",:0123456789-.eE\\ntfu \x00\xff".to_vec());
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        (any::<usize>(), prop_oneof![interesting.clone(), any::<u8>()]).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        (any::<usize>(), proptest::collection::vec(prop_oneof![interesting, any::<u8>()], 1..8)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| Mutation::Delete { at, len }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 1usize..32).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn mutate(mut b: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let n = b.len();
    let pos = |at: usize| if n == 0 { 0 } else { at % n };
    match m {
        Mutation::Flip { at, xor } if n > 0 => b[pos(*at)] ^= xor,
        Mutation::Set { at, byte } if n > 0 => b[pos(*at)] = *byte,
        Mutation::Insert { at, bytes } => {
            let at = if n == 0 { 0 } else { at % (n + 1) };
            b.splice(at..at, bytes.iter().copied()).for_each(drop);
        }
        Mutation::Delete { at, len } if n > 0 => {
            let at = pos(*at);
            b.drain(at..(at + len).min(n)).for_each(drop);
        }
        Mutation::Truncate { at } => b.truncate(if n == 0 { 0 } else { at % n }),
        Mutation::Duplicate { at, len } if n > 0 => {
            let at = pos(*at);
            let piece: Vec<u8> = b[at..(at + len).min(n)].to_vec();
            b.splice(at..at, piece).for_each(drop);
        }
        _ => {}
    }
    b
}

#[test]
fn wire_values_round_trip_through_json() {
    support::check("wire_values_round_trip_through_json", support::cases(CASES), wire(), |w| w.round_trip());
}

#[test]
fn arbitrary_bytes_never_break_the_wire_parsers() {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        // JSON-ish text: brackets, quotes, numbers, keys of the wire types
        proptest::collection::vec(
            prop_oneof![
                Just("{".to_string()),
                Just("}".to_string()),
                Just("[".to_string()),
                Just("]".to_string()),
                Just(",".to_string()),
                Just(":".to_string()),
                Just("null".to_string()),
                Just("true".to_string()),
                Just("\"kind\"".to_string()),
                Just("\"printed\"".to_string()),
                Just("\"print_number\"".to_string()),
                Just("\"amount\"".to_string()),
                Just("\"jobs\"".to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                "\"[a-z_]{0,12}\"",
                "\"[0-9 -]{0,16}\"",
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat().into_bytes()),
    ];
    support::check("arbitrary_bytes_never_break_the_wire_parsers", support::cases(CASES), bytes, |b| parse_as_every_type(&b));
}

#[test]
fn damaged_wire_json_is_refused_or_still_consistent() {
    let strategy = (wire(), proptest::collection::vec(mutation(), 1..4));
    support::check("damaged_wire_json_is_refused_or_still_consistent", support::cases(CASES), strategy, |(w, ms)| {
        let mut bytes = w.json().map_err(fail)?;
        for m in &ms {
            bytes = mutate(bytes, m);
        }
        parse_as_every_type(&bytes)
    });
}
