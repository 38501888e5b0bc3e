//! The payment terminal's serial frames: STX | LEN (u16 BE, of CMD+DATA) |
//! CMD | DATA | LRC (XOR of LEN, CMD, DATA) | ETX, and lone ACK / NAK bytes.

use crate::support;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use shomei_station::terminal::{cmd, code, encode, ChargeOutcome, Declined, Decoded, Decoder, TerminalClient, TerminalConfig, TerminalError, ACK, MAX_LEN, NAK, STX};

const CASES: u32 = 256;

/// Everything the decoder gives for `chunks` pushed one after the other,
/// draining after each push. Fails if the decoder does not stop.
fn decode_all(chunks: &[&[u8]]) -> Result<Vec<Decoded>, TestCaseError> {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    let mut d = Decoder::default();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        // every item consumes at least one byte, so there are at most `total` items
        let mut n = 0;
        while let Some(item) = d.next_item() {
            out.push(item);
            n += 1;
            prop_assert!(n <= total + 1, "the decoder keeps giving items");
        }
    }
    Ok(out)
}

/// `bytes` cut at `cuts` (positions taken modulo the length).
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| if bytes.is_empty() { 0 } else { c % (bytes.len() + 1) }).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

/// Line noise: any byte but the three the decoder acts on.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>().prop_filter("not STX/ACK/NAK", |b| ![STX, ACK, NAK].contains(b)), 0..8)
}

fn frame_parts() -> impl Strategy<Value = (u8, Vec<u8>)> {
    let data = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..40),
        1 => proptest::collection::vec(any::<u8>(), 0..MAX_LEN),
    ];
    (any::<u8>(), data)
}

#[derive(Debug, Clone)]
enum Piece {
    Frame(u8, Vec<u8>),
    Ack,
    Nak,
    Noise(Vec<u8>),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        3 => frame_parts().prop_map(|(c, d)| Piece::Frame(c, d)),
        1 => Just(Piece::Ack),
        1 => Just(Piece::Nak),
        2 => noise().prop_map(Piece::Noise),
    ]
}

#[test]
fn frames_acks_and_noise_decode_to_what_was_sent_however_split() {
    let strategy = (proptest::collection::vec(piece(), 0..8), proptest::collection::vec(any::<usize>(), 0..6));
    support::check("frames_acks_and_noise_decode_to_what_was_sent_however_split", support::cases(CASES), strategy, |(pieces, cuts)| {
        let mut line = Vec::new();
        let mut expected = Vec::new();
        for p in &pieces {
            match p {
                Piece::Frame(c, d) => {
                    line.extend_from_slice(&encode(*c, d));
                    expected.push(Decoded::Frame(*c, d.clone()));
                }
                Piece::Ack => {
                    line.push(ACK);
                    expected.push(Decoded::Ack);
                }
                Piece::Nak => {
                    line.push(NAK);
                    expected.push(Decoded::Nak);
                }
                Piece::Noise(n) => line.extend_from_slice(n),
            }
        }
        prop_assert_eq!(decode_all(&split(&line, &cuts))?, expected);
        Ok(())
    });
}

#[test]
fn arbitrary_bytes_never_break_the_decoder() {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        // bytes rich in the protocol's own: STX, small lengths, ETX, ACK, NAK
        proptest::collection::vec(prop_oneof![Just(STX), Just(0x00), Just(0x01), Just(0x02), Just(0x03), Just(ACK), Just(NAK), any::<u8>()], 0..64),
    ];
    let strategy = (bytes, proptest::collection::vec(any::<usize>(), 0..6));
    support::check("arbitrary_bytes_never_break_the_decoder", support::cases(CASES), strategy, |(bytes, cuts)| {
        let whole = decode_all(&[bytes.as_slice()])?;
        // the same items however the bytes arrive
        prop_assert_eq!(&decode_all(&split(&bytes, &cuts))?, &whole);
        // a frame comes only from bytes that are exactly its encoding
        for item in &whole {
            if let Decoded::Frame(c, d) = item {
                let enc = encode(*c, d);
                prop_assert!(d.len() < MAX_LEN);
                prop_assert!(bytes.windows(enc.len()).any(|w| w == enc.as_slice()), "frame {:?} not in the input", item);
            }
        }
        Ok(())
    });
}

#[test]
fn any_single_corrupted_byte_of_a_frame_is_refused() {
    let strategy = (frame_parts(), any::<prop::sample::Index>(), 1u8..=255);
    support::check("any_single_corrupted_byte_of_a_frame_is_refused", support::cases(CASES), strategy, |((c, d), at, xor)| {
        let good = encode(c, &d);
        let at = at.index(good.len());
        let mut bad = good.clone();
        bad[at] ^= xor;
        let items = decode_all(&[bad.as_slice()])?;
        // the XOR checksum covers CMD and DATA; LRC and ETX are checked
        // themselves: a change there is caught before anything else
        if at >= 3 {
            prop_assert_eq!(items.first(), Some(&Decoded::Bad), "byte {} of {:02X?}", at, bad);
        }
        // a change in STX or LEN may leave the bytes waiting for more, or
        // frame something else, but never passes the frame that was sent
        let sent = Decoded::Frame(c, d.clone());
        prop_assert!(!items.contains(&sent), "byte {} of {:02X?} changed and the frame still passed", at, bad);
        Ok(())
    });
}

// ------------------------------------------------------------------ the client against a scripted terminal

fn config() -> TerminalConfig {
    TerminalConfig { ack_timeout_ms: 5, retries: 1, charge_timeout_s: 1, status_attempts: 0 }
}

/// A client whose line already holds everything `script` answers (so no
/// timing decides anything but "nothing more came").
struct Line {
    rt: tokio::runtime::Runtime,
    client: TerminalClient<tokio::io::DuplexStream>,
    _terminal: tokio::io::DuplexStream,
}

fn line(script: &[u8]) -> Result<Line, TestCaseError> {
    use tokio::io::AsyncWriteExt;
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let (ours, mut theirs) = tokio::io::duplex(1 << 20);
    rt.block_on(theirs.write_all(script)).map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(Line { client: TerminalClient::new(ours, config()), _terminal: theirs, rt })
}

const LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone)]
enum Reply {
    Ack,
    Nak,
    Noise(Vec<u8>),
    Frame(u8, Vec<u8>),
    Corrupt(u8, Vec<u8>, usize),
}

fn reply(txn: &'static [u8; 16]) -> impl Strategy<Value = Reply> {
    let result_for_us = (0u8..9, any::<u32>(), proptest::collection::vec(any::<u8>(), 0..12)).prop_map(move |(code_, balance, brand)| {
        let mut d = txn.to_vec();
        d.push(code_);
        d.extend_from_slice(&balance.to_be_bytes());
        d.extend_from_slice(&brand);
        d
    });
    let frame_data = prop_oneof![
        2 => result_for_us,
        1 => proptest::collection::vec(any::<u8>(), 0..30),
    ];
    prop_oneof![
        3 => Just(Reply::Ack),
        1 => Just(Reply::Nak),
        1 => noise().prop_map(Reply::Noise),
        4 => (prop_oneof![Just(cmd::RESULT), Just(cmd::PONG), any::<u8>()], frame_data.clone()).prop_map(|(c, d)| Reply::Frame(c, d)),
        1 => (any::<u8>(), frame_data, any::<usize>()).prop_map(|(c, d, at)| Reply::Corrupt(c, d, at)),
    ]
}

fn script(replies: &[Reply]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in replies {
        match r {
            Reply::Ack => out.push(ACK),
            Reply::Nak => out.push(NAK),
            Reply::Noise(n) => out.extend_from_slice(n),
            Reply::Frame(c, d) => out.extend_from_slice(&encode(*c, d)),
            Reply::Corrupt(c, d, at) => {
                let mut f = encode(*c, d);
                let i = 3 + at % (f.len() - 3);
                f[i] ^= 0x5A;
                out.extend_from_slice(&f);
            }
        }
    }
    out
}

/// The items a client reads from `script`: the first one answers its frame
/// (it must be an ACK), the frames after it are the terminal's answers.
fn items(script: &[u8]) -> (Option<Decoded>, Vec<(u8, Vec<u8>)>) {
    let mut d = Decoder::default();
    d.push(script);
    let first = d.next_item();
    let mut frames = Vec::new();
    while let Some(item) = d.next_item() {
        if let Decoded::Frame(c, data) = item {
            frames.push((c, data));
        }
    }
    (first, frames)
}

const TXN: &[u8; 16] = b"0123456789ABCDEF";

#[test]
fn ping_reads_any_terminal_answer_as_the_protocol_says() {
    let strategy = proptest::collection::vec(reply(TXN), 0..6);
    support::check("ping_reads_any_terminal_answer_as_the_protocol_says", support::cases(128), strategy, |replies| {
        let bytes = script(&replies);
        let Line { rt, mut client, _terminal } = line(&bytes)?;
        let got = rt.block_on(async { tokio::time::timeout(LIMIT, client.ping()).await }).map_err(|_| TestCaseError::fail("ping did not end within 10 s"))?;
        let (first, frames) = items(&bytes);
        match (first, got) {
            (Some(Decoded::Ack), Ok(pong)) => {
                prop_assert_eq!(pong, frames.first().is_some_and(|(c, _)| *c == cmd::PONG));
            }
            (Some(Decoded::Ack), Err(e)) => return Err(TestCaseError::fail(format!("ACKed, then {e}"))),
            (_, Err(TerminalError::NoAck(1))) => {}
            (first, got) => return Err(TestCaseError::fail(format!("first item {first:?}: got {got:?}"))),
        }
        Ok(())
    });
}

#[test]
fn status_reads_any_result_frame_as_the_protocol_says() {
    let strategy = proptest::collection::vec(reply(TXN), 0..6);
    support::check("status_reads_any_result_frame_as_the_protocol_says", support::cases(128), strategy, |replies| {
        let bytes = script(&replies);
        let txn = String::from_utf8_lossy(TXN).into_owned();
        let Line { rt, mut client, _terminal } = line(&bytes)?;
        let got = rt.block_on(async { tokio::time::timeout(LIMIT, client.status(&txn)).await }).map_err(|_| TestCaseError::fail("status did not end within 10 s"))?;
        let (first, frames) = items(&bytes);
        // the first RESULT for our transaction decides; other frames are ignored
        let result = frames.iter().find(|(c, d)| *c == cmd::RESULT && d.len() >= 21 && &d[..16] == TXN);
        let expected = result.and_then(|(_, d)| {
            let balance = u32::from_be_bytes([d[17], d[18], d[19], d[20]]);
            let brand = String::from_utf8_lossy(&d[21..]).into_owned();
            Some(match d[16] {
                code::APPROVED => ChargeOutcome::Approved { balance_after: balance, brand },
                code::INSUFFICIENT => ChargeOutcome::Declined(Declined::Insufficient),
                code::CARD_ERROR => ChargeOutcome::Declined(Declined::CardError),
                code::NO_CARD => ChargeOutcome::Declined(Declined::NoCard),
                code::CANCELLED | code::UNKNOWN_TXN => ChargeOutcome::Declined(Declined::Cancelled),
                _ => return None,
            })
        });
        match (first, got) {
            (Some(Decoded::Ack), Ok(outcome)) => {
                prop_assert_eq!(outcome, expected);
            }
            (Some(Decoded::Ack), Err(e)) => return Err(TestCaseError::fail(format!("ACKed, then {e}"))),
            (_, Err(TerminalError::NoAck(1))) => {}
            (first, got) => return Err(TestCaseError::fail(format!("first item {first:?}: got {got:?}"))),
        }
        Ok(())
    });
}
