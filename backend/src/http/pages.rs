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
            ("order.html", include_str!("../../templates/order.html")),
            ("error.html", include_str!("../../templates/error.html")),
            ("admin_base.html", include_str!("../../templates/admin_base.html")),
            ("admin_login.html", include_str!("../../templates/admin_login.html")),
            ("admin_stations.html", include_str!("../../templates/admin_stations.html")),
            ("admin_orders.html", include_str!("../../templates/admin_orders.html")),
            ("admin_outbox.html", include_str!("../../templates/admin_outbox.html")),
        ] {
            if let Err(e) = env.add_template(name, src) {
                tracing::error!(template = name, error = %e, "template does not compile");
            }
        }
        env
    })
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

pub use crate::messages::order_status;
