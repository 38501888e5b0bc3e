//! The card's answer to GET DATA (`FF CA 00 00 00`): UID bytes and a status word.

use crate::support;
use proptest::prelude::*;
use shomei_station::reader::{parse_get_data_answer, GetDataAnswer, ReaderError};

const CASES: u32 = 256;

/// What the answer means, by ISO 7816-4 and PC/SC part 3, stated independently.
fn expected(resp: &[u8]) -> Result<GetDataAnswer, String> {
    if resp.len() < 2 {
        return Err("short".into());
    }
    let (data, sw) = resp.split_at(resp.len() - 2);
    match (sw[0], sw[1]) {
        (0x90, 0x00) if data.is_empty() => Err("empty".into()),
        (0x90, 0x00) => Ok(GetDataAnswer::Uid(data.iter().map(|b| format!("{b:02X}")).collect())),
        (0x6C, le) if le != 0 => Ok(GetDataAnswer::AskAgainWithLe(le)),
        (a, b) => Err(format!("status {:04X}", u16::from_be_bytes([a, b]))),
    }
}

fn check_answer(resp: &[u8]) -> Result<(), TestCaseError> {
    let got = parse_get_data_answer(resp);
    match (&got, expected(resp)) {
        (Ok(a), Ok(b)) => {
            prop_assert_eq!(a, &b);
        }
        (Err(ReaderError::Other(_)), Err(e)) if e == "short" || e == "empty" => {}
        (Err(ReaderError::Status(sw)), Err(e)) => {
            prop_assert_eq!(format!("status {sw:04X}"), e);
        }
        (got, want) => return Err(TestCaseError::fail(format!("{resp:02X?}: got {got:?}, expected {want:?}"))),
    }
    Ok(())
}

#[test]
fn any_answer_to_get_data_is_read_by_its_status_word() {
    let answer = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        // the status words that mean something, after random data
        (proptest::collection::vec(any::<u8>(), 0..12), proptest::sample::select(vec![[0x90, 0x00], [0x6C, 0x00], [0x6C, 0x08], [0x6A, 0x81], [0x63, 0x00], [0x90, 0x01]]))
            .prop_map(|(mut d, sw)| {
                d.extend_from_slice(&sw);
                d
            }),
        (proptest::collection::vec(any::<u8>(), 0..12), any::<u8>()).prop_map(|(mut d, le)| {
            d.extend_from_slice(&[0x6C, le]);
            d
        }),
    ];
    support::check("any_answer_to_get_data_is_read_by_its_status_word", support::cases(CASES), answer, |resp| check_answer(&resp));
}

#[test]
fn an_answer_ending_9000_gives_the_hex_uid_of_what_precedes() {
    let uid = proptest::collection::vec(any::<u8>(), 1..=16);
    support::check("an_answer_ending_9000_gives_the_hex_uid_of_what_precedes", support::cases(CASES), uid, |uid| {
        let mut resp = uid.clone();
        resp.extend_from_slice(&[0x90, 0x00]);
        match parse_get_data_answer(&resp) {
            Ok(GetDataAnswer::Uid(hex)) => {
                prop_assert_eq!(hex.len(), uid.len() * 2);
                prop_assert!(hex.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)), "{}", hex);
                let back: Vec<u8> = (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect();
                prop_assert_eq!(back, uid);
            }
            other => return Err(TestCaseError::fail(format!("{resp:02X?}: {other:?}"))),
        }
        Ok(())
    });
}

#[test]
fn any_other_status_word_is_the_status_error() {
    let strategy = (proptest::collection::vec(any::<u8>(), 0..16), any::<u16>())
        .prop_filter("not 9000, not 6Cxx with xx != 0", |(_, sw)| {
            let sw = *sw;
            sw != 0x9000 && !(sw >> 8 == 0x6C && sw & 0xFF != 0)
        });
    support::check("any_other_status_word_is_the_status_error", support::cases(CASES), strategy, |(data, sw)| {
        let mut resp = data;
        resp.extend_from_slice(&sw.to_be_bytes());
        match parse_get_data_answer(&resp) {
            Err(ReaderError::Status(got)) => {
                prop_assert_eq!(got, sw);
            }
            other => return Err(TestCaseError::fail(format!("{resp:02X?}: {other:?}"))),
        }
        Ok(())
    });
}
