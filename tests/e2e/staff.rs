//! Staff accounts: password + TOTP, recovery codes, roles on every admin
//! route, the append-only audit log; and the web rules every page keeps
//! (Origin check, security headers, a bounded password-hashing pool).

use crate::accounts::*;
use crate::harness::*;
use anyhow::{Context, Result};
use shomei_backend::demo;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_need_a_fresh_totp_code_and_recovery_codes_work_once() -> Result<()> {
    let b = Backend::start(None).await?;
    // the password alone, or with a wrong code, opens nothing; the message is the same
    let (_, s1, p1) = b.staff_login(demo::STAFF_LOGIN, demo::STAFF_PASSWORD, "").await?;
    let (_, s2, p2) = b.staff_login(demo::STAFF_LOGIN, demo::STAFF_PASSWORD, "000000").await?;
    let (_, s3, p3) = b.staff_login(demo::STAFF_LOGIN, "Wrong2024pass", &b.staff_code().await?).await?;
    assert_eq!((s1.as_u16(), s2.as_u16(), s3.as_u16()), (401, 401, 401));
    assert_eq!(element_text(&p1, "error"), element_text(&p2, "error"));
    assert_eq!(element_text(&p1, "error"), element_text(&p3, "error"));
    // a right code works once: the same code again is refused (replay)
    tokio::time::sleep(std::time::Duration::from_millis(400)).await; // the third failure asks for a short wait
    let code = b.staff_code().await?;
    let (c, s, _) = b.staff_login(demo::STAFF_LOGIN, demo::STAFF_PASSWORD, &code).await?;
    assert_eq!(s, 200);
    let (_, s, _) = b.staff_login(demo::STAFF_LOGIN, demo::STAFF_PASSWORD, &code).await?;
    assert_eq!(s, 401, "a used code is refused");

    // an administrator adds a registrar: a second factor is shown once, with recovery codes
    let (st, _, page) = post_form(&c, &format!("{}/admin/staff", b.url), &format!("{}/admin/staff", b.url),
        &[("login", "suzuki"), ("display_name", "鈴木 事務"), ("role", "registrar")]).await?;
    assert_eq!(st, 200, "{page}");
    let secret = element_text(&page, "totp-secret").context("secret shown")?;
    let password = element_text(&page, "new-password").context("initial password shown")?;
    assert!(page.contains("otpauth:&#x2f;&#x2f;totp&#x2f;shomei:suzuki?secret="), "{page}");
    let codes: Vec<String> = page.match_indices("<li><code>").map(|(i, _)| page[i + 10..].split('<').next().unwrap_or("").to_string()).collect();
    assert_eq!(codes.len(), 10);
    let stored = b.sql("SELECT totp_sealed FROM staff WHERE login = 'suzuki'")?;
    assert!(!stored.is_empty() && !stored.contains(&secret), "the secret is sealed at rest");
    assert_eq!(b.sql(&format!("SELECT count(*) FROM staff_recovery_codes WHERE code_hash = '{}'", codes[0]))?, "0", "codes stored hashed");

    // the registrar logs in with a code and is first made to replace the initial password
    let (sc, s, _) = b.staff_login("suzuki", &password, &b.totp_code_for(&secret).await?).await?;
    assert_eq!(s, 200);
    let r = sc.get(format!("{}/admin/registrations", b.url)).send().await?;
    assert_eq!(r.url().path(), "/admin/password", "every admin page leads to the password page first");
    // then logs in with a recovery code typed loosely, which then is spent
    let loose = codes[0].to_uppercase().replace('-', " ");
    let (_, s, _) = b.staff_login("suzuki", &password, &loose).await?;
    assert_eq!(s, 200, "a recovery code works");
    let (_, s, _) = b.staff_login("suzuki", &password, &codes[0]).await?;
    assert_eq!(s, 401, "once");

    // the audit log has each event with the address, and never a secret
    let log = b.sql("SELECT actor || '|' || action || '|' || ip FROM audit_log")?;
    for line in ["staff:staff|login|127.0.0.1", "staff:staff|login.failed|127.0.0.1", "staff:staff|staff.create|127.0.0.1", "staff:suzuki|login.recovery_code|127.0.0.1"] {
        assert!(log.contains(line), "{line} in {log}");
    }
    let all = b.sql("SELECT * FROM audit_log")?;
    assert!(!all.contains(&password) && !all.contains(&secret) && !all.contains(&codes[1]), "no secret in the log");
    // append-only, even for someone with the database
    assert!(b.sql("UPDATE audit_log SET actor = 'nobody'").is_err());
    assert!(b.sql("DELETE FROM audit_log").is_err());
    Ok(())
}

/// A client that follows no redirect, with its own cookie jar: every answer
/// is seen as the backend gives it.
pub(crate) fn plain_client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default()
}

pub(crate) fn location(r: &reqwest::Response) -> Option<String> {
    r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// Logs `c` into the panel (a login is answered with a redirect).
pub(crate) async fn panel_login(b: &Backend, c: &reqwest::Client, login: &str, password: &str, secret: &str) -> Result<()> {
    let url = format!("{}/admin/login", b.url);
    let csrf = csrf_of(c, &url).await?;
    let code = b.totp_code_for(secret).await?;
    let r = c.post(url.as_str()).form(&[("csrf", csrf.as_str()), ("login", login), ("password", password), ("code", code.as_str())]).send().await?;
    let status = r.status();
    anyhow::ensure!(status == 303, "{login} logs in: {status} {}", r.text().await?);
    Ok(())
}

/// An administrator (logged in on `admin`) adds a staff member, who logs in
/// with the initial password, is made to set their own, and logs in again:
/// their client (following no redirects).
async fn staff_member(b: &Backend, admin: &reqwest::Client, login: &str, role: &str) -> Result<reqwest::Client> {
    let url = format!("{}/admin/staff", b.url);
    let (s, _, page) = post_form(admin, &url, &url, &[("login", login), ("display_name", login), ("role", role)]).await?;
    anyhow::ensure!(s == 200, "{login} added: {s} {page}");
    let secret = element_text(&page, "totp-secret").context("secret")?;
    let initial = element_text(&page, "new-password").context("password")?;
    first_login(b, login, &initial, &secret).await
}

/// Logs a new staff member in for the first time (initial password, then
/// their own, then in again): their client, following no redirects.
pub(crate) async fn first_login(b: &Backend, login: &str, initial: &str, secret: &str) -> Result<reqwest::Client> {
    let c = plain_client();
    panel_login(b, &c, login, initial, secret).await?;
    let r = c.get(format!("{}/admin", b.url)).send().await?;
    anyhow::ensure!(location(&r).as_deref() == Some("/admin/password"), "{login}: the first login leads to the password page: {:?}", location(&r));
    let own = "Walk2024ownPw";
    let url = format!("{}/admin/password", b.url);
    let (s, _, page) = post_form(&c, &url, &url, &[("current_password", initial), ("password", own), ("password_confirm", own)]).await?;
    anyhow::ensure!(s == 303, "{login}'s own password set: {s} {page}");
    let c = plain_client();
    panel_login(b, &c, login, own, secret).await?;
    Ok(c)
}

/// The English half of the role refusal (the page escapes the slash between the halves).
pub(crate) const NO_ROLE_WORDS: &str = "You do not have the role for this page.";
/// ... and of a form refused for its CSRF token, which the walk's never is.
pub(crate) const FORM_EXPIRED_WORDS: &str = "This form has expired: open the page again.";

/// What the panel answered, as far as roles go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Answer {
    /// 303 to the staff login, the session untouched: no staff session.
    LoginFirst,
    /// 403 with the page that says the role may not.
    NoRole,
    /// Anything else (a page, a redirect, a form's 400, a 404): past the role check.
    Passed(u16),
}

pub(crate) async fn answer_of(r: reqwest::Response) -> Result<(Answer, String)> {
    let status = r.status().as_u16();
    let to_login = location(&r).as_deref() == Some("/admin/login");
    // logging out also leads to the login page, but ends the session by its cookie
    let ends_session = r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains("shomei_staff="));
    let body = r.text().await?;
    let answer = match status {
        303 if to_login && !ends_session => Answer::LoginFirst,
        403 if body.contains(NO_ROLE_WORDS) => Answer::NoRole,
        s => Answer::Passed(s),
    };
    Ok((answer, body))
}

/// Where the call whose arguments `s` begins with closes (string literals skipped).
pub(crate) fn closing_paren(s: &str) -> Option<usize> {
    let (mut depth, mut in_str, mut escaped) = (1usize, false, false);
    for (i, ch) in s.char_indices() {
        if in_str {
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_str = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The HTTP methods of a route's method router: `get(..)`, `.post(..)`, ...
pub(crate) fn method_routers(args: &str) -> Vec<String> {
    const METHODS: [&str; 9] = ["get", "post", "put", "delete", "patch", "head", "options", "trace", "any"];
    let mut out = Vec::new();
    for m in METHODS {
        let needle = format!("{m}(");
        for (at, _) in args.match_indices(needle.as_str()) {
            // not a handler's name ending in it (`admin::target(`), nor a path (`x::get(`)
            let before = args[..at].chars().next_back();
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                out.push(m.to_uppercase());
            }
        }
    }
    out
}

/// Every (method, path) the router gives the admin panel, read from the
/// router's source: each `.route(` under /admin or with a panel handler.
pub(crate) fn admin_routes_of_router(src: &str) -> Result<BTreeSet<(String, String)>> {
    anyhow::ensure!(!src.contains(".merge(") && !src.contains(".route_service("), "the router merges routers or services: read those too");
    let mut pairs = BTreeSet::new();
    let (mut admin_paths, mut rest) = (0, src);
    while let Some(i) = rest.find(".route(") {
        let call = &rest[i + ".route(".len()..];
        let end = closing_paren(call).context("a .route( that does not close")?;
        let args = &call[..end];
        rest = &call[end..];
        anyhow::ensure!(args.trim_start().starts_with('"'), "a .route( whose path is no literal: {args}");
        let path = args.split('"').nth(1).context("a .route( without its path")?;
        if path.starts_with("/admin") {
            admin_paths += 1;
        } else if !args.contains("admin::") && !args.contains("admin_accounts::") {
            continue;
        }
        let methods = method_routers(args);
        anyhow::ensure!(!methods.is_empty(), "no method router in .route({args})");
        for m in methods {
            anyhow::ensure!(pairs.insert((m.clone(), path.to_string())), "{m} {path} routed twice");
        }
    }
    // each "/admin..." literal was the path of a .route( read above: nothing nested elsewhere
    anyhow::ensure!(src.matches("\"/admin").count() == admin_paths, "a /admin path outside a .route( call: read it too");
    Ok(pairs)
}

/// Real objects for the walk's path parameters.
pub(crate) struct WalkIds {
    pub(crate) station: String,
    pub(crate) spare_station: String,
    pub(crate) order: String,
    pub(crate) certificate: String,
    pub(crate) service_break: String,
    pub(crate) registration: String,
    pub(crate) image: String,
    pub(crate) spare_staff: String,
    pub(crate) graduation_run: String,
}

/// A graduation-day run of the first university (finished, no graduates),
/// as the walks need one to open.
pub(crate) fn graduation_run(b: &Backend) -> Result<String> {
    b.sql(
        "INSERT INTO cohort_runs (university_id, certificate_type_id, graduation_date, faculty_code, started_by, started_at, finished_at)
         VALUES (1, (SELECT MIN(id) FROM certificate_types WHERE university_id = 1), '2024-03-25', '', (SELECT MIN(id) FROM staff), 0, 0) RETURNING id",
    )
}

/// One object of each kind the admin routes act on, made as staff make
/// them (the administrator logged in on `admin`): an application with its ID
/// image, an order with its certificate, two stations ("walk kept", in use,
/// and "walk spare"), a service break on 2099-01-01, and a registrar
/// "walk-spare". Returns them with the spare's initial password and secret.
pub(crate) async fn walk_objects(b: &Backend, smtp: &Smtp, admin: &reqwest::Client) -> Result<(WalkIds, String, String)> {
    let registration = apply_as(b, smtp, "someone@example.jp", &applicant("役割 確認", "ヤクワリ カクニン", "YAKUWARI Kakunin")).await?;
    let image = b.sql(&format!("SELECT MIN(id) FROM registration_images WHERE registration_id = {registration}"))?;
    b.order_as_graduate(1).await?;
    let order = b.sql("SELECT MAX(id) FROM orders")?;
    let certificate = b.sql(&format!("SELECT MIN(c.id) FROM certificates c JOIN order_lines l ON l.id = c.order_line_id WHERE l.order_id = {order}"))?;
    let stations_url = format!("{}/admin/stations", b.url);
    for name in ["walk kept", "walk spare"] {
        let (s, _, page) = post_form(admin, &stations_url, &format!("{stations_url}/enrolment-codes"), &[("name", name)]).await?;
        anyhow::ensure!(s == 200, "station {name}: {s} {page}");
    }
    let station = b.sql("SELECT id FROM stations WHERE name = 'walk kept'")?;
    // as if it had enrolled: maintenance and test pages are for stations in use
    b.sql(&format!("UPDATE stations SET status = 'active' WHERE id = {station}"))?;
    let service_url = format!("{}/admin/service", b.url);
    let (s, _, page) = post_form(admin, &service_url, &service_url, &[("kind", "maintenance"), ("starts", "2099-01-01T09:00"), ("ends", "2099-01-01T10:00")]).await?;
    anyhow::ensure!(s == 303, "a service break: {s} {page}");
    let staff_url = format!("{}/admin/staff", b.url);
    let (s, _, page) = post_form(admin, &staff_url, &staff_url, &[("login", "walk-spare"), ("display_name", "walk spare"), ("role", "registrar")]).await?;
    anyhow::ensure!(s == 200, "a spare staff member: {s} {page}");
    let spare_secret = element_text(&page, "totp-secret").context("the spare's secret")?;
    let spare_password = element_text(&page, "new-password").context("the spare's password")?;
    let ids = WalkIds {
        station,
        spare_station: b.sql("SELECT id FROM stations WHERE name = 'walk spare'")?,
        order,
        certificate,
        service_break: b.sql("SELECT MAX(id) FROM service_breaks")?,
        registration: registration.to_string(),
        image,
        spare_staff: b.sql("SELECT id FROM staff WHERE login = 'walk-spare'")?,
        graduation_run: graduation_run(b)?,
    };
    Ok((ids, spare_password, spare_secret))
}

/// A route's path with its parameters filled in with real objects.
pub(crate) fn walk_path(pattern: &str, ids: &WalkIds) -> Result<String> {
    let first_university = "1".to_string();
    let id = match pattern {
        p if !p.contains('{') => return Ok(p.to_string()),
        // a revoked station stays revoked: one of its own
        "/admin/stations/{id}/revoke" => &ids.spare_station,
        p if p.starts_with("/admin/stations/{id}") => &ids.station,
        p if p.starts_with("/admin/orders/{id}") => &ids.order,
        p if p.starts_with("/admin/certificates/{id}") => &ids.certificate,
        p if p.starts_with("/admin/graduation/{id}") => &ids.graduation_run,
        // deleted by the first role allowed (the next deletes nothing)
        p if p.starts_with("/admin/service/{id}") => &ids.service_break,
        p if p.starts_with("/admin/registrations/{id}") => &ids.registration,
        // a new second factor, a new initial password, disabled: a staff member of its own
        p if p.starts_with("/admin/staff/{id}") => &ids.spare_staff,
        // the first university (whose objects the walks use)
        p if p.starts_with("/admin/universities/{id}") => &first_university,
        p => anyhow::bail!("the walk has no real object for {p}: give it one in walk_path"),
    };
    let path = pattern.replace("{id}", id).replace("{image_id}", &ids.image);
    anyhow::ensure!(!path.contains('{'), "the walk has no value for a parameter of {pattern}");
    Ok(path)
}

/// A POST's fields besides the CSRF token: where a form would change
/// something for good, input it refuses (a 400 past the role check).
pub(crate) fn walk_fields(pattern: &str) -> &'static [(&'static str, &'static str)] {
    match pattern {
        // a login that fails: the form is for everyone
        "/admin/login" => &[("login", "nobody"), ("password", "Nobody2024pass"), ("code", "000000")],
        // no new password: the form comes back, nothing changes
        "/admin/password" => &[("current_password", ""), ("password", ""), ("password_confirm", "")],
        "/admin/stations/enrolment-codes" => &[("name", "walk station")],
        "/admin/stations/{id}/service" => &[("in_service", "1")],
        // no reason: nothing refunded, nothing revoked
        "/admin/orders/{id}/refund" | "/admin/certificates/{id}/revoke" => &[("reason", "")],
        "/admin/registrations/{id}/decide" => &[("action", "")],
        "/admin/staff" => &[("login", ""), ("display_name", ""), ("role", "")],
        // the rest: empty forms (catalogue, offline policy, service break) are refused as
        // input; the others act on the walk's own objects (or, shipping, on a campus order)
        _ => &[],
    }
}

/// The file field of an upload form.
pub(crate) fn walk_upload(pattern: &str) -> Option<&'static str> {
    match pattern {
        "/admin/academic" | "/admin/school-register" | "/admin/roster" => Some("file"),
        "/admin/catalogue/seal" => Some("seal"),
        _ => None,
    }
}

pub(crate) async fn walk_request(c: &reqwest::Client, method: &str, url: &str, pattern: &str, csrf: &str) -> Result<reqwest::Response> {
    let req = match (method, walk_upload(pattern)) {
        ("GET", _) => c.get(url),
        // a file of none of the expected columns (nor a PNG): refused as input
        ("POST", Some(field)) => c.post(url).multipart(
            reqwest::multipart::Form::new()
                .text("csrf", csrf.to_string())
                .part(field, reqwest::multipart::Part::bytes(b"not,the,columns\n".to_vec()).file_name("walk.csv")),
        ),
        ("POST", None) => {
            let mut form = vec![("csrf", csrf)];
            form.extend_from_slice(walk_fields(pattern));
            c.post(url).form(&form)
        }
        (m, _) => anyhow::bail!("the walk sends no {m} yet: teach walk_request"),
    };
    Ok(req.send().await?)
}

/// Walks the router's whole admin table: every (method, path) as nobody, as
/// a portal user, and as a staff member of every role. The router's admin
/// routes (read from its source) must be exactly the role table's, so a new
/// route without a rule fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_checks_the_role() -> Result<()> {
    use shomei_backend::http::roles::{Rule, ADMIN_ROUTES, STAFF_ROLES};
    assert!(shomei_backend::messages::NO_ROLE.ends_with(NO_ROLE_WORDS), "the refusal's words");
    assert!(shomei_backend::messages::FORM_EXPIRED.ends_with(FORM_EXPIRED_WORDS), "the expired form's words");

    // 1. the router's admin routes are the table's: none without a rule, no rule without a route
    let router = admin_routes_of_router(include_str!("../../backend/src/http/mod.rs"))?;
    let table: BTreeSet<(String, String)> = ADMIN_ROUTES.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    assert_eq!(table.len(), ADMIN_ROUTES.len(), "a route twice in the role table");
    let without_rule: Vec<_> = router.difference(&table).collect();
    assert!(without_rule.is_empty(), "admin routes without a role rule (add them to shomei_backend::http::roles::ADMIN_ROUTES): {without_rule:?}");
    let no_route: Vec<_> = table.difference(&router).collect();
    assert!(no_route.is_empty(), "role rules for routes the router does not have: {no_route:?}");

    // 2. the objects the routes act on, and someone of every role
    let smtp = Smtp::start()?;
    let b = Backend::start(Some(smtp.port)).await?;
    let admin = plain_client();
    panel_login(&b, &admin, demo::STAFF_LOGIN, demo::STAFF_PASSWORD, demo::STAFF_TOTP_SECRET).await?;
    let mut staff = Vec::new();
    for role in STAFF_ROLES {
        let c = if *role == "admin" { admin.clone() } else { staff_member(&b, &admin, &format!("walk-{role}"), role).await? };
        staff.push((*role, c));
    }
    let (ids, spare_password, spare_secret) = walk_objects(&b, &smtp, &admin).await?;
    let registration = ids.registration.clone();
    let staff_url = format!("{}/admin/staff", b.url);

    // a disabled staff member's session ends at once
    let spare = plain_client();
    panel_login(&b, &spare, "walk-spare", &spare_password, &spare_secret).await?;
    let r = spare.get(format!("{}/admin", b.url)).send().await?;
    assert_eq!(location(&r).as_deref(), Some("/admin/password"), "logged in, with the initial password");
    let (s, _, page) = post_form(&admin, &staff_url, &format!("{staff_url}/{}/disable", ids.spare_staff), &[]).await?;
    assert_eq!(s, 303, "{page}");
    let r = spare.get(format!("{}/admin", b.url)).send().await?;
    assert_eq!(location(&r).as_deref(), Some("/admin/login"), "disabled: the session is gone");

    // the callers, each with its CSRF token (valid: a refusal is never the token's)
    let portal = plain_client();
    let (s, path, page) = portal_login(&b, &portal, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    anyhow::ensure!(s == 303, "the graduate logs in: {s} {path} {page}");
    let mut callers: Vec<(String, Option<&str>, reqwest::Client)> =
        vec![("nobody".to_string(), None, plain_client()), ("a portal user".to_string(), None, portal.clone())];
    for (role, c) in &staff {
        callers.push((format!("a staff member ({role})"), Some(*role), c.clone()));
    }
    let mut tokens = Vec::new();
    for (_, _, c) in &callers {
        tokens.push(csrf_of(c, &format!("{}/admin/login", b.url)).await?);
    }

    // 3. every route as each caller; logging out last (it ends the sessions the rest need)
    let mut routes: Vec<_> = ADMIN_ROUTES.iter().collect();
    routes.sort_by_key(|r| r.1 == "/admin/logout");
    let mut walked = 0;
    for (method, pattern, rule) in routes {
        let path = walk_path(pattern, &ids)?;
        let url = format!("{}{path}", b.url);
        for ((who, role, c), csrf) in callers.iter().zip(&tokens) {
            let (got, body) = answer_of(walk_request(c, method, &url, pattern, csrf).await?).await?;
            let allowed = match (rule, role) {
                (Rule::Public, _) => true,
                (_, None) => false,
                (Rule::AnyStaff, Some(_)) => true,
                // administrators may use every university route
                (Rule::Roles(roles), Some(r)) => *r == "admin" || roles.contains(r),
                // the demo's administrator is the walk's one platform operator
                (Rule::Platform, Some(r)) => *r == "admin",
            };
            let said = element_text(&body, "error").unwrap_or_else(|| body.chars().take(300).collect());
            if allowed {
                assert!(matches!(got, Answer::Passed(s) if s < 500), "{method} {path} as {who}: past the role check expected, got {got:?}: {said}");
                assert!(!body.contains(FORM_EXPIRED_WORDS), "{method} {path} as {who}: the walk's CSRF token was refused");
            } else if role.is_none() {
                assert_eq!(got, Answer::LoginFirst, "{method} {path} as {who}: the staff login expected: {said}");
            } else {
                assert_eq!(got, Answer::NoRole, "{method} {path} as {who}: the role refusal expected: {said}");
            }
        }
        walked += 1;
    }
    assert_eq!(walked, router.len(), "every admin route walked");

    // the refused posts changed nothing; logged out is logged out; the portal user stayed logged in
    assert_eq!(b.sql(&format!("SELECT status FROM registrations WHERE id = {registration}"))?, "pending");
    let traces = b.sql("SELECT COUNT(*) FROM audit_log WHERE actor IN ('staff:walk-registrar', 'staff:walk-operator') AND action LIKE 'staff.%'")?;
    assert_eq!(traces, "0", "refused staff actions left no trace");
    for (role, c) in &staff {
        let r = c.get(format!("{}/admin", b.url)).send().await?;
        assert_eq!(location(&r).as_deref(), Some("/admin/login"), "{role} logged out");
    }
    assert_eq!(portal.get(format!("{}/portal", b.url)).send().await?.status(), 200, "the portal user was logged in throughout");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_refuse_other_origins_carry_security_headers_and_a_full_hash_pool_says_busy() -> Result<()> {
    let b = Backend::start_with(None, |c| c.security.max_concurrent_hashes = 1).await?;
    let c = Backend::client();
    let csrf = csrf_of(&c, &format!("{}/login", b.url)).await?;
    // a form posted from another site is refused even with a valid token
    let r = c
        .post(format!("{}/login", b.url))
        .header("Origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("email", demo::GRADUATE_EMAIL), ("password", demo::GRADUATE_PASSWORD), ("second_password", demo::GRADUATE_SECOND_PASSWORD)])
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    assert!(r.text().await?.contains("Requests from other sites are refused"));
    // headers on every response, personal pages not cached
    for path in ["/login", "/register", "/admin/login", "/no-such-page"] {
        let r = c.get(format!("{}{path}", b.url)).send().await?;
        let h = r.headers();
        let csp = h.get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{path}: {csp}");
        assert_eq!(h.get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"));
        assert_eq!(h.get("referrer-policy").and_then(|v| v.to_str().ok()), Some("no-referrer"));
        assert_eq!(h.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
        assert!(h.get("strict-transport-security").is_some());
    }
    // many logins at once with one hashing slot: some are told "busy" at once (429), none time out
    let mut tasks = Vec::new();
    for i in 0..6 {
        let url = b.url.clone();
        tasks.push(tokio::spawn(async move {
            let c = Backend::client();
            let csrf = csrf_of(&c, &format!("{url}/login")).await?;
            let started = std::time::Instant::now();
            let r = c
                .post(format!("{url}/login"))
                .form(&[("csrf", csrf.as_str()), ("email", &format!("user{i}@example.jp")), ("password", "Whatever2024x"), ("second_password", "Whatever2024y")])
                .send()
                .await?;
            anyhow::Ok((r.status().as_u16(), r.headers().get("retry-after").is_some(), started.elapsed()))
        }));
    }
    let mut busy = 0;
    for t in tasks {
        let (s, retry, took) = t.await??;
        assert!(s == 401 || s == 429, "{s}");
        if s == 429 {
            busy += 1;
            assert!(retry, "429 says when to retry");
        }
        assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    }
    assert!(busy >= 1, "with one slot and six logins at once, some were told to retry");
    Ok(())
}

/// Cookie attributes of one Set-Cookie header for `name`.
fn set_cookie_of(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find(|v| v.starts_with(&format!("{name}="))).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_https_origin_cookies_are_host_prefixed_secure_and_sessions_rotate() -> Result<()> {
    // the backend behind a TLS-terminating proxy: its public origin is https
    let mut origin = String::new();
    let b = Backend::start_with(None, |c| {
        c.http.public_url = c.http.public_url.replace("http://", "https://");
        origin = c.http.public_url.clone();
    })
    .await?;
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let r = plain.get(format!("{}/login", b.url)).send().await?;
    assert!(r.headers().get("strict-transport-security").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("max-age=31536000")));
    let csrf_cookie = set_cookie_of(&r, "__Host-shomei_csrf").context("CSRF cookie")?;
    for attr in ["Path=/", "HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(csrf_cookie.contains(attr), "{attr} in {csrf_cookie}");
    }
    assert!(!csrf_cookie.contains("Domain="));
    let token = csrf_cookie.split(';').next().and_then(|kv| kv.split_once('=')).map(|(_, v)| v.to_string()).unwrap_or_default();
    let login = |cookie: String| {
        let plain = plain.clone();
        let (url, origin, token) = (b.url.clone(), origin.clone(), token.clone());
        async move {
            plain
                .post(format!("{url}/login"))
                .header("Cookie", cookie)
                .header("Origin", origin)
                .form(&[("csrf", token.as_str()), ("email", demo::GRADUATE_EMAIL), ("password", demo::GRADUATE_PASSWORD), ("second_password", demo::GRADUATE_SECOND_PASSWORD)])
                .send()
                .await
        }
    };
    let r = login(format!("__Host-shomei_csrf={token}")).await?;
    assert_eq!(r.status(), 303);
    let session = set_cookie_of(&r, "__Host-shomei_session").context("session cookie")?;
    for attr in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure", "Max-Age=43200"] {
        assert!(session.contains(attr), "{attr} in {session}");
    }
    let id1 = session.split(';').next().unwrap_or_default().to_string();
    assert!(id1.len() > "__Host-shomei_session=".len() + 32, "at least 128 bits: {id1}");
    // logging in again (with the old session cookie) gives a new id and ends the old session
    let r = login(format!("__Host-shomei_csrf={token}; {id1}")).await?;
    let id2 = set_cookie_of(&r, "__Host-shomei_session").context("second session")?.split(';').next().unwrap_or_default().to_string();
    assert_ne!(id1, id2, "a new session id at every login");
    let r = plain.get(format!("{}/portal", b.url)).header("Cookie", id1.clone()).send().await?;
    assert_eq!(r.headers().get("location").and_then(|v| v.to_str().ok()), Some("/login"), "the old session is gone");
    let r = plain.get(format!("{}/portal", b.url)).header("Cookie", id2.clone()).send().await?;
    assert_eq!(r.status(), 200);
    // the same live session id without the prefix is not read
    let bare = id2.replace("__Host-", "");
    let r = plain.get(format!("{}/portal", b.url)).header("Cookie", bare).send().await?;
    assert_eq!(r.status(), 303);
    Ok(())
}

on_both_screens!(an_administrator_manages_staff_and_the_roster_in_the_browser, an_administrator_manages_staff_and_the_roster_in_the_browser_at_phone_width, an_administrator_manages_staff_and_the_roster_in_the_browser_on);
async fn an_administrator_manages_staff_and_the_roster_in_the_browser_on(screen: Screen) -> Result<()> {
    use fantoccini::Locator;
    let b = Backend::start(None).await?;
    let browser = Browser::start_on(screen).await?;
    let w = &browser.client;
    w.goto(&format!("{}/admin/login", b.url)).await?;
    browser.wait_id("login").await?.send_keys(demo::STAFF_LOGIN).await?;
    w.find(Locator::Id("password")).await?.send_keys(demo::STAFF_PASSWORD).await?;
    w.find(Locator::Id("code")).await?.send_keys(&b.staff_code().await?).await?;
    w.find(Locator::Id("staff-login")).await?.click().await?;
    browser.wait_for(Locator::Css("nav a[href=\"/admin/staff\"]")).await?.click().await?;

    // a new station operator: the second factor is shown once
    browser.wait_id("login").await?.send_keys("tanaka").await?;
    w.find(Locator::Id("display_name")).await?.send_keys("田中 運用").await?;
    w.find(Locator::Id("role")).await?.select_by_value("operator").await?;
    w.find(Locator::Id("add-staff")).await?.click().await?;
    let secret = browser.wait_id("totp-secret").await?.text().await?;
    assert_eq!(secret.len(), 32, "{secret}");
    assert_eq!(w.find_all(Locator::Css("#recovery-codes li")).await?.len(), 10);
    assert!(browser.wait_id("staff").await?.text().await?.contains("tanaka"));
    w.goto(&format!("{}/admin/staff", b.url)).await?;
    assert!(w.find(Locator::Id("totp-secret")).await.is_err(), "not shown a second time");

    // the roster: a file with a bad row is refused whole, with the line named
    w.goto(&format!("{}/admin/roster", b.url)).await?;
    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("roster.csv");
    std::fs::write(&bad, "user_id,password,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code,email\n\
        u1,Initial2024a,一 二,イチ ニ,ICHI Ni,S1,LET,JLIT,\nu2,Initial2024b,三 四,サン シ,SAN Shi,S2,LET,JLIT,not-mail\n")?;
    browser.wait_id("file").await?.send_keys(&bad.display().to_string()).await?;
    w.find(Locator::Id("import")).await?.click().await?;
    let errs = browser.wait_id("row-errors").await?.text().await?;
    assert!(errs.contains("line 3 (email)"), "{errs}");
    assert_eq!(browser.wait_id("roster-count").await?.text().await?, "1");
    std::fs::write(&bad, "user_id,password,name_kanji,name_kana,name_roman,student_no,faculty_code,department_code,email\n\
        u1,Initial2024a,一 二,イチ ニ,ICHI Ni,S1,LET,JLIT,\n")?;
    browser.wait_id("file").await?.send_keys(&bad.display().to_string()).await?;
    w.find(Locator::Id("import")).await?.click().await?;
    browser.wait_text("notice", "Rows imported: 1").await?;
    assert_eq!(browser.wait_id("roster-count").await?.text().await?, "2");

    // the audit log shows both actions
    w.goto(&format!("{}/admin/audit", b.url)).await?;
    let log = browser.wait_id("audit").await?.text().await?;
    assert!(log.contains("staff.create") && log.contains("roster.import") && log.contains("127.0.0.1"), "{log}");
    browser.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaker_hashes_are_upgraded_at_login_and_one_address_trying_many_accounts_is_slowed() -> Result<()> {
    // the first delay after the address's free failures is a minute: the
    // twelfth try comes within it however slowly this machine hashes
    let b = Backend::start_with(None, |c| c.security.login_delay_ms = 60_000).await?;
    // a hash made with cheaper parameters (as an older release might have stored)
    let weak = shomei_backend::accounts::passwords::hash_with(
        &shomei_backend::accounts::passwords::HashCost { memory_kib: 8192, iterations: 1, parallelism: 1 },
        demo::GRADUATE_PASSWORD,
    )?;
    b.sql(&format!("UPDATE users SET password_hash = '{weak}' WHERE email = '{}'", demo::GRADUATE_EMAIL))?;
    let c = Backend::client();
    let (s, path, _) = portal_login(&b, &c, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    assert_eq!((s, path.as_str()), (200, "/portal"), "the old hash still verifies");
    let now = b.sql(&format!("SELECT password_hash FROM users WHERE email = '{}'", demo::GRADUATE_EMAIL))?;
    assert!(now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$") && now != weak, "rehashed at the configured cost: {now}");
    let logout = csrf_of(&c, &format!("{}/portal", b.url)).await?;
    c.post(format!("{}/logout", b.url)).form(&[("csrf", logout.as_str())]).send().await?;
    assert!(b.sql("SELECT action FROM audit_log WHERE action = 'logout'")?.contains("logout"), "logout is an audited event");

    // one address, a different account each time: after 10 failures it must wait too
    let mut statuses = Vec::new();
    for i in 0..12 {
        let (s, _, _) = portal_login(&b, &Backend::client(), &format!("spray{i}@example.jp"), "Spring2024!x", "Spring2024!y").await?;
        statuses.push(s);
    }
    assert!(statuses[..10].iter().all(|&s| s == 401), "{statuses:?}");
    assert_eq!(statuses[11], 429, "the address is slowed: {statuses:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_sessions_go_idle_sooner_than_portal_sessions() -> Result<()> {
    let b = Backend::start_with(None, |c| {
        c.accounts.staff_session_idle_s = 1;
        c.accounts.session_idle_s = 60;
    })
    .await?;
    let staff = b.staff_client().await?;
    let user = Backend::client();
    let (s, path, _) = portal_login(&b, &user, demo::GRADUATE_EMAIL, demo::GRADUATE_PASSWORD, demo::GRADUATE_SECOND_PASSWORD).await?;
    assert_eq!((s, path.as_str()), (200, "/portal"));
    assert_eq!(staff.get(format!("{}/admin/stations", b.url)).send().await?.url().path(), "/admin/stations");
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_eq!(staff.get(format!("{}/admin/stations", b.url)).send().await?.url().path(), "/admin/login", "staff idle limit");
    assert_eq!(user.get(format!("{}/portal", b.url)).send().await?.url().path(), "/portal", "the portal's is longer");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_pages_own_poll_does_not_keep_an_unattended_staff_session_alive() -> Result<()> {
    let b = Backend::start_with(None, |c| c.accounts.staff_session_idle_s = 3).await?;
    let staff = b.staff_client().await?;
    assert_eq!(staff.get(format!("{}/admin/stations", b.url)).send().await?.url().path(), "/admin/stations");
    let token_rows = || b.sql("SELECT COUNT(*) FROM sessions WHERE staff_id IS NOT NULL");
    assert_eq!(token_rows()?, "1");
    // the page left open polls its JSON every second, as fleet.js does
    let mut answers = Vec::new();
    for _ in 0..8 {
        let r = staff.get(format!("{}/admin/stations.json", b.url)).header("accept", "application/json").send().await?;
        answers.push(r.url().path().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    }
    assert_eq!(answers.first().map(String::as_str), Some("/admin/stations.json"), "the poll is answered while the session lives");
    assert_eq!(answers.last().map(String::as_str), Some("/admin/login"), "then the session ends: {answers:?}");
    assert_eq!(token_rows()?, "0", "the idle session was deleted");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_codes_are_stored_as_keyed_hashes_and_still_log_staff_in() -> Result<()> {
    use sha2::Digest;
    let b = Backend::start(None).await?;
    // a new second factor on the server's console prints ten recovery codes once
    let out = b.cli(&["staff-totp", demo::STAFF_LOGIN])?;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said} {}", String::from_utf8_lossy(&out.stderr));
    let codes: Vec<String> = said.lines().skip_while(|l| !l.starts_with("recovery codes")).skip(1).map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    assert_eq!(codes.len(), 10, "{said}");
    // what the database holds is no plain SHA-256 of any code (a stolen database cannot test guesses)
    let stored = b.sql("SELECT code_hash FROM staff_recovery_codes WHERE used_at IS NULL")?;
    assert_eq!(stored.lines().count(), 10);
    for code in &codes {
        let plain = hex::encode(sha2::Sha256::digest(shomei_backend::accounts::totp::normalize_recovery(code).as_bytes()));
        assert!(!stored.contains(&plain), "an unkeyed hash of {code} is stored");
    }
    // a code still opens the panel, once
    let (_, status, page) = b.staff_login(demo::STAFF_LOGIN, demo::STAFF_PASSWORD, &codes[0]).await?;
    assert!(status.is_success() && page.contains("/admin/logout"), "{status} {page}");
    let (_, status, _) = b.staff_login(demo::STAFF_LOGIN, demo::STAFF_PASSWORD, &codes[0]).await?;
    assert_eq!(status.as_u16(), 401, "used once");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_members_initial_password_expires_and_an_administrator_issues_a_new_one() -> Result<()> {
    let b = Backend::start(None).await?;
    let admin = b.staff_client().await?;
    let url = format!("{}/admin/staff", b.url);
    let (s, _, page) = post_form(&admin, &url, &url, &[("login", "tanaka"), ("display_name", "田中 窓口"), ("role", "registrar")]).await?;
    assert_eq!(s, 200, "{page}");
    let secret = element_text(&page, "totp-secret").context("secret")?;
    let initial = element_text(&page, "new-password").context("password")?;
    // eight days later (the initial password lives seven): refused, in words, even with the right code
    b.sql("UPDATE staff SET password_issued_at = password_issued_at - 8 * 86400 WHERE login = 'tanaka'")?;
    let (_, status, page) = b.staff_login("tanaka", &initial, &b.totp_code_for(&secret).await?).await?;
    assert!(matches!(status.as_u16(), 400 | 401), "{status} {page}");
    assert!(!page.contains("/admin/logout"), "not logged in");
    assert!(page.contains("ask an administrator to issue a new one") && page.contains("管理者に新しい初期パスワード"), "{page}");
    assert_eq!(b.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'login.initial_expired' AND actor = 'staff:tanaka'")?, "1");
    // the administrator issues a new one from the staff page; it is shown once and works
    let page = admin.get(&url).send().await?.text().await?;
    assert!(page.contains("id=\"reissue-tanaka\""), "the staff page offers a new initial password");
    let id = b.sql("SELECT id FROM staff WHERE login = 'tanaka'")?;
    let action = format!("{}/admin/staff/{id}/password", b.url);
    let (s, _, page) = post_form(&admin, &url, &action, &[]).await?;
    assert_eq!(s, 200, "{page}");
    let fresh = element_text(&page, "new-password").context("the new initial password")?;
    assert_ne!(fresh, initial);
    assert!(element_text(&page, "totp-secret").is_none(), "the second factor is unchanged");
    let (_, status, page) = b.staff_login("tanaka", &initial, &b.totp_code_for(&secret).await?).await?;
    assert_eq!(status.as_u16(), 401, "the old one is gone: {page}");
    let (_, status, page) = b.staff_login("tanaka", &fresh, &b.totp_code_for(&secret).await?).await?;
    assert!(status.is_success() && page.contains("action=\"&#x2f;admin&#x2f;password\""), "the new one leads to choosing a password: {status} {page}");
    assert_eq!(b.sql("SELECT COUNT(*) FROM audit_log WHERE action = 'staff.password_reissued'")?, "1");
    Ok(())
}
