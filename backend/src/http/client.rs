//! Who the client is. Behind a reverse proxy every TCP connection comes from
//! the proxy, so the per-address throttles and the audit log would see one
//! address for the whole campus. Only from a peer listed in
//! `http.trusted_proxies` is the client taken from `Forwarded` (RFC 7239) or
//! `X-Forwarded-For` (`http.forwarded_header` says which one the proxy writes:
//! the other one is whatever the client sent, and is ignored): the right-most
//! entry that is not itself a trusted proxy. Anyone else's headers are
//! ignored, so a client cannot pick its own bucket.

use crate::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};

pub use shomei_shared::net::{canonical, Cidr};

/// The trusted proxies, parsed once, and the header they write.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
    /// `Forwarded` (RFC 7239) rather than `X-Forwarded-For`.
    rfc7239: bool,
}

impl TrustedProxies {
    /// `header` is `x-forwarded-for` (nginx's and most balancers' default) or `forwarded`.
    pub fn from_config(list: &[String], header: &str) -> TrustedProxies {
        TrustedProxies { blocks: list.iter().filter_map(|p| Cidr::parse(p).ok()).collect(), rfc7239: header.eq_ignore_ascii_case("forwarded") }
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|c| c.contains(ip))
    }

    /// The client behind `peer`: `peer` itself unless it is trusted; then the
    /// right-most forwarded hop that is not trusted (or the left-most one if
    /// every hop is a trusted proxy).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers, self.rfc7239);
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = hop else {
                // "unknown" or an obfuscated name: the last proxy that spoke is all we know
                return client;
            };
            client = canonical(*ip);
            if !self.trusts(client) {
                return client;
            }
        }
        client
    }
}

/// The hops the proxies recorded, left (first) to right (nearest), from the
/// header the proxy writes. `None` for a hop that names no address.
fn forwarded_hops(headers: &HeaderMap, rfc7239: bool) -> Vec<Option<IpAddr>> {
    if rfc7239 {
        return headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| parse_node(v.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn parse_node(v: &str) -> Option<IpAddr> {
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.parse::<IpAddr>().ok().or_else(|| v.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The TCP peer as accepted, before [`resolve`] replaced the client address.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Middleware: replaces the connection's address by the client's, so every
/// handler's `ConnectInfo` (throttles, audit) sees the real client.
pub async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        req.extensions_mut().insert(Peer(peer));
        if !state.trusted_proxies.is_empty() {
            let client = state.trusted_proxies.client(peer.ip(), req.headers());
            req.extensions_mut().insert(ConnectInfo(SocketAddr::new(client, 0)));
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap_or_else(|_| axum::http::HeaderValue::from_static("")));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn cidrs_match_their_block_only() {
        let c = Cidr::parse("10.1.0.0/16").expect("cidr");
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")));
        let one = Cidr::parse("127.0.0.1").expect("one");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("2001:db8::/33").expect("v6");
        assert!(v6.contains(ip("2001:db8:7fff::1")) && !v6.contains(ip("2001:db8:8000::1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err() && Cidr::parse("proxy.example").is_err());
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop_from_a_trusted_peer_only() {
        let t = TrustedProxies::from_config(&["127.0.0.1".into(), "10.0.0.0/8".into()], "x-forwarded-for");
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.0.0.5")]);
        // the attacker wrote 1.2.3.4; the proxies appended the real client and themselves
        assert_eq!(t.client(ip("127.0.0.1"), &spoofed), ip("198.51.100.7"));
        // from an untrusted peer the headers mean nothing
        assert_eq!(t.client(ip("203.0.113.9"), &spoofed), ip("203.0.113.9"));
        // the header the proxy does not write is the client's own: ignored
        let both = headers(&[("forwarded", "for=192.0.2.60"), ("x-forwarded-for", "192.0.2.99")]);
        assert_eq!(t.client(ip("127.0.0.1"), &both), ip("192.0.2.99"));
        assert_eq!(t.client(ip("127.0.0.1"), &headers(&[("forwarded", "for=192.0.2.60")])), ip("127.0.0.1"));
        let rfc = TrustedProxies::from_config(&["10.0.0.0/8".into()], "forwarded");
        let fwd = headers(&[("forwarded", "for=192.0.2.60;proto=https, for=\"[2001:db8::1]:4711\";by=10.0.0.1"), ("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(rfc.client(ip("10.0.0.1"), &fwd), ip("2001:db8::1"));
        assert_eq!(t.client(ip("127.0.0.1"), &HeaderMap::new()), ip("127.0.0.1"));
        // every hop a trusted proxy: the left-most
        assert_eq!(t.client(ip("127.0.0.1"), &headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.5")])), ip("10.9.9.9"));
        // no trusted proxies: the peer, whatever it sends
        assert_eq!(TrustedProxies::default().client(ip("127.0.0.1"), &spoofed), ip("127.0.0.1"));
    }
}
