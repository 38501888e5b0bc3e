//! Stable error codes shared by the backend's API and the station.
//!
//! The station turns a code into the message the kiosk shows, so codes never
//! change meaning once released.

use crate::Yen;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Throttled,
    /// The enrolment code is unknown, used or expired.
    EnrolmentCodeInvalid,
    /// The station's credential was revoked.
    StationRevoked,
    /// No order has this print number.
    PrintNumberUnknown,
    /// The order behind this number was printed already.
    PrintNumberUsed,
    /// The print deadline has passed.
    PrintNumberExpired,
    /// Another station holds a live reservation for this number.
    PrintNumberBusy,
    /// The reservation ran out or was released.
    ReservationExpired,
    /// The card is not linked to any account.
    CardUnknown,
    /// The card was reported lost or is otherwise blocked.
    CardBlocked,
    /// The card's stored value is lower than the amount due.
    InsufficientBalance,
    /// The order is not paid, so it cannot be printed.
    NotPaid,
    ServiceSuspended,
    /// The backend refused what the station claimed (an amount, a print, an
    /// offline payment beyond the policy): recorded for staff, not applied.
    ClaimRefused,
    Internal,
}

/// The JSON body of every API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    /// English text for logs and API clients; screens use their own catalogue.
    pub message: String,
    /// For `InsufficientBalance`: the card's balance and how much is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<Yen>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<Yen>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), balance: None, missing: None }
    }
}
