//! The contract between shomei's backend and its print stations.
//!
//! No database and no HTTP server live here: only the types both programs agree
//! on, and the systemd notify protocol both speak.

pub mod api;
pub mod error_code;
pub mod money;
pub mod net;
pub mod offline;
pub mod print_number;
pub mod systemd;

pub use error_code::{ApiError, ErrorCode};
pub use money::Yen;
pub use print_number::{PrintNumber, PrintNumberError};
