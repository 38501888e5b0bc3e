//! Enrolled students' pages (S-1..S-3), as manual 001 walks them: login with
//! the university user ID; at the first login an e-mail address (its link
//! completes it: "メールアドレス設定完了"), then at the next login with the
//! second password empty, the second password; a forgotten second password
//! by the registered address.

use super::account::{form_failed, link_form_page, password_page, reset_sent_page, PasswordFields, PasswordForm, PasswordPage, TokenQuery};
use super::pages::{message_page, render};
use super::register::check_email_pair;
use super::web::{check_csrf, client_ip, cookie, cookie_name, login_flow, set_cookie, Csrf, LoggedIn, LoginTarget, USER_COOKIE};
use crate::accounts::{self, Client, StudentLogin};
use crate::accounts::credentials;
use crate::error::{AppError, AppResult, FieldErrors};
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
/// The short-lived key of the login that leads to setting the second password (S-2).
const SETUP_COOKIE: &str = "shomei_second_setup";

/// The universities a student may log in at (each checks its own students);
/// one university: no choice to make.
async fn universities(state: &AppState) -> AppResult<Vec<store::Named>> {
    let mut c = state.pool.acquire().await?;
    Ok(store::universities(&mut c).await?)
}

fn login_html(csrf: &str, universities: &[store::Named], university: i64, user_id: &str, error: Option<&str>) -> Html<String> {
    let choices: Vec<_> = universities.iter().map(|u| context! { id => u.id, name_ja => &u.name_ja, name_en => &u.name_en }).collect();
    Html(render("student_login.html", context! { csrf, universities => choices, university, user_id, error }))
}

/// `?university=ID`: a university's own link to the login preselects it.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginQuery {
    university: i64,
}

pub async fn login_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> AppResult<Response> {
    let unis = universities(&state).await?;
    let csrf = Csrf::get(&state, &headers);
    let page = login_html(&csrf.token, &unis, q.university, "", None);
    Ok(csrf.respond(page))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    csrf: String,
    /// The university whose directory checks the user ID (0: none chosen;
    /// the only one when there is one).
    university: i64,
    user_id: String,
    password: String,
    second_password: String,
}

impl LoginForm {
    /// The university chosen, or the only one; None: a choice is needed.
    fn university(&self, universities: &[store::Named]) -> Option<i64> {
        match universities {
            [only] if self.university == 0 || self.university == only.id => Some(only.id),
            _ => universities.iter().find(|u| u.id == self.university).map(|u| u.id),
        }
    }
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let ip = client_ip(&addr);
    let unis = match universities(&state).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    let Some(university) = f.university(&unis) else {
        let csrf = Csrf::get(&state, &headers);
        let page = login_html(&csrf.token, &unis, 0, &f.user_id, Some(crate::messages::CHOOSE_UNIVERSITY));
        return (StatusCode::BAD_REQUEST, csrf.respond(page)).into_response();
    };
    if f.second_password.is_empty() && !f.csrf.is_empty() && check_csrf(&state, &headers, &f.csrf).is_ok() {
        // maybe a first login: no session yet, an onboarding key instead
        let r = accounts::login_student(
            &state.pool,
            &state.login_throttle,
            &state.hasher,
            &state.directories,
            Client { ip: &ip },
            university,
            &f.user_id,
            &f.password,
            "",
        )
        .await;
        return match r {
            Ok(StudentLogin::FirstLogin(university, entry)) => match credentials::start_student_onboarding(&state.pool, university, &entry).await {
                Ok(key) => {
                    let mut resp = Redirect::to("/student/email").into_response();
                    resp.headers_mut().append(SET_COOKIE, set_cookie(&state, ONBOARD_COOKIE, &key, 30 * 60, "Lax"));
                    resp
                }
                Err(e) => e.into_response(),
            },
            Ok(StudentLogin::SetSecond(user_id, entry)) => {
                match credentials::start_second_setup(&state.pool, Client { ip: &ip }, user_id, &entry).await {
                    Ok(key) => {
                        let mut resp = Redirect::to("/student/second-password/setup").into_response();
                        resp.headers_mut().append(
                            SET_COOKIE,
                            set_cookie(&state, SETUP_COOKIE, &key, credentials::SECOND_SETUP_TTL_S, "Lax"),
                        );
                        resp
                    }
                    Err(e) => e.into_response(),
                }
            }
            Ok(StudentLogin::Ok(_)) | Err(AppError::Page(_)) => {
                let csrf = Csrf::get(&state, &headers);
                let page = login_html(&csrf.token, &unis, university, &f.user_id, Some(crate::messages::STUDENT_LOGIN_FAILED));
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
            &state.directories,
            Client { ip: &ip },
            university,
            &f.user_id,
            &f.password,
            &f.second_password,
        )
        .await?
        {
            StudentLogin::Ok(id) => Ok(LoggedIn { user_id: Some(id), staff_id: None, redirect: "/portal" }),
            StudentLogin::FirstLogin(..) | StudentLogin::SetSecond(..) => Err(AppError::Page(crate::messages::STUDENT_LOGIN_FAILED.into())),
        }
    };
    let target = LoginTarget { cookie: USER_COOKIE, same_site: "Lax" };
    login_flow(&state, &headers, &f.csrf, check, target, |t, msg| login_html(t, &unis, university, &f.user_id, Some(msg))).await
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
    state.request_throttle.gate(&tkey, &ip).await?;
    state.request_throttle.fail_both(&tkey, &ip).await;
    credentials::request_student_email(&state.pool, &state.seal, &state.config.http.public_url, state.config.accounts.link_ttl_s, &key, &f.email).await?;
    state.mail_wake.notify_one();
    Ok(Html(message_page(
        ("メールを送信しました", "Check your mail"),
        &[("登録したメールアドレスに確認のURLを送りました。URLを開くと、メールアドレスの登録が完了します（URLには有効期限があります）。",
           "We have mailed a link to the address. Open it to finish registering the address (the link expires).")],
        None,
    ))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConfirmForm {
    csrf: String,
    t: String,
}

/// The e-mail link (manual 001, 2.1 step 7) opens a page whose button
/// completes the address (GET changes nothing: mail scanners open links).
pub async fn confirm_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<TokenQuery>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let t = accounts::peek_token(&mut c, "student_email", &q.t).await?;
    drop(c);
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render(
        "email_form.html",
        context! { csrf => &csrf.token, title_ja => "メールアドレスの登録", title_en => "Register your e-mail address",
                   action => format!("/student/email/confirm?t={}", q.t.trim()),
                   intro => [format!("メールアドレス {} を登録します。", t.email), format!("The address {} will be registered.", t.email)],
                   errors => FieldErrors::new(), button => "登録する / Register" },
    ));
    Ok(csrf.respond(page))
}

/// S-2: the address is registered ("メールアドレス設定完了"); the next login,
/// second password empty, leads to setting the second password.
pub async fn confirm(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
    Form(f): Form<ConfirmForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client_ip(&addr);
    let token = if f.t.trim().is_empty() { q.t } else { f.t };
    credentials::confirm_student_email(&state.pool, Client { ip: &ip }, &token).await?;
    let mut r = Html(message_page(
        ("メールアドレス設定完了", "E-mail address set"),
        &[(
            "メールアドレスの登録が完了しました。ログインページへ移動し、大学のユーザIDとパスワードで（第2パスワードは空欄のまま）ログインして、第2パスワードを設定してください。",
            "Your e-mail address is registered. Go to the login page and log in with your university user ID and password (leave the second password empty) to set your second password.",
        )],
        Some(("/student/login", "ログインページへ移動 / Go to the login page")),
    ))
    .into_response();
    r.headers_mut().append(SET_COOKIE, set_cookie(&state, ONBOARD_COOKIE, "", 0, "Lax"));
    Ok(r)
}

// ---------------------------------------------------------------- S-2 second password at the first login

fn second_setup_form() -> PasswordPage<'static> {
    PasswordPage {
        title: ("第2パスワードの設定", "Set your second password"),
        intro: Some((
            "このサービス専用の第2パスワードを「新しい第2パスワード」欄と「確認」欄に入力し、「設定」を押してください。【注意事項】大学で利用しているパスワードは設定しないでください。",
            "Type a second password for this service only, twice, and press \"Set\". Note: do not use the password of your university account.",
        )),
        action: "/student/second-password/setup",
        token: "",
        fields: PasswordFields { second: true, ..Default::default() },
        button: "設定 / Set",
    }
}

/// The key the login gave for setting the second password (cookie), still unused.
async fn second_setup_key(state: &AppState, headers: &HeaderMap) -> AppResult<String> {
    let key = cookie(headers, &cookie_name(state, SETUP_COOKIE)).unwrap_or_default();
    let mut c = state.pool.acquire().await?;
    accounts::peek_token(&mut c, "student_second_setup", &key)
        .await
        .map_err(|_| AppError::Page("もう一度ログインしてください（第2パスワードは空欄のまま）。 / Please log in again (leave the second password empty).".into()))?;
    Ok(key)
}

pub async fn setup_page(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    second_setup_key(&state, &headers).await?;
    Ok(password_page(&state, &headers, &second_setup_form(), &FieldErrors::new()))
}

pub async fn setup(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let key = second_setup_key(&state, &headers).await?;
    let ip = client_ip(&addr);
    match credentials::set_first_student_second(
        &state.pool,
        &state.hasher,
        &state.directories,
        &state.config.accounts.password_policy,
        Client { ip: &ip },
        &key,
        (&f.second_password, &f.second_password_confirm),
    )
    .await
    {
        Ok(()) => {
            let mut r = Html(message_page(
                ("第2パスワードの設定が完了しました", "Your second password is set"),
                &[(
                    "次回から、大学のユーザID・パスワードと第2パスワードでログインしてください。",
                    "From now on, log in with your university user ID and password and your second password.",
                )],
                Some(("/student/login", "OK")),
            ))
            .into_response();
            r.headers_mut().append(SET_COOKIE, set_cookie(&state, SETUP_COOKIE, "", 0, "Lax"));
            Ok(r)
        }
        Err(e) => Ok(form_failed(&state, &headers, &second_setup_form(), e)),
    }
}

// ---------------------------------------------------------------- S-3 forgotten second password

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ForgotForm {
    csrf: String,
    email: String,
}

fn forgot_html(csrf: &str, email: &str, errors: &FieldErrors) -> Html<String> {
    Html(render(
        "email_form.html",
        context! { csrf, title_ja => "第2パスワードを忘れた場合", title_en => "Forgot your second password", action => "/student/second-password/forgot",
                   intro => ["登録しているメールアドレスを入力し、「送信」を押してください。第2パスワードの再設定用のURLをお送りします。",
                             "Enter the e-mail address you registered and press \"Send\": we mail you a link to set a new second password."],
                   errors, email, show_email => true, show_confirm => false, email_label => ["メールアドレス", "E-mail address"],
                   button => "送信 / Send", back => "/student/login" },
    ))
}

pub async fn forgot_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::get(&state, &headers);
    let page = forgot_html(&csrf.token, "", &FieldErrors::new());
    csrf.respond(page)
}

/// S-3 (manual 001, 2.4 (c)): by the registered address; the same answer
/// whether or not a student has it.
pub async fn forgot(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<ForgotForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    if !crate::mail::valid_email(&f.email) {
        let csrf = Csrf::get(&state, &headers);
        let mut e = FieldErrors::new();
        e.insert("email".into(), "メールアドレスの形式が正しくありません（例: name@example.jp）。 / This is not an e-mail address (e.g. name@example.jp).".into());
        let page = forgot_html(&csrf.token, f.email.trim(), &e);
        return Ok((StatusCode::BAD_REQUEST, csrf.respond(page)).into_response());
    }
    let ip = client_ip(&addr);
    let email = f.email.trim().to_lowercase();
    let key = format!("reset-second:{email}");
    state.request_throttle.gate(&key, &ip).await?;
    state.request_throttle.fail_both(&key, &ip).await;
    let mut c = state.pool.acquire().await?;
    let user = store::user_by_email(&mut c, &email).await?.filter(|u| u.kind == "student");
    drop(c);
    credentials::request_reset(&state.pool, &state.seal, &state.config.http.public_url, state.config.accounts.link_ttl_s, user, true, state.mail_wake.clone(), state.config.accounts.failpoint_hold_reset.clone()).await?;
    state.mail_wake.notify_one();
    Ok(reset_sent_page().into_response())
}

fn reset_form(token: &str) -> PasswordPage<'_> {
    PasswordPage {
        title: ("第2パスワードの再設定", "Reset your second password"),
        intro: Some((
            "新しい第2パスワードを「新しい第2パスワード」欄と「確認」欄に入力し、「変更」を押してください。【注意事項】大学で利用しているパスワードは設定しないでください。",
            "Type your new second password twice and press \"Change\". Note: do not use the password of your university account.",
        )),
        action: "/student/second-password/reset",
        token,
        fields: PasswordFields { second: true, ..Default::default() },
        button: "変更 / Change",
    }
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
        &state.directories,
        &state.config.accounts.password_policy,
        Client { ip: &ip },
        &f.t,
        (&f.second_password, &f.second_password_confirm),
    )
    .await
    {
        Ok(()) => Ok(Html(message_page(
            ("第2パスワードの設定が完了しました", "Your second password is set"),
            &[("新しい第2パスワードでログインしてください。", "Log in with your new second password.")],
            Some(("/student/login", "OK")),
        ))
        .into_response()),
        Err(e) => Ok(form_failed(&state, &headers, &reset_form(&f.t), e)),
    }
}
