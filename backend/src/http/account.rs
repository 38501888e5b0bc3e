//! Account pages of the portal: password setting at first login (G-5),
//! forgotten password (G-11), personal data (G-7), e-mail change (G-8),
//! password and second-password change (G-10), another student ID (G-6).

use super::pages::{message_page, render};
use super::register::check_email_pair;
use super::web::{check_csrf, client_ip, set_cookie, Csrf, CsrfForm, CurrentUser, USER_COOKIE};
use crate::accounts::{self, Client};
use crate::accounts::credentials::{self, Form as FormErr, NewPasswords};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::registration::Personal;
use crate::{store, AppState};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use minijinja::{context, Value};
use serde::Deserialize;
use std::net::SocketAddr;

/// Which fields a password form shows.
#[derive(Default, Clone, Copy)]
pub struct PasswordFields {
    pub current: bool,
    pub current_second: bool,
    pub university: bool,
    pub password: bool,
    pub second: bool,
}

pub struct PasswordPage<'a> {
    pub title: (&'a str, &'a str),
    pub intro: Option<(&'a str, &'a str)>,
    pub action: &'a str,
    pub token: &'a str,
    pub fields: PasswordFields,
    pub button: &'a str,
}

pub fn password_page(state: &AppState, headers: &HeaderMap, p: &PasswordPage<'_>, errors: &FieldErrors) -> Response {
    let csrf = Csrf::get(state, headers);
    let policy = &state.config.accounts.password_policy;
    let page = Html(render(
        "password_form.html",
        context! { csrf => &csrf.token, title_ja => p.title.0, title_en => p.title.1, intro => p.intro.map(|(a, b)| [a, b]),
                   action => p.action, token => p.token, errors, button => p.button,
                   hint_ja => policy.hint_ja(), hint_en => policy.hint_en(),
                   show_current => p.fields.current, show_current_second => p.fields.current_second,
                   show_university => p.fields.university, show_password => p.fields.password, show_second => p.fields.second },
    ));
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    IntoResponse::into_response((status, csrf.respond(page)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    pub csrf: String,
    pub t: String,
    pub current_password: String,
    pub current_second_password: String,
    pub university_password: String,
    pub password: String,
    pub password_confirm: String,
    pub second_password: String,
    pub second_password_confirm: String,
}

/// Shows the form again with its field messages, or the error page.
pub fn form_failed(state: &AppState, headers: &HeaderMap, page: &PasswordPage<'_>, e: FormErr) -> Response {
    match e {
        FormErr::Fields(errors) => password_page(state, headers, page, &errors),
        FormErr::Error(e) => e.into_response(),
    }
}

/// A fresh session after a password change (the old ones all ended).
async fn relogin(state: &AppState, user_id: i64, to: &str) -> AppResult<Response> {
    let session = accounts::start_session(&state.pool, &state.sessions, Some(user_id), None).await?;
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().append(SET_COOKIE, set_cookie(state, USER_COOKIE, &session, state.sessions.absolute_s, "Lax"));
    Ok(r)
}

const SETUP: PasswordPage<'static> = PasswordPage {
    title: ("パスワード設定", "Set your passwords"),
    intro: Some((
        "初期パスワードを変更し、第2パスワードを設定してください。パスワードと第2パスワードは別々にしてください。",
        "Replace the initial password and set a second password. The two must differ.",
    )),
    action: "/password/setup",
    token: "",
    fields: PasswordFields { current: false, current_second: false, university: false, password: true, second: true },
    button: "OK",
};

pub async fn setup_page(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser) -> Response {
    if !user.user.must_set_password {
        return Redirect::to("/portal").into_response();
    }
    password_page(&state, &headers, &SETUP, &FieldErrors::new())
}

pub async fn setup(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Form(f): Form<PasswordForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    if !user.user.must_set_password {
        return Ok(Redirect::to("/portal").into_response());
    }
    let ip = client_ip(&addr);
    let n = NewPasswords { password: Some((&f.password, &f.password_confirm)), second: Some((&f.second_password, &f.second_password_confirm)) };
    match credentials::set_first_passwords(&state.pool, &state.hasher, &state.config.accounts.password_policy, &user.user, Client { ip: &ip }, &n).await {
        Ok(()) => relogin(&state, user.user.id, "/portal?notice=password-set").await,
        Err(e) => Ok(form_failed(&state, &headers, &SETUP, e)),
    }
}

// ---------------------------------------------------------------- G-11

fn forgot_html(csrf: &str, email: &str, errors: &FieldErrors, student: bool) -> Html<String> {
    let (title_ja, title_en, action, intro) = if student {
        ("第2パスワードの再設定", "Reset your second password", "/student/second-password/forgot",
         ["大学のユーザIDを入力してください。登録済みのメールアドレスに再設定用のURLを送ります。", "Enter your university user ID: we mail a link to your registered address."])
    } else {
        ("パスワードの再設定", "Reset your password", "/password/forgot",
         ["登録済みのメールアドレスを入力してください。再設定用のURLを送ります。", "Enter your registered e-mail address: we mail you a link to set new passwords."])
    };
    Html(render(
        "email_form.html",
        context! { csrf, title_ja, title_en, action, intro, errors, email, user_id => email, show_email => !student, show_user_id => student,
                   show_confirm => false, email_label => ["メールアドレス", "E-mail address"], button => "送信 / Send",
                   back => if student { "/student/login" } else { "/login" } },
    ))
}

pub async fn forgot_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let csrf = Csrf::get(&state, &headers);
    let page = forgot_html(&csrf.token, "", &FieldErrors::new(), false);
    csrf.respond(page)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ForgotForm {
    csrf: String,
    email: String,
    user_id: String,
}

pub fn reset_sent_page() -> Html<String> {
    Html(message_page(
        ("メールを確認してください", "Check your mail"),
        &[(
            "登録されている場合は、再設定用のURLをメールでお送りしました。URLの有効期限にご注意ください。",
            "If the account exists, we have mailed it a link to set new passwords. The link expires soon.",
        )],
        None,
    ))
}

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
        let page = forgot_html(&csrf.token, &f.email, &e, false);
        return Ok((StatusCode::BAD_REQUEST, csrf.respond(page)).into_response());
    }
    let ip = client_ip(&addr);
    let email = f.email.trim().to_lowercase();
    let key = format!("reset:{email}");
    state.request_throttle.gate(&key, &ip).await?;
    state.request_throttle.fail_both(&key, &ip).await;
    let mut c = state.pool.acquire().await?;
    let user = store::user_by_email(&mut c, &email).await?.filter(|u| u.kind == "graduate");
    drop(c);
    credentials::request_reset(&state.pool, &state.seal, &state.config.http.public_url, state.config.accounts.link_ttl_s, user, false, state.mail_wake.clone(), state.config.accounts.failpoint_hold_reset.clone()).await?;
    state.mail_wake.notify_one();
    Ok(reset_sent_page().into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct TokenQuery {
    pub t: String,
}

fn reset_form(token: &str) -> PasswordPage<'_> {
    PasswordPage {
        title: ("パスワードの再設定", "Set new passwords"),
        intro: Some(("新しいパスワードと第2パスワードを設定してください。", "Set a new password and a new second password.")),
        action: "/password/reset",
        token,
        fields: PasswordFields { password: true, second: true, ..Default::default() },
        button: "設定 / Set",
    }
}

/// The page a one-time link opens: the link is checked (not used) and its form shown.
pub async fn link_form_page(state: &AppState, headers: &HeaderMap, purpose: &str, token: &str, page: &PasswordPage<'_>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    accounts::peek_token(&mut c, purpose, token).await?;
    Ok(password_page(state, headers, page, &FieldErrors::new()))
}

pub async fn reset_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<TokenQuery>) -> AppResult<Response> {
    link_form_page(&state, &headers, "password_reset", &q.t, &reset_form(&q.t)).await
}

pub async fn reset(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client_ip(&addr);
    let n = NewPasswords { password: Some((&f.password, &f.password_confirm)), second: Some((&f.second_password, &f.second_password_confirm)) };
    match credentials::reset(&state.pool, &state.seal, &state.hasher, &state.config.accounts.password_policy, Client { ip: &ip }, &f.t, &n).await {
        Ok(()) => {
            state.mail_wake.notify_one();
            Ok(Html(message_page(
                ("パスワードを設定しました", "Your passwords are set"),
                &[("新しいパスワードと第2パスワードでログインしてください。", "Log in with your new password and second password.")],
                Some(("/login", "ログイン / Log in")),
            ))
            .into_response())
        }
        Err(e) => Ok(form_failed(&state, &headers, &reset_form(&f.t), e)),
    }
}

// ---------------------------------------------------------------- account menu

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NoticeQuery {
    notice: String,
}

pub fn notice_text(key: &str) -> Option<&'static str> {
    Some(match key {
        "password-set" => "パスワードを設定しました。 / Your passwords are set.",
        "password-changed" => "パスワードを変更しました。 / Your password was changed.",
        "second-changed" => "第2パスワードを変更しました。 / Your second password was changed.",
        "personal-saved" => "個人情報を変更しました。 / Your details were changed.",
        "email-sent" => "新しいメールアドレスに確認のメールを送りました。メールのURLを開くと変更が完了します。 / We have mailed your new address: open the link in it to finish the change.",
        "email-changed" => "メールアドレスを変更しました。 / Your e-mail address was changed.",
        "student-id-sent" => "学籍番号追加のためのURLをメールで送りました。 / We have mailed you a link to add a student ID.",
        _ => return None,
    })
}

pub async fn menu(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser, Query(q): Query<NoticeQuery>) -> AppResult<Response> {
    let csrf = Csrf::get(&state, &headers);
    let mut c = state.pool.acquire().await?;
    let records = store::student_records(&mut c, user.user.id).await?;
    let records: Vec<Value> = records
        .iter()
        .map(|r| context! { student_no => &r.student_no, faculty_ja => &r.faculty_ja, department_ja => &r.department_ja, name_kanji => &r.name_kanji })
        .collect();
    let page = Html(render(
        "account.html",
        context! { csrf => &csrf.token, email => &user.user.email, records, graduate => user.user.kind == "graduate",
                   notice => notice_text(&q.notice) },
    ));
    Ok(csrf.respond(page))
}

// ---------------------------------------------------------------- G-10

fn change_form(second: bool) -> PasswordPage<'static> {
    if second {
        PasswordPage {
            title: ("第2パスワードの変更", "Change your second password"),
            intro: None,
            action: "/account/second-password",
            token: "",
            fields: PasswordFields { current_second: true, second: true, ..Default::default() },
            button: "変更 / Change",
        }
    } else {
        PasswordPage {
            title: ("パスワードの変更", "Change your password"),
            intro: None,
            action: "/account/password",
            token: "",
            fields: PasswordFields { current: true, password: true, ..Default::default() },
            button: "変更 / Change",
        }
    }
}

pub async fn password_change_page(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser) -> Response {
    if user.user.kind != "graduate" {
        return AppError::PageNotFound.into_response();
    }
    password_page(&state, &headers, &change_form(false), &FieldErrors::new())
}

pub async fn second_change_page(State(state): State<AppState>, headers: HeaderMap, _user: CurrentUser) -> Response {
    password_page(&state, &headers, &change_form(true), &FieldErrors::new())
}

async fn do_change(state: &AppState, addr: &SocketAddr, headers: &HeaderMap, user: &CurrentUser, f: &PasswordForm, second: bool) -> AppResult<Response> {
    check_csrf(state, headers, &f.csrf)?;
    if !second && user.user.kind != "graduate" {
        return Err(AppError::PageNotFound);
    }
    let ip = client_ip(addr);
    let (current, new) = if second {
        (&f.current_second_password, (f.second_password.as_str(), f.second_password_confirm.as_str()))
    } else {
        (&f.current_password, (f.password.as_str(), f.password_confirm.as_str()))
    };
    // a wrong current password counts as a failed login for the throttle
    let key = format!("change:{}", user.user.id);
    state.login_throttle.gate(&key, &ip).await?;
    match credentials::change(&state.pool, &state.seal, &state.hasher, &state.config.accounts.password_policy, &user.user, Client { ip: &ip }, second, current, new).await {
        Ok(()) => {
            state.mail_wake.notify_one();
            relogin(state, user.user.id, if second { "/account?notice=second-changed" } else { "/account?notice=password-changed" }).await
        }
        Err(e) => {
            if let FormErr::Fields(errs) = &e {
                if errs.contains_key("current_password") || errs.contains_key("current_second_password") {
                    state.login_throttle.fail_both(&key, &ip).await;
                }
            }
            Ok(form_failed(state, headers, &change_form(second), e))
        }
    }
}

pub async fn password_change(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Form(f): Form<PasswordForm>,
) -> AppResult<Response> {
    do_change(&state, &addr, &headers, &user, &f, false).await
}

pub async fn second_change(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Form(f): Form<PasswordForm>,
) -> AppResult<Response> {
    do_change(&state, &addr, &headers, &user, &f, true).await
}

// ---------------------------------------------------------------- G-8

fn email_change_html(csrf: &str, graduate: bool, email: &str, confirm: &str, errors: &FieldErrors) -> Html<String> {
    Html(render(
        "email_form.html",
        context! { csrf, title_ja => "メールアドレスの変更", title_en => "Change your e-mail address", action => "/account/email",
                   intro => ["新しいメールアドレスに確認のメールを送ります。メールのURLを開くと変更が完了します。", "We mail a link to the new address; the change happens when you open it."],
                   errors, email, email_confirm => confirm, show_email => true, show_confirm => true, show_current => true,
                   current_label => if graduate { ["現在のパスワード", "Current password"] } else { ["現在の第2パスワード", "Current second password"] },
                   email_label => ["新しいメールアドレス", "New e-mail address"], button => "送信 / Send", back => "/account" },
    ))
}

pub async fn email_change_page(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser) -> Response {
    let csrf = Csrf::get(&state, &headers);
    let page = email_change_html(&csrf.token, user.user.kind == "graduate", "", "", &FieldErrors::new());
    csrf.respond(page)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EmailChangeForm {
    csrf: String,
    current_password: String,
    email: String,
    email_confirm: String,
}

pub async fn email_change(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Form(f): Form<EmailChangeForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let graduate = user.user.kind == "graduate";
    let mut errors = FieldErrors::new();
    check_email_pair(&f.email, &f.email_confirm, &mut errors);
    let ip = client_ip(&addr);
    let key = format!("change:{}", user.user.id);
    state.login_throttle.gate(&key, &ip).await?;
    // every request mails someone: counted whether it succeeds or not
    let sent_key = format!("email-change:{}", user.user.id);
    state.request_throttle.gate(&sent_key, &ip).await?;
    state.request_throttle.fail_both(&sent_key, &ip).await;
    let result = if errors.is_empty() {
        credentials::request_email_change(
            &state.pool, &state.seal,
            &state.hasher,
            &state.config.http.public_url,
            state.config.accounts.link_ttl_s,
            &user.user,
            Some(f.current_password.as_str()),
            &f.email,
        )
        .await
    } else {
        Err(FormErr::Fields(errors))
    };
    match result {
        Ok(()) => {
            state.mail_wake.notify_one();
            Ok(Redirect::to("/account?notice=email-sent").into_response())
        }
        Err(FormErr::Fields(errors)) => {
            if errors.contains_key("current_password") {
                state.login_throttle.fail_both(&key, &ip).await;
            }
            let csrf = Csrf::get(&state, &headers);
            let page = email_change_html(&csrf.token, graduate, &f.email, &f.email_confirm, &errors);
            Ok((StatusCode::BAD_REQUEST, csrf.respond(page)).into_response())
        }
        Err(FormErr::Error(e)) => Err(e),
    }
}

/// The link from the new mailbox shows a button (GET changes nothing).
pub async fn email_confirm_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<TokenQuery>) -> AppResult<Response> {
    let mut c = state.pool.acquire().await?;
    let t = accounts::peek_token(&mut c, "email_change", &q.t).await?;
    let csrf = Csrf::get(&state, &headers);
    let page = Html(render(
        "email_form.html",
        context! { csrf => &csrf.token, title_ja => "メールアドレス変更の確認", title_en => "Confirm your new address",
                   action => format!("/account/email/confirm?t={}", q.t),
                   intro => [format!("メールアドレスを {} に変更します。", t.subject), format!("Your address will become {}.", t.subject)],
                   errors => FieldErrors::new(), button => "変更する / Change it" },
    ));
    Ok(IntoResponse::into_response(csrf.respond(page)))
}

pub async fn email_confirm(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
    Form(f): Form<CsrfForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    let ip = client_ip(&addr);
    credentials::confirm_email_change(&state.pool, &state.seal, Client { ip: &ip }, &q.t).await?;
    state.mail_wake.notify_one();
    Ok(IntoResponse::into_response(Html(message_page(
        ("メールアドレスを変更しました", "Your e-mail address was changed"),
        &[("安全のため、すべての端末でログアウトしました。新しいメールアドレスでログインしてください。", "For your safety you were logged out everywhere: log in with your new address.")],
        Some(("/login", "ログイン / Log in")),
    ))))
}

// ---------------------------------------------------------------- G-7

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PersonalForm {
    csrf: String,
    step: String,
    #[serde(flatten)]
    p: Personal,
}

fn personal_html(csrf: &str, p: &Personal, errors: &FieldErrors, confirm: bool) -> Html<String> {
    let rows: Vec<[&str; 3]> = vec![
        ["郵便番号", "Postal code", &p.postal_code],
        ["都道府県", "Prefecture", &p.prefecture],
        ["市区町村", "City", &p.city],
        ["番地", "Street and number", &p.street],
        ["建物名・部屋番号", "Building and room", &p.building],
        ["電話番号", "Home phone", &p.home_phone],
        ["携帯電話番号", "Mobile phone", &p.mobile_phone],
        ["勤務先名", "Workplace name", &p.work_name],
        ["勤務先郵便番号", "Workplace postal code", &p.work_postal_code],
        ["勤務先都道府県", "Workplace prefecture", &p.work_prefecture],
        ["勤務先市区町村", "Workplace city", &p.work_city],
        ["勤務先番地", "Workplace street and number", &p.work_street],
        ["勤務先建物名・部屋番号", "Workplace building and room", &p.work_building],
        ["勤務先電話番号", "Workplace phone", &p.work_phone],
    ];
    Html(render("account_personal.html", context! { csrf, p, errors, confirm, rows }))
}

pub async fn personal_page(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser) -> AppResult<Response> {
    if user.user.kind != "graduate" {
        return Err(AppError::PageNotFound);
    }
    let p = Personal::open(&state.seal, user.user.personal_sealed.as_deref(), &crate::registration::user_aad(user.user.id))?;
    let csrf = Csrf::get(&state, &headers);
    let page = personal_html(&csrf.token, &p, &FieldErrors::new(), false);
    Ok(csrf.respond(page))
}

/// Edit -> confirm -> done (the manual's three steps).
pub async fn personal(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    user: CurrentUser,
    Form(f): Form<PersonalForm>,
) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    if user.user.kind != "graduate" {
        return Err(AppError::PageNotFound);
    }
    // the birth date is not changed here: keep the stored one
    let stored = Personal::open(&state.seal, user.user.personal_sealed.as_deref(), &crate::registration::user_aad(user.user.id))?;
    let p = Personal { birth_date: stored.birth_date, ..f.p };
    let errors = crate::registration::check_personal(&p);
    let csrf = Csrf::get(&state, &headers);
    if !errors.is_empty() {
        let page = personal_html(&csrf.token, &p, &errors, false);
        return Ok((StatusCode::BAD_REQUEST, csrf.respond(page)).into_response());
    }
    if f.step != "save" {
        let page = personal_html(&csrf.token, &p, &errors, true);
        return Ok(csrf.respond(page));
    }
    let ip = client_ip(&addr);
    crate::registration::save_personal(&state.pool, &state.seal, &user.user, Client { ip: &ip }, &p).await?;
    Ok(Redirect::to("/account?notice=personal-saved").into_response())
}

// ---------------------------------------------------------------- G-6

pub async fn add_student_id(State(state): State<AppState>, headers: HeaderMap, user: CurrentUser, Form(f): Form<CsrfForm>) -> AppResult<Response> {
    check_csrf(&state, &headers, &f.csrf)?;
    if user.user.kind != "graduate" {
        return Err(AppError::PageNotFound);
    }
    credentials::request_add_student_id(&state.pool, &state.seal, &state.config.http.public_url, state.config.accounts.link_ttl_s, &user.user).await?;
    state.mail_wake.notify_one();
    Ok(Redirect::to("/account?notice=student-id-sent").into_response())
}
