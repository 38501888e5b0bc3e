//! Property tests of what the station parses from its peers: the card's
//! answer to GET DATA, the payment terminal's serial frames, and the
//! printer's IPP answers (through a scripted IPP server on loopback).
//!
//! Cases per property: `SHOMEI_PROPTEST_CASES` (defaults: 256 for the pure
//! parsers, 64 for the loopback IPP ones); see `support`.

#[path = "../../../shared/tests/support/mod.rs"]
mod support;

mod apdu;
mod ipp;
mod terminal_frames;
