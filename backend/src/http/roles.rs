//! Who may use each admin route: one table, checked by the staff extractor
//! ([`super::web::CurrentStaff`]) on every request before the handler runs.
//! A staff route missing from it is refused to everyone, and the e2e test
//! `every_admin_route_checks_the_role` fails until it is added.

use axum::http::Method;

/// The roles a staff member can have (the `staff.role` column allows these).
pub const STAFF_ROLES: &[&str] = &["registrar", "operator", "admin"];

/// What a route asks of whoever calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// No staff session: the login form.
    Public,
    /// Any logged-in staff member: the dashboard, logout, their own password.
    AnyStaff,
    /// These roles; an administrator may use every university route.
    Roles(&'static [&'static str]),
    /// Platform operators only (staff.platform): the universities, the platform's mail.
    Platform,
}

impl Rule {
    /// Whether a staff member with `role` (a platform operator or not) may use the route.
    pub fn allows(self, role: &str, platform: bool) -> bool {
        match self {
            Rule::Public | Rule::AnyStaff => true,
            Rule::Roles(roles) => role == "admin" || roles.contains(&role),
            Rule::Platform => platform,
        }
    }
}

const REGISTRAR: Rule = Rule::Roles(&["registrar"]);
const OPERATOR: Rule = Rule::Roles(&["operator"]);
const ADMIN: Rule = Rule::Roles(&[]);

/// Every admin route of the router: (method, path as the router spells it, rule).
pub const ADMIN_ROUTES: &[(&str, &str, Rule)] = &[
    ("GET", "/admin", Rule::AnyStaff),
    ("GET", "/admin/login", Rule::Public),
    ("POST", "/admin/login", Rule::Public),
    ("POST", "/admin/logout", Rule::AnyStaff),
    ("GET", "/admin/password", Rule::AnyStaff),
    ("POST", "/admin/password", Rule::AnyStaff),
    // stations (operators)
    ("GET", "/admin/stations", OPERATOR),
    ("GET", "/admin/stations.json", OPERATOR),
    ("GET", "/admin/stations/{id}", OPERATOR),
    ("POST", "/admin/stations/enrolment-codes", OPERATOR),
    ("POST", "/admin/stations/alert-emails", OPERATOR),
    ("POST", "/admin/stations/{id}/revoke", OPERATOR),
    ("POST", "/admin/stations/{id}/service", OPERATOR),
    ("POST", "/admin/stations/{id}/test-page", OPERATOR),
    // orders: the list for both, everything else for the registrar
    ("GET", "/admin/orders", Rule::Roles(&["registrar", "operator"])),
    ("GET", "/admin/orders/{id}", REGISTRAR),
    ("GET", "/admin/orders/{id}/pdf", REGISTRAR),
    ("POST", "/admin/orders/{id}/shipped", REGISTRAR),
    ("POST", "/admin/orders/{id}/refund", REGISTRAR),
    ("POST", "/admin/orders/{id}/paid-back", REGISTRAR),
    ("POST", "/admin/orders/{id}/release", REGISTRAR),
    ("POST", "/admin/certificates/{id}/revoke", REGISTRAR),
    ("GET", "/admin/reports", REGISTRAR),
    ("GET", "/admin/reports.csv", REGISTRAR),
    ("GET", "/admin/mail", REGISTRAR),
    // the university's data (registrar)
    ("GET", "/admin/academic", REGISTRAR),
    ("POST", "/admin/academic", REGISTRAR),
    ("GET", "/admin/school-register", REGISTRAR),
    ("POST", "/admin/school-register", REGISTRAR),
    ("GET", "/admin/graduation", REGISTRAR),
    ("POST", "/admin/graduation", REGISTRAR),
    ("GET", "/admin/graduation/{id}", REGISTRAR),
    ("GET", "/admin/graduation/{id}/progress", REGISTRAR),
    ("GET", "/admin/catalogue", REGISTRAR),
    ("POST", "/admin/catalogue", REGISTRAR),
    ("GET", "/admin/catalogue/seal", REGISTRAR),
    ("POST", "/admin/catalogue/seal", REGISTRAR),
    ("POST", "/admin/catalogue/offline-policy", REGISTRAR),
    ("POST", "/admin/catalogue/fees", REGISTRAR),
    ("POST", "/admin/catalogue/office", REGISTRAR),
    ("POST", "/admin/catalogue/faculties", REGISTRAR),
    ("GET", "/admin/service", REGISTRAR),
    ("POST", "/admin/service", REGISTRAR),
    ("POST", "/admin/service/{id}/delete", REGISTRAR),
    // accounts: the review queue and the roster (registrar)
    ("GET", "/admin/registrations", REGISTRAR),
    ("GET", "/admin/registrations/{id}", REGISTRAR),
    ("GET", "/admin/registrations/{id}/images/{image_id}", REGISTRAR),
    ("POST", "/admin/registrations/{id}/decide", REGISTRAR),
    ("GET", "/admin/roster", REGISTRAR),
    ("POST", "/admin/roster", REGISTRAR),
    // administrators only: their university's staff accounts and audit log
    ("GET", "/admin/staff", ADMIN),
    ("POST", "/admin/staff", ADMIN),
    ("POST", "/admin/staff/{id}/totp", ADMIN),
    ("POST", "/admin/staff/{id}/password", ADMIN),
    ("POST", "/admin/staff/{id}/disable", ADMIN),
    ("GET", "/admin/audit", ADMIN),
    // platform operators: the universities, and the platform's mail outbox (every university's mail)
    ("GET", "/admin/universities", Rule::Platform),
    ("POST", "/admin/universities", Rule::Platform),
    ("GET", "/admin/universities/{id}/directory", Rule::Platform),
    ("POST", "/admin/universities/{id}/directory", Rule::Platform),
    ("GET", "/admin/outbox", Rule::Platform),
];

/// The rule of a route as the router matched it (HEAD is answered as GET);
/// `None` for a route missing from the table.
pub fn rule(method: &Method, matched_path: &str) -> Option<Rule> {
    let method = if *method == Method::HEAD { "GET" } else { method.as_str() };
    ADMIN_ROUTES.iter().find(|(m, p, _)| *m == method && *p == matched_path).map(|(_, _, r)| *r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_once_every_path_under_admin_and_admins_everywhere() {
        for (i, (m, p, r)) in ADMIN_ROUTES.iter().enumerate() {
            assert!(p.starts_with("/admin"), "{p}");
            assert!(["GET", "POST"].contains(m), "{m} {p}");
            assert!(!ADMIN_ROUTES[i + 1..].iter().any(|(m2, p2, _)| m2 == m && p2 == p), "{m} {p} twice");
            assert!(r.allows("admin", true), "{m} {p}");
            if let Rule::Roles(roles) = r {
                assert!(roles.iter().all(|role| STAFF_ROLES.contains(role)), "{m} {p}: {roles:?}");
            }
        }
        assert_eq!(rule(&Method::HEAD, "/admin/stations"), Some(OPERATOR));
        assert_eq!(rule(&Method::POST, "/admin/stations"), None);
        assert!(!REGISTRAR.allows("operator", false) && OPERATOR.allows("operator", false) && !ADMIN.allows("registrar", false));
        // a university's administrator is no platform operator; a platform operator of any role is
        assert!(!Rule::Platform.allows("admin", false) && Rule::Platform.allows("operator", true));
    }
}
