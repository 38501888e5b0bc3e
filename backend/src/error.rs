//! The backend's one error type, with the HTTP status each kind means; how
//! it is shown (a page or JSON) is the HTTP layer's (http/errors.rs).

use axum::http::StatusCode;
use shomei_shared::{ApiError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A rule of the domain said no; the code and message go to the client.
    #[error("{0}")]
    Api(ApiError),
    /// A web page's form was wrong; re-render with this bilingual message.
    #[error("{0}")]
    Page(String),
    /// Too many attempts: a page with this message and 429.
    #[error("{0}")]
    Throttled(String),
    /// Every password-hashing slot is taken: 429 at once, never a time-out.
    #[error("busy")]
    Busy,
    /// A cross-site POST (its Origin is not ours).
    #[error("cross-site request")]
    CrossSite,
    /// A staff member whose role may not use this admin route: 403, told so
    /// in words (never the 400 of a form's validation).
    #[error("no role for this route")]
    NoRole,
    /// A page that does not exist or is not the user's (never says which).
    #[error("page not found")]
    PageNotFound,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

/// A message per field that is wrong ("日本語 / English"), keyed by the field's name.
pub type FieldErrors = std::collections::BTreeMap<String, String>;

impl AppError {
    pub fn api(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError::Api(ApiError::new(code, message))
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            AppError::Api(e) => match e.code {
                ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
                ErrorCode::Unauthorized | ErrorCode::StationRevoked | ErrorCode::EnrolmentCodeInvalid => {
                    StatusCode::UNAUTHORIZED
                }
                ErrorCode::Forbidden => StatusCode::FORBIDDEN,
                ErrorCode::NotFound | ErrorCode::PrintNumberUnknown => StatusCode::NOT_FOUND,
                ErrorCode::Conflict | ErrorCode::PrintNumberUsed | ErrorCode::PrintNumberBusy => StatusCode::CONFLICT,
                ErrorCode::ClaimRefused => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::PrintNumberExpired | ErrorCode::ReservationExpired => StatusCode::GONE,
                ErrorCode::Throttled => StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::CardUnknown
                | ErrorCode::CardBlocked
                | ErrorCode::InsufficientBalance
                | ErrorCode::NotPaid => StatusCode::PAYMENT_REQUIRED,
                ErrorCode::ServiceSuspended => StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
            AppError::Page(_) => StatusCode::BAD_REQUEST,
            AppError::Throttled(_) | AppError::Busy => StatusCode::TOO_MANY_REQUESTS,
            AppError::CrossSite | AppError::NoRole => StatusCode::FORBIDDEN,
            AppError::PageNotFound => StatusCode::NOT_FOUND,
            AppError::Db(sqlx::Error::RowNotFound) => StatusCode::NOT_FOUND,
            AppError::Db(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        AppError::Api(e)
    }
}

