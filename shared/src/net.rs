//! Where a URL points: a peer on this machine may be spoken to in plain
//! text; every other link runs TLS.

/// A URL whose host is this machine (127.0.0.0/8, ::1, localhost).
pub fn url_is_loopback(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::url_is_loopback;

    #[test]
    fn only_this_machine_is_loopback() {
        for yes in ["http://127.0.0.1:8080", "https://localhost/x", "ldap://[::1]:389", "smtp://127.8.0.1", "http://user@localhost:1/"] {
            assert!(url_is_loopback(yes), "{yes}");
        }
        for no in ["http://192.0.2.1:8080", "https://certs.example.ac.jp", "ldap://localhost.example.jp", "http://[2001:db8::1]/", "http://127.0.0.1.nip.io/"] {
            assert!(!url_is_loopback(no), "{no}");
        }
    }
}
