//! Server-rendered pages (minijinja templates compiled into the binary).

use minijinja::Environment;
use serde::Serialize;
use std::sync::OnceLock;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, src) in [
            ("base.html", include_str!("../../templates/base.html")),
            ("login.html", include_str!("../../templates/login.html")),
            ("portal.html", include_str!("../../templates/portal.html")),
            ("order_new.html", include_str!("../../templates/order_new.html")),
            ("order_confirm.html", include_str!("../../templates/order_confirm.html")),
            ("order.html", include_str!("../../templates/order.html")),
            ("shared.html", include_str!("../../templates/shared.html")),
            ("error.html", include_str!("../../templates/error.html")),
            ("macros.html", include_str!("../../templates/macros.html")),
            ("verify.html", include_str!("../../templates/verify.html")),
            ("cards.html", include_str!("../../templates/cards.html")),
            ("admin_mail.html", include_str!("../../templates/admin_mail.html")),
            ("admin_reports.html", include_str!("../../templates/admin_reports.html")),
            ("admin_academic.html", include_str!("../../templates/admin_academic.html")),
            ("admin_catalogue.html", include_str!("../../templates/admin_catalogue.html")),
            ("admin_order.html", include_str!("../../templates/admin_order.html")),
            ("admin_service.html", include_str!("../../templates/admin_service.html")),
            ("message.html", include_str!("../../templates/message.html")),
            ("register_email.html", include_str!("../../templates/register_email.html")),
            ("register_terms.html", include_str!("../../templates/register_terms.html")),
            ("register_form.html", include_str!("../../templates/register_form.html")),
            ("register_confirm.html", include_str!("../../templates/register_confirm.html")),
            ("password_form.html", include_str!("../../templates/password_form.html")),
            ("account.html", include_str!("../../templates/account.html")),
            ("account_personal.html", include_str!("../../templates/account_personal.html")),
            ("student_login.html", include_str!("../../templates/student_login.html")),
            ("email_form.html", include_str!("../../templates/email_form.html")),
            ("admin_registrations.html", include_str!("../../templates/admin_registrations.html")),
            ("admin_registration.html", include_str!("../../templates/admin_registration.html")),
            ("admin_staff.html", include_str!("../../templates/admin_staff.html")),
            ("admin_audit.html", include_str!("../../templates/admin_audit.html")),
            ("admin_universities.html", include_str!("../../templates/admin_universities.html")),
            ("admin_university_directory.html", include_str!("../../templates/admin_university_directory.html")),
            ("admin_roster.html", include_str!("../../templates/admin_roster.html")),
            ("admin_base.html", include_str!("../../templates/admin_base.html")),
            ("admin_dashboard.html", include_str!("../../templates/admin_dashboard.html")),
            ("admin_login.html", include_str!("../../templates/admin_login.html")),
            ("admin_stations.html", include_str!("../../templates/admin_stations.html")),
            ("admin_station.html", include_str!("../../templates/admin_station.html")),
            ("admin_school_register.html", include_str!("../../templates/admin_school_register.html")),
            ("admin_graduation.html", include_str!("../../templates/admin_graduation.html")),
            ("admin_graduation_run.html", include_str!("../../templates/admin_graduation_run.html")),
            ("admin_orders.html", include_str!("../../templates/admin_orders.html")),
            ("admin_outbox.html", include_str!("../../templates/admin_outbox.html")),
            ("refund_bank.html", include_str!("../../templates/refund_bank.html")),
            ("help.html", include_str!("../../templates/help.html")),
        ] {
            if let Err(e) = env.add_template(name, src) {
                tracing::error!(template = name, error = %e, "template does not compile");
            }
        }
        // the desk at the foot of every page (the configuration's, set when the router is built)
        // (a signed-in user's own university's office, when they belong to one: see `with_desk`)
        env.add_function("contact", || {
            let desk = FOOT.try_with(Clone::clone).ok().or_else(|| CONTACT.read().unwrap_or_else(|p| p.into_inner()).clone());
            minijinja::Value::from_serialize(desk)
        });
        env
    })
}

static CONTACT: std::sync::RwLock<Option<crate::config::ContactConfig>> = std::sync::RwLock::new(None);

tokio::task_local! {
    /// The desk the pages of one request name instead of the configuration's.
    static FOOT: crate::config::ContactConfig;
}

/// Runs a request with its pages naming `desk` at their foot.
pub async fn with_desk<F: std::future::Future>(desk: crate::config::ContactConfig, f: F) -> F::Output {
    FOOT.scope(desk, f).await
}

/// The desk of a university's office, the configuration's where it leaves a
/// field empty; None when the office names no desk.
pub fn desk_of(office: &crate::store::Office, default: &crate::config::ContactConfig) -> Option<crate::config::ContactConfig> {
    if office.desk_ja.trim().is_empty() && office.desk_en.trim().is_empty() {
        return None;
    }
    let or = |v: &str, d: &str| if v.trim().is_empty() { d.to_string() } else { v.trim().to_string() };
    Some(crate::config::ContactConfig {
        desk_ja: or(&office.desk_ja, &default.desk_ja),
        desk_en: or(&office.desk_en, &default.desk_en),
        hours_ja: or(&office.hours_ja, &default.hours_ja),
        hours_en: or(&office.hours_en, &default.hours_en),
        phone: or(&office.contact_phone, &default.phone),
        email: or(&office.contact_email, &default.email),
    })
}

/// The desk every page names from now on.
pub fn set_contact(contact: &crate::config::ContactConfig) {
    *CONTACT.write().unwrap_or_else(|p| p.into_inner()) = Some(contact.clone());
}

/// Renders a template; a template error is logged and shown as a plain error.
pub fn render<S: Serialize>(name: &str, ctx: S) -> String {
    match env().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(template = name, error = %e, "template failed");
            format!("<!doctype html><title>Error</title><p>{}</p>", crate::messages::SOMETHING_WRONG)
        }
    }
}

pub fn error_page(message: &str) -> String {
    render(
        "error.html",
        minijinja::context! { error => message },
    )
}

/// A page that says one thing: a title and paragraphs, both languages, and
/// perhaps a button onward.
pub fn message_page(title: (&str, &str), paragraphs: &[(&str, &str)], link: Option<(&str, &str)>) -> String {
    render(
        "message.html",
        minijinja::context! { title_ja => title.0, title_en => title.1,
                              paragraphs => paragraphs.iter().map(|(a, b)| [a, b]).collect::<Vec<_>>(),
                              link => link.map(|(a, b)| [a, b]) },
    )
}

pub use crate::messages::order_status;
