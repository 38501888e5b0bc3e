//! Enrolled students' pages (S-1..S-3): login with the university user ID,
//! first-login e-mail registration and second password, forgotten second password.

use super::account::{form_failed, link_form_page, reset_sent_page, PasswordFields, PasswordForm, PasswordPage, TokenQuery};
use super::pages::{message_page, render};
use super::register::check_email_pair;
use super::web::{check_csrf, client_ip, cookie, cookie_name, login_flow, set_cookie, Csrf, LoggedIn, LoginTarget, USER_COOKIE};
use crate::accounts::{self, Client, StudentLogin};
use crate::credentials;
use crate::error::{AppError, AppResult};
use crate::registration::FieldErrors;
use crate::{store, AppState};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::context;
use serde::Deserialize;
use std::net::SocketAddr;

/// The short-lived key of a student's first login (S-2), until the address is registered.
const ONBOARD_COOKIE: &str = "shomei_onboard";

fn login_html(csrf: &str, user_id: &str, error: Option<&str>) -> Html<String> {
    Html(render("student_login.html", context! { csrf, user_id, error }))
}

pub async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::get(&state, &headers);
    let page = login_html(&csrf.token, "", None);
    csrf.respond(page)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    csrf: String,
    user_id: String,
    password: String,
    second_password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let ip = client_ip(&addr);
    if f.second_password.is_empty() && !f.csrf.is_empty() && check_csrf(&state, &headers, &f.csrf).is_ok() {
        // maybe a first login: no session yet, an onboarding key instead
        let r = accounts::login_student(
            &state.pool,
            &state.login_throttle,
            &state.hasher,
            state.directory.as_ref(),
            Client { ip: &ip },
            &f.user_id,
            &f.password,
            "",
        )
        .await;
        return match r {
            Ok(StudentLogin::FirstLogin(entry)) => match credentials::start_student_onboarding(&state.pool, &entry).await {
                Ok(key) => {
                    let mut resp = Redirect::to("/student/email").into_response();
                    resp.headers_mut().append(SET_COOKIE, set_cookie(&state, ONBOARD_COOKIE, &key, 30 * 60, "Lax"));
                    resp
                }
                Err(e) => e.into_response(),
            },
            Ok(StudentLogin::Ok(_)) | Err(AppError::Page(_)) => {
                let csrf = Csrf::get(&state, &headers);
                let page = login_html(&csrf.token, &f.user_id, Some(crate::messages::STUDENT_LOGIN_FAILED));
                (StatusCode::UNAUTHORIZED, csrf.respond(page)).into_response()
            }
            Err(e @ AppError::Throttled(_)) => e.into_response(),
            Err(e) => e.into_response(),
        };
    }
    let check = async {
        match accounts::login_student(
            &state.pool,
            &state.login_throttle,
            &state.hasher,
            state.directory.as_ref(),
            Client { ip: &ip },
            &f.user_id,
            &f.password,
            &f.second_password,
        )
        .await?
        {
            StudentLogin::Ok(id) => Ok(LoggedIn { user_id: Some(id), staff_id: None, redirect: "/portal" }),
            StudentLogin::FirstLogin(_) => Err(AppError::Page(crate::messages::STUDENT_LOGIN_FAILED.into())),
        }
    };
    let target = LoginTarget { cookie: USER_COOKIE, same_site: "Lax" };
    login_flow(&state, &headers, &f.csrf, check, target, |t, msg| login_html(t, &f.user_id, Some(msg))).await
}

fn email_html(csrf: &str, email: &str, confirm: &str, errors: &FieldErrors) -> Html<String> {
    Html(render(
        "email_form.html",
        context! { csrf, title_ja => "メールアドレスの登録", title_en => "Register your e-mail address", action => "/student/email",
                   intro => ["初回ログインです。お知らせを受け取るメールアドレスを登録してください。確認のURLをお送りします。",
                             "This is your first login: register the address we should mail. We send a link to confirm it."],
                   errors, email, email_confirm => confirm, show_email => true, show_confirm => true,
                   email_label => ["メールアドレス", "E-mail address"], button => "送信 / Send" },
    ))
}

async fn onboarding(state: &AppState, headers: &HeaderMap) -> AppResult<String> {
    let key = cookie(headers, &cookie_name(state, ONBOARD_COOKIE)).unwrap_or_default();
    let mut c = state.pool.acquire().await?;
    accounts::peek_token(&mut c, "student_onboard", &key).await.map_err(|_| {
        AppError::Page("もう一度ログインしてください。 / Please log in again.".into())
    })?;
    Ok(key)
}

pub async fn email_page(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    onboarding(&state, &headers).await?;
    let csrf = Csrf::get(&state, &headers);
    let page = email_html(&csrf.token, "", "", &FieldErrors::new());
    Ok(csrf.respond(page))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EmailForm {
    csrf: String,
    email: String,
    email_confirm: String,
}

pub async fn email(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<EmailForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let key = onboarding(&state, &headers).await?;
    let mut errors = FieldErrors::new();
    check_email_pair(&f.email, &f.email_confirm, &mut errors);
    if !errors.is_empty() {
        let csrf = Csrf::get(&state, &headers);
        let page = email_html(&csrf.token, &f.email, &f.email_confirm, &errors);
        return Ok((StatusCode::BAD_REQUEST, csrf.respond(page)).into_response());
    }
    let ip = client_ip(&addr);
    let tkey = format!("student-email:{}", f.email.trim().to_lowercase());
    state.request_throttle.gate(&tkey, &ip)?;
    state.request_throttle.fail_both(&tkey, &ip);
    credentials::request_student_email(&state.pool, &state.seal, &state.config.http.public_url, state.config.accounts.link_ttl_s, &key, &f.email).await?;
    state.mail_wake.notify_one();
    Ok(Html(message_page(
        ("メールを送信しました", "Check your mail"),
        &[("登録したメールアドレスに確認のURLを送りました。URLを開いて第2パスワードを設定してください。",
           "We have mailed a link to the address. Open it to set your second password.")],
        None,
    ))
    .into_response())
}

fn second_form(token: &str) -> PasswordPage<'_> {
    PasswordPage {
        title: ("第2パスワードの設定", "Set your second password"),
        intro: Some((
            "本人確認のため大学のパスワードを入力し、このサービス専用の第2パスワードを設定してください（大学のパスワードとは別にしてください）。",
            "Enter your university password to confirm it is you, and set a second password for this service only (different from the university password).",
        )),
        action: "/student/email/confirm",
        token,
        fields: PasswordFields { university: true, second: true, ..Default::default() },
        button: "設定 / Set",
    }
}

pub async fn confirm_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<TokenQuery>) -> AppResult<Response> {
    link_form_page(&state, &headers, "student_email", &q.t, &second_form(&q.t)).await
}

pub async fn confirm(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client_ip(&addr);
    match credentials::finish_student_registration(
        &state.pool,
        &state.hasher,
        state.directory.as_ref(),
        &state.config.accounts.password_policy,
        Client { ip: &ip },
        &f.t,
        &f.university_password,
        (&f.second_password, &f.second_password_confirm),
    )
    .await
    {
        Ok(user_id) => {
            let session = accounts::start_session(&state.pool, &state.sessions, Some(user_id), None).await?;
            let mut r = Redirect::to("/portal?notice=registered").into_response();
            r.headers_mut().append(SET_COOKIE, set_cookie(&state, USER_COOKIE, &session, state.sessions.absolute_s, "Lax"));
            r.headers_mut().append(SET_COOKIE, set_cookie(&state, ONBOARD_COOKIE, "", 0, "Lax"));
            Ok(IntoResponse::into_response(r))
        }
        Err(e) => Ok(form_failed(&state, &headers, &second_form(&f.t), e)),
    }
}

// ---------------------------------------------------------------- S-3 forgotten second password

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ForgotForm {
    csrf: String,
    user_id: String,
}

fn forgot_html(csrf: &str, user_id: &str, errors: &FieldErrors) -> Html<String> {
    Html(render(
        "email_form.html",
        context! { csrf, title_ja => "第2パスワードの再設定", title_en => "Reset your second password", action => "/student/second-password/forgot",
                   intro => ["大学のユーザIDを入力してください。登録済みのメールアドレスに再設定用のURLを送ります。", "Enter your university user ID: we mail a link to your registered address."],
                   errors, user_id, show_user_id => true, button => "送信 / Send", back => "/student/login" },
    ))
}

pub async fn forgot_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::get(&state, &headers);
    let page = forgot_html(&csrf.token, "", &FieldErrors::new());
    csrf.respond(page)
}

pub async fn forgot(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<ForgotForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let uid = f.user_id.trim();
    if uid.is_empty() || uid.len() > 64 {
        let csrf = Csrf::get(&state, &headers);
        let mut e = FieldErrors::new();
        e.insert("user_id".into(), "ユーザIDを入力してください。 / Enter your user ID.".into());
        let page = forgot_html(&csrf.token, uid, &e);
        return Ok((StatusCode::BAD_REQUEST, csrf.respond(page)).into_response());
    }
    let ip = client_ip(&addr);
    let key = format!("reset-second:{}", uid.to_lowercase());
    state.request_throttle.gate(&key, &ip)?;
    state.request_throttle.fail_both(&key, &ip);
    let mut c = state.pool.acquire().await?;
    let user = store::user_by_directory_uid(&mut c, &crate::directory::normalise_uid(uid)).await?;
    drop(c);
    credentials::request_reset(&state.pool, &state.seal, &state.config.http.public_url, state.config.accounts.link_ttl_s, user, true, state.mail_wake.clone(), state.config.accounts.failpoint_hold_reset.clone()).await?;
    state.mail_wake.notify_one();
    Ok(reset_sent_page().into_response())
}

fn reset_form(token: &str) -> PasswordPage<'_> {
    PasswordPage { action: "/student/second-password/reset", ..second_form(token) }
}

pub async fn reset_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<TokenQuery>) -> AppResult<Response> {
    link_form_page(&state, &headers, "second_password_reset", &q.t, &reset_form(&q.t)).await
}

pub async fn reset(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client_ip(&addr);
    match credentials::reset_student_second(
        &state.pool,
        &state.hasher,
        state.directory.as_ref(),
        &state.config.accounts.password_policy,
        Client { ip: &ip },
        &f.t,
        &f.university_password,
        (&f.second_password, &f.second_password_confirm),
    )
    .await
    {
        Ok(()) => Ok(Html(message_page(
            ("第2パスワードを設定しました", "Your second password is set"),
            &[("新しい第2パスワードでログインしてください。", "Log in with your new second password.")],
            Some(("/student/login", "ログイン / Log in")),
        ))
        .into_response()),
        Err(e) => Ok(form_failed(&state, &headers, &reset_form(&f.t), e)),
    }
}
