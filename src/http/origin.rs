//! Refuses state changes that a page on another origin makes a browser send (cross-site
//! request forgery), before any route sees them.
//!
//! `SameSite=Strict` on the session cookie is not enough: a page on another port of the same
//! host, or on a sibling subdomain, is the *same site*, so the browser sends the cookie along
//! with a form it auto-submits. So every `POST`, `PUT`, `PATCH` and `DELETE` is checked the way
//! browsers let a server tell (the algorithm of Go's `http.CrossOriginProtection`):
//!
//! 1. `Sec-Fetch-Site`, which every current browser sends and no page can set: only
//!    `same-origin` (our own pages) and `none` (the user's own doing) pass.
//! 2. Without it (older browsers), `Origin`: it must be this server's own origin, as the
//!    request's `Host` names it, or the `--public-url` (a reverse proxy may rewrite `Host`).
//! 3. Without either, the request did not come from a browser page (curl, a script with a
//!    bearer token): it passes. Such a client sends no cookie it was not given, and a bearer
//!    token is never added by a browser on its own, so there is nothing to forge.
//!
//! Meta's `POST /webhook` is exempt: it is signed, which is a stronger proof than any header.

use std::sync::Arc;

use warp::host::Authority;
use warp::http::Method;
use warp::path::FullPath;
use warp::{Filter, Rejection};

/// A state change refused as cross-origin; the recovery answers `403` with these words.
#[derive(Debug)]
pub struct CrossOrigin(pub String);

impl warp::reject::Reject for CrossOrigin {}

/// The origins this server answers state changes from, besides the one its `Host` names.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// The origin of `--public-url`, when set.
    public: Option<url::Origin>,
}

impl Origins {
    /// `public_url` is the `--public-url` setting (checked to be a URL at start-up).
    pub fn new(public_url: Option<&str>) -> Origins {
        Origins {
            public: public_url
                .and_then(|u| url::Url::parse(u).ok())
                .map(|u| u.origin())
                .filter(url::Origin::is_tuple),
        }
    }

    /// `Ok` when a request may change state; otherwise the words of the `403`.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        fetch_site: Option<&str>,
        origin: Option<&str>,
        host: Option<&Authority>,
    ) -> Result<(), String> {
        let changes_state = matches!(
            *method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        );
        let webhook = method == Method::POST && path.trim_end_matches('/') == "/webhook";
        if !changes_state || webhook {
            return Ok(());
        }
        if let Some(site) = fetch_site {
            return match site.trim().to_ascii_lowercase().as_str() {
                "same-origin" | "none" => Ok(()),
                other => Err(format!(
                    "cross-origin request refused: the browser says it came from a page on \
                     another origin (Sec-Fetch-Site: {other}); leadstream takes changes only \
                     from its own pages"
                )),
            };
        }
        let Some(origin) = origin else {
            return Ok(());
        };
        if self.is_own(origin, host) {
            return Ok(());
        }
        Err(format!(
            "cross-origin request refused: it came from a page on {:?}, not from leadstream's \
             own pages (set PUBLIC_URL if this is leadstream's public address)",
            crate::logging::escaped(origin).to_string()
        ))
    }

    fn is_own(&self, origin: &str, host: Option<&Authority>) -> bool {
        // `null` (a sandboxed frame, a data: page) and anything unparsable are nobody's own.
        let Some(origin) = url::Url::parse(origin).ok().map(|u| u.origin()) else {
            return false;
        };
        let url::Origin::Tuple(scheme, origin_host, origin_port) = &origin else {
            return false;
        };
        if self.public.as_ref() == Some(&origin) {
            return true;
        }
        // The scheme is not in `Host`; the port is, unless it is the scheme's default.
        host.is_some_and(|h| {
            let port = h.port_u16().or(match scheme.as_str() {
                "http" => Some(80),
                "https" => Some(443),
                _ => None,
            });
            let same_host = match origin_host {
                url::Host::Domain(d) => d.eq_ignore_ascii_case(h.host()),
                url::Host::Ipv4(ip) => ip.to_string() == h.host(),
                url::Host::Ipv6(ip) => format!("[{ip}]") == h.host(),
            };
            same_host && port == Some(*origin_port)
        })
    }
}

/// Passes a request on, or rejects a cross-origin state change with [`CrossOrigin`].
pub fn same_origin_changes(
    origins: Arc<Origins>,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("sec-fetch-site"))
        .and(warp::header::optional::<String>("origin"))
        // A Host that does not parse is no host (warp's own filter would turn it into a 400
        // for every request, reads included); only a state change from a browser needs one.
        .and(warp::host::optional().or(warp::any().map(|| None)).unify())
        .and_then(
            move |method: Method,
                  path: FullPath,
                  site: Option<String>,
                  origin: Option<String>,
                  host: Option<Authority>| {
                let verdict = origins.check(
                    &method,
                    path.as_str(),
                    site.as_deref(),
                    origin.as_deref(),
                    host.as_ref(),
                );
                async move { verdict.map_err(|why| warp::reject::custom(CrossOrigin(why))) }
            },
        )
        .untuple_one()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(o: &Origins, site: Option<&str>, origin: Option<&str>, host: &str) -> bool {
        let host: Authority = host.parse().unwrap();
        o.check(&Method::POST, "/api/leads/sync", site, origin, Some(&host))
            .is_ok()
    }

    #[test]
    fn sec_fetch_site_decides_when_present() {
        let o = Origins::default();
        assert!(check(&o, Some("same-origin"), None, "127.0.0.1:8080"));
        assert!(check(&o, Some("none"), None, "127.0.0.1:8080"));
        for site in ["same-site", "cross-site", "whatever"] {
            assert!(!check(&o, Some(site), None, "127.0.0.1:8080"), "{site}");
            // Even with an Origin that looks right: the browser's word wins.
            assert!(!check(
                &o,
                Some(site),
                Some("http://127.0.0.1:8080"),
                "127.0.0.1:8080"
            ));
        }
    }

    #[test]
    fn without_it_the_origin_must_be_our_own() {
        let o = Origins::default();
        assert!(check(
            &o,
            None,
            Some("http://127.0.0.1:8080"),
            "127.0.0.1:8080"
        ));
        assert!(check(
            &o,
            None,
            Some("http://leads.example.com"),
            "leads.example.com"
        ));
        assert!(check(
            &o,
            None,
            Some("https://leads.example.com"),
            "LEADS.example.com:443"
        ));
        assert!(check(&o, None, Some("http://[::1]:8080"), "[::1]:8080"));
        // Another port of the same host, a sibling subdomain, null, nonsense: refused.
        assert!(!check(
            &o,
            None,
            Some("http://127.0.0.1:9999"),
            "127.0.0.1:8080"
        ));
        assert!(!check(
            &o,
            None,
            Some("http://evil.example.com"),
            "leads.example.com"
        ));
        assert!(!check(&o, None, Some("null"), "127.0.0.1:8080"));
        assert!(!check(&o, None, Some("file:///x"), "127.0.0.1:8080"));
        // No header at all: not a browser page.
        assert!(check(&o, None, None, "127.0.0.1:8080"));
    }

    #[test]
    fn the_public_url_is_our_own_behind_a_proxy_that_rewrites_host() {
        let o = Origins::new(Some("https://leads.example.com/"));
        assert!(check(
            &o,
            None,
            Some("https://leads.example.com"),
            "127.0.0.1:8080"
        ));
        assert!(!check(
            &o,
            None,
            Some("http://leads.example.com"),
            "127.0.0.1:8080"
        ));
        assert!(!check(
            &o,
            None,
            Some("https://evil.example.com"),
            "127.0.0.1:8080"
        ));
    }

    #[test]
    fn reads_and_signed_webhooks_are_not_checked() {
        let o = Origins::default();
        let host: Authority = "127.0.0.1:8080".parse().unwrap();
        let site = Some("cross-site");
        assert!(o
            .check(&Method::GET, "/api/leads", site, None, Some(&host))
            .is_ok());
        assert!(o
            .check(&Method::POST, "/webhook", site, None, Some(&host))
            .is_ok());
        assert!(o
            .check(&Method::POST, "/login", site, None, Some(&host))
            .is_err());
        assert!(o
            .check(&Method::DELETE, "/api/leads/1", site, None, Some(&host))
            .is_err());
    }
}
