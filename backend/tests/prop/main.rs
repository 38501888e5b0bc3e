//! Property tests of what the backend parses from untrusted bytes: CSV
//! imports (roster, school register, courses), uploaded images, and the
//! payment providers' notices and webhooks.
//!
//! Cases per property: `SHOMEI_PROPTEST_CASES` (defaults: 256 for the pure
//! parsers, 64 for the loopback PayPal one); see `support`.

// The upload properties measure the largest single allocation a call asks
// for (`alloc_probe`), which takes a global allocator: the one `unsafe`
// block of the test suite, allowed for this test binary only.
#![allow(unsafe_code)]

#[path = "../../../shared/tests/support/mod.rs"]
mod support;

mod alloc_probe;
mod csv_imports;
mod uploads;
mod webhooks;

#[global_allocator]
static PROBE: alloc_probe::Probe = alloc_probe::Probe;
