//! The one place where the backend's error becomes an HTTP answer: a page in
//! both languages for the portal and the panel, JSON for the station API.
//! (The error type itself, crate::error, knows nothing of pages.)

use super::pages;
use crate::error::AppError;
use axum::response::{Html, IntoResponse, Json, Response};
use shomei_shared::{ApiError, ErrorCode};

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        match self {
            AppError::Api(e) => (status, Json(e)).into_response(),
            AppError::Page(msg) => (status, Html(pages::error_page(&msg))).into_response(),
            AppError::Throttled(msg) => (status, Html(pages::error_page(&msg))).into_response(),
            AppError::Busy => (
                status,
                [(axum::http::header::RETRY_AFTER, "2")],
                Html(pages::error_page(crate::messages::BUSY)),
            )
                .into_response(),
            AppError::CrossSite => (status, Html(pages::error_page(crate::messages::CROSS_SITE))).into_response(),
            AppError::NoRole => (status, Html(pages::error_page(crate::messages::NO_ROLE))).into_response(),
            AppError::PageNotFound => (status, Html(pages::error_page(crate::messages::NOT_FOUND))).into_response(),
            AppError::Db(sqlx::Error::RowNotFound) => (
                status,
                Json(ApiError::new(ErrorCode::NotFound, "not found")),
            )
                .into_response(),
            other => {
                tracing::error!(error = %other, "internal error");
                (status, Json(ApiError::new(ErrorCode::Internal, "internal error"))).into_response()
            }
        }
    }
}
