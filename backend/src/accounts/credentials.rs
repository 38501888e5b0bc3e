//! What a user changes about their own account: first password setting (G-5),
//! password and second-password changes (G-10), forgotten password (G-11),
//! e-mail change (G-8), and the enrolled students'
//! e-mail registration and second password (S-2, S-3). Every change that
//! touches a password ends the account's other sessions.

use crate::accounts::{self, Client};
use crate::accounts::directory::{Directories, DirectoryEntry};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::mail::{self, Recipient};
use crate::accounts::password_policy::{PasswordPolicy, Rule};
use crate::accounts::passwords::Hasher;
use crate::store;
use crate::time;
use crate::store::Pool;

/// New passwords as typed in a form: (new, confirmation) per kind.
#[derive(Default)]
pub struct NewPasswords<'a> {
    pub password: Option<(&'a str, &'a str)>,
    pub second: Option<(&'a str, &'a str)>,
}

fn put_rules(errors: &mut FieldErrors, field: &str, confirm_field: &str, rules: Vec<Rule>) {
    let (mismatch, rest): (Vec<_>, Vec<_>) = rules.into_iter().partition(|r| matches!(r, Rule::Mismatch));
    if !rest.is_empty() {
        errors.insert(field.into(), rest.iter().map(Rule::message).collect::<Vec<_>>().join(" "));
    }
    if let Some(m) = mismatch.first() {
        errors.insert(confirm_field.into(), m.message());
    }
}

/// The policy's rules for each new password, and that password and second
/// password differ. (Comparisons with stored hashes come after: they cost a hash.)
pub fn check_new(policy: &PasswordPolicy, n: &NewPasswords<'_>, other_plain: &[(&str, Rule)]) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if let Some((pw, confirm)) = n.password {
        let mut forbidden: Vec<(&str, Rule)> = other_plain.to_vec();
        if let Some((second, _)) = n.second {
            forbidden.push((second, Rule::SameAsOtherPassword));
        }
        put_rules(&mut errors, "password", "password_confirm", policy.check_new(pw, confirm, &forbidden));
    }
    if let Some((second, confirm)) = n.second {
        let mut forbidden: Vec<(&str, Rule)> = other_plain.to_vec();
        if let Some((pw, _)) = n.password {
            forbidden.push((pw, Rule::SameAsOtherPassword));
        }
        put_rules(&mut errors, "second_password", "second_password_confirm", policy.check_new(second, confirm, &forbidden));
    }
    errors
}

fn wrong_current(field: &str, ja: &str, en: &str) -> FieldErrors {
    let mut e = FieldErrors::new();
    e.insert(field.into(), format!("{ja}が正しくありません。 / The {en} is not correct."));
    e
}

/// The result of a form: done, or what to show next to which field.
pub type FormResult<T> = Result<T, Form>;

pub enum Form {
    Fields(FieldErrors),
    Error(AppError),
}

impl From<AppError> for Form {
    fn from(e: AppError) -> Self {
        Form::Error(e)
    }
}

impl From<sqlx::Error> for Form {
    fn from(e: sqlx::Error) -> Self {
        Form::Error(e.into())
    }
}

fn recipient(u: &store::User, name: &(String, String)) -> (String, String, String) {
    (name.0.clone(), name.1.clone(), u.language.clone())
}

async fn names(c: &mut store::Conn, user_id: i64) -> AppResult<(String, String)> {
    Ok(store::student_records(c, user_id).await?.first().map(|r| (r.name_kanji.clone(), r.name_roman.clone())).unwrap_or_default())
}

/// G-5: first login; new password and second password replace the initial one.
pub async fn set_first_passwords(
    pool: &Pool,
    hasher: &Hasher,
    policy: &PasswordPolicy,
    user: &store::User,
    client: Client<'_>,
    n: &NewPasswords<'_>,
) -> FormResult<()> {
    let (Some((pw, _)), Some((second, _))) = (n.password, n.second) else { return Err(Form::Error(AppError::PageNotFound)) };
    let errors = check_new(policy, n, &[]);
    if !errors.is_empty() {
        return Err(Form::Fields(errors));
    }
    let same = hasher.verify_all(vec![(pw.to_string(), Some(user.password_hash.clone())), (second.to_string(), Some(user.password_hash.clone()))]).await?;
    let mut errors = FieldErrors::new();
    if same[0].ok {
        errors.insert("password".into(), Rule::SameAsOld.message());
    }
    if same[1].ok {
        errors.insert("second_password".into(), Rule::SameAsOld.message());
    }
    if !errors.is_empty() {
        return Err(Form::Fields(errors));
    }
    let (h1, h2) = (hasher.hash(pw).await?, hasher.hash(second).await?);
    let mut tx = store::begin_write(pool).await?;
    store::set_passwords(&mut tx, user.id, &h1, &h2).await?;
    store::delete_user_sessions(&mut tx, user.id).await?;
    accounts::audit(&mut tx, &format!("user:{}", user.id), "password.first_set", "", client).await?;
    tx.commit().await?;
    Ok(())
}

/// G-10: password change (current + new twice), or second-password change.
pub async fn change(
    pool: &Pool, seal: &crate::sealed::SealKey,
    hasher: &Hasher,
    policy: &PasswordPolicy,
    user: &store::User,
    client: Client<'_>,
    second_password: bool,
    current: &str,
    new: (&str, &str),
) -> FormResult<()> {
    let n = if second_password { NewPasswords { second: Some(new), ..Default::default() } } else { NewPasswords { password: Some(new), ..Default::default() } };
    let (field, current_field) = if second_password { ("second_password", "current_second_password") } else { ("password", "current_password") };
    let (this_hash, other_hash) = if second_password {
        (user.second_password_hash.clone(), Some(user.password_hash.clone()))
    } else {
        (Some(user.password_hash.clone()), user.second_password_hash.clone())
    };
    let errors = check_new(policy, &n, &[(current, Rule::SameAsOld)]);
    if !errors.is_empty() {
        return Err(Form::Fields(errors));
    }
    let checked = hasher.verify_all(vec![(current.to_string(), this_hash), (new.0.to_string(), other_hash)]).await?;
    if !checked[0].ok {
        return Err(Form::Fields(if second_password {
            wrong_current(current_field, "現在の第2パスワード", "current second password")
        } else {
            wrong_current(current_field, "現在のパスワード", "current password")
        }));
    }
    if checked[1].ok {
        let mut e = FieldErrors::new();
        e.insert(field.into(), Rule::SameAsOtherPassword.message());
        return Err(Form::Fields(e));
    }
    let h = hasher.hash(new.0).await?;
    let mut tx = store::begin_write(pool).await?;
    if second_password {
        store::set_second_password_hash(&mut tx, user.id, &h).await?;
    } else {
        store::set_password_hash(&mut tx, user.id, &h).await?;
    }
    store::delete_user_sessions(&mut tx, user.id).await?;
    let nm = names(&mut tx, user.id).await?;
    let (ja, en, lang) = recipient(user, &nm);
    mail::password_changed_notice(&Recipient { name_ja: &ja, name_en: &en, language: &lang }).enqueue(&mut tx, seal, &user.email).await?;
    let action = if second_password { "second_password.change" } else { "password.change" };
    accounts::audit(&mut tx, &format!("user:{}", user.id), action, "", client).await?;
    tx.commit().await?;
    Ok(())
}

/// G-11 / S-3: mails a reset link if the account exists; says nothing either way.
/// The link and its mail are written in the background: the answer comes as
/// fast for an address with an account as for one without (no enumeration
/// by timing); `wake` nudges the mail worker once it is queued.
pub async fn request_reset(
    pool: &Pool,
    seal: &crate::sealed::SealKey,
    public_url: &str,
    ttl_s: i64,
    user: Option<store::User>,
    second_only: bool,
    wake: std::sync::Arc<tokio::sync::Notify>,
    hold: Option<std::path::PathBuf>,
) -> AppResult<()> {
    let Some(u) = user.filter(|u| u.status == "active") else { return Ok(()) };
    let (pool, seal, public_url) = (pool.clone(), seal.clone(), public_url.to_string());
    tokio::spawn(async move {
        crate::failpoint::hold_async(hold.as_deref()).await;
        match write_reset(&pool, &seal, &public_url, ttl_s, &u, second_only).await {
            Ok(()) => wake.notify_one(),
            Err(e) => tracing::error!(error = %e, user_id = u.id, "reset link not written"),
        }
    });
    Ok(())
}

async fn write_reset(pool: &Pool, seal: &crate::sealed::SealKey, public_url: &str, ttl_s: i64, u: &store::User, second_only: bool) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let purpose = if second_only { "second_password_reset" } else { "password_reset" };
    let (token, until) = accounts::issue_token(&mut tx, purpose, &u.email, Some(u.id), "", ttl_s).await?;
    let path = if second_only { "/student/second-password/reset" } else { "/password/reset" };
    let nm = names(&mut tx, u.id).await?;
    let (ja, en, lang) = recipient(u, &nm);
    mail::reset_link(&Recipient { name_ja: &ja, name_en: &en, language: &lang }, second_only, &format!("{public_url}{path}?t={token}"), &time::jst_text(until))
        .enqueue(&mut tx, seal, &u.email)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// G-11: a reset link sets a new password and second password (not the old password).
pub async fn reset(
    pool: &Pool, seal: &crate::sealed::SealKey,
    hasher: &Hasher,
    policy: &PasswordPolicy,
    client: Client<'_>,
    token: &str,
    n: &NewPasswords<'_>,
) -> FormResult<()> {
    let mut c = pool.acquire().await?;
    let t = accounts::peek_token(&mut c, "password_reset", token).await?;
    let user = store::user(&mut c, t.user_id.unwrap_or(0)).await?;
    drop(c);
    let errors = check_new(policy, n, &[]);
    if !errors.is_empty() {
        return Err(Form::Fields(errors));
    }
    let (Some((pw, _)), Some((second, _))) = (n.password, n.second) else { return Err(Form::Error(AppError::PageNotFound)) };
    let old = hasher.verify_all(vec![(pw.to_string(), Some(user.password_hash.clone()))]).await?;
    if old[0].ok {
        let mut e = FieldErrors::new();
        e.insert("password".into(), Rule::SameAsOld.message());
        return Err(Form::Fields(e));
    }
    let (h1, h2) = (hasher.hash(pw).await?, hasher.hash(second).await?);
    let mut tx = store::begin_write(pool).await?;
    // used here, in the same transaction as the change: of two tabs one wins
    accounts::consume_token(&mut tx, "password_reset", token).await?;
    store::set_passwords(&mut tx, user.id, &h1, &h2).await?;
    store::delete_user_sessions(&mut tx, user.id).await?;
    let nm = names(&mut tx, user.id).await?;
    let (ja, en, lang) = recipient(&user, &nm);
    mail::password_changed_notice(&Recipient { name_ja: &ja, name_en: &en, language: &lang }).enqueue(&mut tx, seal, &user.email).await?;
    accounts::audit(&mut tx, &format!("user:{}", user.id), "password.reset", "", client).await?;
    tx.commit().await?;
    Ok(())
}

/// G-8 / S-3: re-authenticated, mails a link to the NEW address.
pub async fn request_email_change(
    pool: &Pool, seal: &crate::sealed::SealKey,
    hasher: &Hasher,
    public_url: &str,
    ttl_s: i64,
    user: &store::User,
    current_password: Option<&str>,
    new_email: &str,
) -> FormResult<()> {
    if let Some(pw) = current_password {
        // students re-authenticate with the second password (the university checks the other)
        let (hash, ja, en) = if user.kind == "student" {
            (user.second_password_hash.clone(), "現在の第2パスワード", "current second password")
        } else {
            (Some(user.password_hash.clone()), "現在のパスワード", "current password")
        };
        let ok = hasher.verify_all(vec![(pw.to_string(), hash)]).await?;
        if !ok[0].ok {
            return Err(Form::Fields(wrong_current("current_password", ja, en)));
        }
    }
    let new_email = new_email.trim().to_lowercase();
    if new_email == user.email {
        let mut e = FieldErrors::new();
        e.insert("email".into(), "現在と同じメールアドレスです。 / This is your current address.".into());
        return Err(Form::Fields(e));
    }
    let mut tx = store::begin_write(pool).await?;
    let nm = names(&mut tx, user.id).await?;
    let (ja, en, lang) = recipient(user, &nm);
    let r = Recipient { name_ja: &ja, name_en: &en, language: &lang };
    if let Some(owner) = store::user_by_email(&mut tx, &new_email).await? {
        // taken: the new address's owner hears of it, addressed as themselves and
        // told nothing about who asked; the page says the same as always
        let on = names(&mut tx, owner.id).await?;
        let to = Recipient { name_ja: &on.0, name_en: &on.1, language: &owner.language };
        mail::already_registered(&to, &format!("{public_url}/login"), &format!("{public_url}/password/forgot")).enqueue(&mut tx, seal, &new_email).await?;
    } else {
        let (token, until) = accounts::issue_token(&mut tx, "email_change", &new_email, Some(user.id), &new_email, ttl_s).await?;
        mail::email_change_link(&r, &format!("{public_url}/account/email/confirm?t={token}"), &time::jst_text(until))
            .enqueue(&mut tx, seal, &new_email)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// G-8: the link from the new address's mailbox makes the change; the old address hears of it.
pub async fn confirm_email_change(pool: &Pool, seal: &crate::sealed::SealKey, client: Client<'_>, token: &str) -> AppResult<String> {
    let mut tx = store::begin_write(pool).await?;
    let t = accounts::consume_token(&mut tx, "email_change", token).await?;
    let user = store::user(&mut tx, t.user_id.unwrap_or(0)).await?;
    if store::user_by_email(&mut tx, &t.subject).await?.is_some() {
        return Err(AppError::Page(crate::messages::LINK_INVALID.into()));
    }
    store::set_user_email(&mut tx, user.id, &t.subject).await?;
    // whoever was logged in as this account logs in again, with the new address
    store::delete_user_sessions(&mut tx, user.id).await?;
    let nm = names(&mut tx, user.id).await?;
    let (ja, en, lang) = recipient(&user, &nm);
    mail::email_changed_notice(&Recipient { name_ja: &ja, name_en: &en, language: &lang }, &accounts::mask_email(&t.subject))
        .enqueue(&mut tx, seal, &user.email)
        .await?;
    accounts::audit(&mut tx, &format!("user:{}", user.id), "email.change", "", client).await?;
    tx.commit().await?;
    Ok(t.subject)
}

/// G-6: mails the link to the form for a further enrolment.
pub async fn request_add_student_id(pool: &Pool, seal: &crate::sealed::SealKey, public_url: &str, ttl_s: i64, user: &store::User) -> AppResult<()> {
    let mut tx = store::begin_write(pool).await?;
    let (token, until) = accounts::issue_token(&mut tx, "add_student_id", &user.email, Some(user.id), "", ttl_s).await?;
    let nm = names(&mut tx, user.id).await?;
    let (ja, en, lang) = recipient(user, &nm);
    mail::add_student_id_link(
        &Recipient { name_ja: &ja, name_en: &en, language: &lang },
        &format!("{public_url}/register/open?purpose=add_student_id&t={token}"),
        &time::jst_text(until),
    )
    .enqueue(&mut tx, seal, &user.email)
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- enrolled students (S-2, S-3)

/// S-2: after the first login, a short-lived key lets the browser register an address.
pub async fn start_student_onboarding(pool: &Pool, university: i64, entry: &DirectoryEntry) -> AppResult<String> {
    let mut tx = store::begin_write(pool).await?;
    let (token, _) = accounts::issue_token(&mut tx, "student_onboard", "", None, &onboarding_subject(university, &entry.user_id), 30 * 60).await?;
    tx.commit().await?;
    Ok(token)
}

/// The student a first login's keys and link are for: "university:user ID".
fn onboarding_subject(university: i64, uid: &str) -> String {
    format!("{university}:{uid}")
}

/// (university, user ID) of an onboarding key's subject; a key from before
/// universities had their own directories is the first university's.
fn onboarding_student(subject: &str) -> (i64, String) {
    let uid = |s: &str| crate::accounts::directory::normalise_uid(s);
    match subject.split_once(':').and_then(|(u, rest)| u.parse::<i64>().ok().map(|u| (u, rest))) {
        Some((u, rest)) => (u, uid(rest)),
        None => (crate::accounts::directory::FIRST_UNIVERSITY, uid(subject)),
    }
}

/// S-2: the e-mail address typed twice gets the one-time URL.
pub async fn request_student_email(pool: &Pool, seal: &crate::sealed::SealKey, public_url: &str, ttl_s: i64, onboarding: &str, email: &str) -> AppResult<()> {
    let email = email.trim().to_lowercase();
    let mut tx = store::begin_write(pool).await?;
    let t = accounts::peek_token(&mut tx, "student_onboard", onboarding).await?;
    if store::user_by_email(&mut tx, &email).await?.is_some() {
        mail::already_registered(&mail::APPLICANT, &format!("{public_url}/student/login"), &format!("{public_url}/student/second-password/forgot"))
            .enqueue(&mut tx, seal, &email)
            .await?;
    } else {
        let (token, until) = accounts::issue_token(&mut tx, "student_email", &email, None, &t.subject, ttl_s).await?;
        mail::student_email_link(&mail::APPLICANT, &format!("{public_url}/student/email/confirm?t={token}"), &time::jst_text(until))
            .enqueue(&mut tx, seal, &email)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// S-2 (manual 001, 2.1 steps 7-8): the link completes the address: the
/// account is made for the directory's user with this address and no second
/// password yet; the next login (second password empty) sets it. Returns the
/// user id.
pub async fn confirm_student_email(pool: &Pool, client: Client<'_>, token: &str) -> AppResult<i64> {
    let mut tx = store::begin_write(pool).await?;
    let t = accounts::consume_token(&mut tx, "student_email", token).await?;
    let (university, directory_uid) = onboarding_student(&t.subject);
    if directory_uid.is_empty()
        || store::user_by_email(&mut tx, &t.email).await?.is_some()
        || store::user_by_directory_uid(&mut tx, university, &directory_uid).await?.is_some()
    {
        return Err(AppError::Page(crate::messages::LINK_INVALID.into()));
    }
    let uid = store::insert_user(
        &mut tx,
        &store::NewUser {
            email: &t.email,
            kind: "student",
            // the university's directory checks the password; nothing here matches it
            password_hash: "!directory",
            second_password_hash: None,
            must_set_password: false,
            initial_password_expires_at: None,
            directory: Some((university, &directory_uid)),
            personal_sealed: None,
            language: "ja",
            now: time::now(),
        },
    )
    .await?;
    accounts::audit(&mut tx, &format!("user:{uid}"), "student.email_registered", "", client).await?;
    tx.commit().await?;
    Ok(uid)
}

/// How long the key of the second-password setting lives (it is set at once).
pub const SECOND_SETUP_TTL_S: i64 = 30 * 60;

/// S-2 (manual 001, 2.2): the login with the second password left empty once
/// the address is registered. The directory's data becomes the student record
/// and the roster's campus card is linked (both once, at this first login);
/// a short-lived key then opens the second-password setting.
pub async fn start_second_setup(pool: &Pool, client: Client<'_>, user_id: i64, entry: &DirectoryEntry) -> AppResult<String> {
    let mut tx = store::begin_write(pool).await?;
    let user = store::user(&mut tx, user_id).await?;
    if let (true, Some(university)) = (store::student_records(&mut tx, user_id).await?.is_empty(), user.directory_university_id) {
        insert_directory_record(&mut tx, user_id, university, entry).await?;
    }
    link_roster_card(&mut tx, user_id, entry, client).await?;
    let (token, _) = accounts::issue_token(&mut tx, "student_second_setup", &user.email, Some(user_id), "", SECOND_SETUP_TTL_S).await?;
    tx.commit().await?;
    Ok(token)
}

/// The student record of an enrolled student, from their university's directory's entry.
async fn insert_directory_record(c: &mut store::Conn, user_id: i64, university_id: i64, entry: &DirectoryEntry) -> AppResult<()> {
    let Some((faculty_id, department_id)) = store::department_by_codes(c, university_id, &entry.faculty_code, &entry.department_code).await? else {
        tracing::warn!(university = university_id, faculty = %entry.faculty_code, department = %entry.department_code, "student's faculty/department codes are not in the university's catalogue");
        return Ok(());
    };
    store::insert_student_record(
        c,
        &store::NewStudentRecord {
            user_id,
            university_id,
            faculty_id,
            department_id,
            student_no: &entry.student_no,
            name_kanji: &entry.name_kanji,
            name_kana: &entry.name_kana,
            name_roman: &entry.name_roman,
            birth_date: "",
            leaving_type: "enrolled",
            graduation_date: None,
        },
    )
    .await?;
    Ok(())
}

/// The label a campus card from the roster gets on the cards page.
pub const ROSTER_CARD_LABEL: &str = "学生証 / Student card";

/// The campus card the directory names for this student is linked to the
/// account. A card already this account's stays; a card another account
/// holds is left alone (that account keeps it) and the audit log says so.
async fn link_roster_card(c: &mut store::Conn, user_id: i64, entry: &DirectoryEntry, client: Client<'_>) -> AppResult<()> {
    let Some(card) = entry.card_uid.as_deref().and_then(shomei_shared::api::normalize_card_uid) else { return Ok(()) };
    match store::card(c, &card).await? {
        Some(k) if k.user_id == user_id => {}
        Some(k) => {
            tracing::warn!(card = %shomei_shared::api::card_id_tail(&card), user_id, holder = k.user_id, "the roster's campus card is linked to another account: left as it is");
            accounts::audit(c, &format!("user:{user_id}"), "card.roster_taken", &format!("card:{card}"), client).await?;
        }
        None => match store::link_card(c, &card, user_id, ROSTER_CARD_LABEL, time::now()).await {
            Ok(()) => accounts::audit(c, &format!("user:{user_id}"), "card.link_roster", &format!("card:{card}"), client).await?,
            // linked by someone else at this very moment: theirs it stays (the login goes on)
            Err(sqlx::Error::RowNotFound) => {
                tracing::warn!(card = %shomei_shared::api::card_id_tail(&card), user_id, "the roster's campus card was linked to another account meanwhile: left as it is");
                accounts::audit(c, &format!("user:{user_id}"), "card.roster_taken", &format!("card:{card}"), client).await?;
            }
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}

/// S-2 / S-3: a new second password that keeps the rules and is not the
/// university password. The directory itself says whether it is (a check
/// with it as the password): the university password is never typed again
/// nor kept. (Whoever holds the form's key either logged in with the
/// university password already, or uses up a one-time link on each try.)
async fn check_student_second(directories: &Directories, policy: &PasswordPolicy, user: &store::User, second: (&str, &str)) -> FormResult<()> {
    let mut errors = check_new(policy, &NewPasswords { second: Some(second), ..Default::default() }, &[]);
    if !errors.is_empty() {
        return Err(Form::Fields(errors));
    }
    let university = user.directory_university_id.unwrap_or(crate::accounts::directory::FIRST_UNIVERSITY);
    let verified = match directories.of(university).await {
        Ok(directory) => directory.verify(user.directory_uid.as_deref().unwrap_or_default(), second.0).await,
        Err(e) => Err(e),
    };
    match verified {
        Ok(None) => Ok(()),
        Ok(Some(_)) => {
            errors.insert("second_password".into(), Rule::SameAsUniversityPassword.message());
            Err(Form::Fields(errors))
        }
        Err(e) => Err(Form::Error(accounts::directory_failed(e))),
    }
}

/// S-2 (manual 001, 2.2 steps 4-6): the second password, typed twice, under
/// the key the login gave; the key is used once.
pub async fn set_first_student_second(
    pool: &Pool,
    hasher: &Hasher,
    directories: &Directories,
    policy: &PasswordPolicy,
    client: Client<'_>,
    key: &str,
    second: (&str, &str),
) -> FormResult<()> {
    let mut c = pool.acquire().await?;
    let t = accounts::peek_token(&mut c, "student_second_setup", key).await?;
    let user = store::user(&mut c, t.user_id.unwrap_or(0)).await?;
    drop(c);
    if user.second_password_hash.is_some() || user.kind != "student" {
        return Err(Form::Error(AppError::Page(crate::messages::LINK_INVALID.into())));
    }
    check_student_second(directories, policy, &user, second).await?;
    let h = hasher.hash(second.0).await?;
    let mut tx = store::begin_write(pool).await?;
    // used here, in the same transaction as the change: of two tabs one wins
    accounts::consume_token(&mut tx, "student_second_setup", key).await?;
    store::set_second_password_hash(&mut tx, user.id, &h).await?;
    store::delete_user_sessions(&mut tx, user.id).await?;
    accounts::audit(&mut tx, &format!("user:{}", user.id), "second_password.first_set", "", client).await?;
    tx.commit().await?;
    Ok(())
}

/// S-3 (manual 001, 2.4 (c)): forgotten second password: the link from the
/// registered address, then the new second password twice (rules of G-5, not
/// the university password); the old one stops working, the link is used once.
pub async fn reset_student_second(
    pool: &Pool,
    hasher: &Hasher,
    directories: &Directories,
    policy: &PasswordPolicy,
    client: Client<'_>,
    token: &str,
    second: (&str, &str),
) -> FormResult<()> {
    let mut c = pool.acquire().await?;
    let t = accounts::peek_token(&mut c, "second_password_reset", token).await?;
    let user = store::user(&mut c, t.user_id.unwrap_or(0)).await?;
    drop(c);
    check_student_second(directories, policy, &user, second).await?;
    let h = hasher.hash(second.0).await?;
    let mut tx = store::begin_write(pool).await?;
    accounts::consume_token(&mut tx, "second_password_reset", token).await?;
    store::set_second_password_hash(&mut tx, user.id, &h).await?;
    store::delete_user_sessions(&mut tx, user.id).await?;
    accounts::audit(&mut tx, &format!("user:{}", user.id), "second_password.reset", "", client).await?;
    tx.commit().await?;
    Ok(())
}

/// A staff member's password change (forced at the first login with an
/// initial password): the current one, the policy, not the same again.
pub async fn change_staff_password(
    pool: &Pool,
    hasher: &Hasher,
    policy: &PasswordPolicy,
    staff: &store::Staff,
    client: Client<'_>,
    current: &str,
    new: (&str, &str),
) -> FormResult<()> {
    let errors = check_new(policy, &NewPasswords { password: Some(new), ..Default::default() }, &[(current, Rule::SameAsOld)]);
    if !errors.is_empty() {
        return Err(Form::Fields(errors));
    }
    let ok = hasher.verify_all(vec![(current.to_string(), Some(staff.password_hash.clone()))]).await?;
    if !ok[0].ok {
        return Err(Form::Fields(wrong_current("current_password", "現在のパスワード", "current password")));
    }
    let h = hasher.hash(new.0).await?;
    let mut tx = store::begin_write(pool).await?;
    store::set_staff_own_password(&mut tx, staff.id, &h).await?;
    store::delete_staff_sessions(&mut tx, staff.id).await?;
    accounts::audit(&mut tx, &format!("staff:{}", staff.login), "password.change", "", client).await?;
    tx.commit().await?;
    Ok(())
}
