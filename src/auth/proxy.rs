//! Which address a request comes from, as far as the guess limit is concerned.
//!
//! Behind a reverse proxy every request arrives from the proxy, so every guesser shares one
//! count and a stranger can keep the right token from that address waiting. A proxy can tell
//! us the real client in a header (`X-Forwarded-For`, `X-Real-IP`); anyone else can send that
//! header too, so it is believed only when it is asked for by name (`--trust-proxy-header`)
//! and only on connections from this machine (a loopback peer), where the proxy runs. A peer
//! elsewhere is always taken as it is.

use std::net::{IpAddr, SocketAddr};

/// Whom to believe about a client's address (default: the connection's peer, always).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyTrust {
    /// The header a local proxy puts the client's address in, lower case.
    header: Option<String>,
}

impl ProxyTrust {
    /// Believes `header` from loopback peers; `None` believes no header.
    pub fn header(header: Option<&str>) -> ProxyTrust {
        ProxyTrust {
            header: header.map(|h| h.trim().to_ascii_lowercase()),
        }
    }

    /// The trusted header's name (lower case), if any.
    pub fn header_name(&self) -> Option<&str> {
        self.header.as_deref()
    }

    /// The client's address: the last address in the trusted header when `peer` is a
    /// loopback proxy that sent one (the proxy appends the address it saw, so the last is
    /// the one it vouches for; earlier ones are whatever the client claimed); otherwise the
    /// peer.
    pub fn client(&self, peer: Option<IpAddr>, header_value: Option<&str>) -> Option<IpAddr> {
        let from_proxy = self.header.is_some() && peer.is_some_and(|p| p.is_loopback());
        if !from_proxy {
            return peer;
        }
        header_value
            .and_then(|v| v.rsplit(',').next())
            .and_then(parse_address)
            .or(peer)
    }
}

/// `192.0.2.7`, `192.0.2.7:5123`, `2001:db8::1`, `[2001:db8::1]:5123`, optionally quoted.
fn parse_address(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_header_is_believed_only_when_named_and_only_from_loopback() {
        let none = ProxyTrust::default();
        assert_eq!(
            none.client(ip("127.0.0.1"), Some("192.0.2.7")),
            ip("127.0.0.1")
        );

        let xff = ProxyTrust::header(Some("X-Forwarded-For"));
        assert_eq!(xff.header_name(), Some("x-forwarded-for"));
        // The proxy appends what it saw: the last address counts, not the client's claims.
        assert_eq!(
            xff.client(ip("127.0.0.1"), Some("10.0.0.1, 198.51.100.2,192.0.2.7")),
            ip("192.0.2.7")
        );
        assert_eq!(
            xff.client(ip("::1"), Some("[2001:db8::5]:443")),
            ip("2001:db8::5")
        );
        assert_eq!(
            xff.client(ip("127.0.0.1"), Some("192.0.2.7:5123")),
            ip("192.0.2.7")
        );
        // A stranger cannot pick its address by sending the header itself.
        assert_eq!(
            xff.client(ip("203.0.113.9"), Some("192.0.2.7")),
            ip("203.0.113.9")
        );
        // No header, or nonsense in it: the peer.
        assert_eq!(xff.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
        assert_eq!(
            xff.client(ip("127.0.0.1"), Some("unknown")),
            ip("127.0.0.1")
        );
        assert_eq!(xff.client(None, Some("192.0.2.7")), None);
    }
}
