//! The Graph API client: one reqwest `Client` with timeouts, the base URL (version included)
//! and the page token injected, one method per call, `appsecret_proof` on every request.
//!
//! Errors are sorted into classes once, in `error` ([`GraphError::class`]). Answers are read
//! up to [`MAX_ANSWER`]. Nothing here logs a URL: they carry the access token.

mod error;

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::model::{is_meta_id, parse_graph_time, FieldData};

/// The fields asked for on every lead read (docs/architecture.md, "The path of a lead").
pub const LEAD_FIELDS: &str =
    "id,created_time,ad_id,form_id,field_data,campaign_id,adset_id,is_organic,platform";

pub use error::{ApiError, ErrorClass, GraphError};

/// The largest Graph answer read: 8 MiB. A page of 100 leads is a few hundred KiB; an answer
/// that goes on past this is a broken proxy or worse, and reading it whole would take memory
/// without bound (150 MB once took the process to 2.3 GB).
pub const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// `appsecret_proof` = hex HMAC-SHA256(key = app secret, message = access token).
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    // The same HMAC as the webhook signature (ingest::signature), keyed by the app secret
    // and run over the token.
    let mut m = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    m.update(access_token.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A lead as Graph returns it, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphLead {
    pub id: String,
    pub created_time: DateTime<Utc>,
    pub ad_id: Option<String>,
    pub adgroup_id: Option<String>,
    pub form_id: Option<String>,
    pub campaign_id: Option<String>,
    pub field_data: Vec<FieldData>,
}

#[derive(Debug, Deserialize)]
struct RawLead {
    id: IdValue,
    created_time: String,
    #[serde(default)]
    ad_id: Option<IdValue>,
    #[serde(default)]
    adset_id: Option<IdValue>,
    #[serde(default)]
    form_id: Option<IdValue>,
    #[serde(default)]
    campaign_id: Option<IdValue>,
    #[serde(default)]
    field_data: Vec<RawField>,
}

#[derive(Debug, Deserialize)]
struct RawField {
    name: String,
    #[serde(default)]
    values: Vec<serde_json::Value>,
}

/// Ids as strings or numbers.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(u64),
}

impl IdValue {
    fn into_id(self) -> Option<String> {
        let s = match self {
            IdValue::Text(s) => s,
            IdValue::Number(n) => n.to_string(),
        };
        (is_meta_id(&s) && s != "0").then_some(s)
    }
}

impl TryFrom<RawLead> for GraphLead {
    type Error = GraphError;
    fn try_from(r: RawLead) -> Result<Self, GraphError> {
        let id =
            r.id.into_id()
                .ok_or_else(|| GraphError::Decode("lead id is not digits".into()))?;
        let created_time = parse_graph_time(&r.created_time)
            .map_err(|e| GraphError::Decode(format!("created_time {:?}: {e}", r.created_time)))?;
        Ok(GraphLead {
            id,
            created_time,
            ad_id: r.ad_id.and_then(IdValue::into_id),
            adgroup_id: r.adset_id.and_then(IdValue::into_id),
            form_id: r.form_id.and_then(IdValue::into_id),
            campaign_id: r.campaign_id.and_then(IdValue::into_id),
            field_data: r
                .field_data
                .into_iter()
                .map(|f| FieldData {
                    name: f.name,
                    // `values` is a list of strings in practice; anything else is kept as its
                    // JSON text rather than dropped.
                    values: f
                        .values
                        .into_iter()
                        .map(|v| match v {
                            serde_json::Value::String(s) => s,
                            other => other.to_string(),
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}

/// A lead form from `/{page_id}/leadgen_forms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphForm {
    pub id: String,
    pub name: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawForm {
    id: IdValue,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawPage<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    paging: Option<RawPaging>,
}

#[derive(Debug, Deserialize)]
struct RawPaging {
    #[serde(default)]
    next: Option<String>,
}

/// One page of a listing and where the next one is.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Absolute URL of the next page (already checked to be under the Graph URL).
    pub next: Option<String>,
}

#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    token: String,
    proof: String,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// `base` is e.g. `https://graph.facebook.com/v25.0` (no trailing slash).
    pub fn new(base: &str, access_token: &str, app_secret: &str, timeout: Duration) -> GraphClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .user_agent(concat!("leadstream/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("reqwest client with static settings builds");
        GraphClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: access_token.to_string(),
            proof: appsecret_proof(app_secret, access_token),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /{leadgen_id}?fields=…`
    pub async fn lead(&self, leadgen_id: &str) -> Result<GraphLead, GraphError> {
        assert!(is_meta_id(leadgen_id), "callers pass checked ids");
        let url = format!("{}/{}", self.base, leadgen_id);
        let raw: RawLead = self.get_json(&url, &[("fields", LEAD_FIELDS)]).await?;
        raw.try_into()
    }

    /// `GET /{form_id}?fields=id,name,status,page` — the form's name for the dashboard.
    pub async fn form(&self, form_id: &str) -> Result<GraphForm, GraphError> {
        assert!(is_meta_id(form_id), "callers pass checked ids");
        let url = format!("{}/{}", self.base, form_id);
        let raw: RawForm = self.get_json(&url, &[("fields", "id,name,status")]).await?;
        form_from_raw(raw)
    }

    /// First page of `GET /{page_id}/leadgen_forms`.
    pub async fn forms(&self, page_id: &str) -> Result<Page<GraphForm>, GraphError> {
        assert!(is_meta_id(page_id), "callers pass checked ids");
        let url = format!("{}/{}/leadgen_forms", self.base, page_id);
        let page: RawPage<RawForm> = self
            .get_json(&url, &[("fields", "id,name,status"), ("limit", "100")])
            .await?;
        self.convert_page(page, form_from_raw)
    }

    /// First page of `GET /{form_id}/leads`, created after `since` (unix seconds) when given.
    pub async fn form_leads(
        &self,
        form_id: &str,
        since: Option<i64>,
    ) -> Result<Page<GraphLead>, GraphError> {
        assert!(is_meta_id(form_id), "callers pass checked ids");
        let url = format!("{}/{}/leads", self.base, form_id);
        let filtering = since.map(|s| {
            serde_json::json!([{"field": "time_created", "operator": "GREATER_THAN", "value": s}]).to_string()
        });
        let mut query = vec![("fields", LEAD_FIELDS), ("limit", "100")];
        if let Some(f) = &filtering {
            query.push(("filtering", f.as_str()));
        }
        let page: RawPage<RawLead> = self.get_json(&url, &query).await?;
        self.convert_page(page, GraphLead::try_from)
    }

    /// Follows a `paging.next` URL of a lead listing.
    pub async fn next_leads(&self, next: &str) -> Result<Page<GraphLead>, GraphError> {
        let page: RawPage<RawLead> = self.get_json(next, &[]).await?;
        self.convert_page(page, GraphLead::try_from)
    }

    /// Follows a `paging.next` URL of a form listing.
    pub async fn next_forms(&self, next: &str) -> Result<Page<GraphForm>, GraphError> {
        let page: RawPage<RawForm> = self.get_json(next, &[]).await?;
        self.convert_page(page, form_from_raw)
    }

    fn convert_page<R, T>(
        &self,
        page: RawPage<R>,
        convert: impl Fn(R) -> Result<T, GraphError>,
    ) -> Result<Page<T>, GraphError> {
        let items = page
            .data
            .into_iter()
            .map(convert)
            .collect::<Result<Vec<_>, _>>()?;
        let next = page.paging.and_then(|p| p.next);
        if let Some(n) = &next {
            if !self.is_own_url(n) {
                return Err(GraphError::ForeignNext);
            }
        }
        Ok(Page { items, next })
    }

    /// A `next` link must stay on the configured Graph host: it is fetched with our token.
    fn is_own_url(&self, url: &str) -> bool {
        match (url::Url::parse(url), url::Url::parse(&self.base)) {
            (Ok(a), Ok(b)) => {
                a.scheme() == b.scheme()
                    && a.host_str() == b.host_str()
                    && a.port_or_known_default() == b.port_or_known_default()
            }
            _ => false,
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, &str)],
    ) -> Result<T, GraphError> {
        let started = std::time::Instant::now();
        let answer = self.call(url, query).await;
        crate::metrics::graph_call(
            answer.as_ref().map(|_| ()).map_err(GraphError::class),
            started.elapsed(),
        );
        answer
    }

    /// One GET to Graph with our token, its answer decoded.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        query: &[(&str, &str)],
    ) -> Result<T, GraphError> {
        let mut u =
            url::Url::parse(url).map_err(|e| GraphError::Decode(format!("bad URL: {e}")))?;
        {
            // `next` links from Meta already carry access_token; set ours exactly once.
            let kept: Vec<(String, String)> = u
                .query_pairs()
                .filter(|(k, _)| k != "access_token" && k != "appsecret_proof")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let mut q = u.query_pairs_mut();
            q.clear();
            for (k, v) in &kept {
                q.append_pair(k, v);
            }
            for (k, v) in query {
                q.append_pair(k, v);
            }
            q.append_pair("access_token", &self.token);
            q.append_pair("appsecret_proof", &self.proof);
        }
        let res = self
            .http
            .get(u)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = res.status().as_u16();
        let body = self.read_body(res).await?;
        if !(200..300).contains(&status) {
            #[derive(Deserialize)]
            struct Envelope {
                error: ApiError,
            }
            return Err(match serde_json::from_slice::<Envelope>(&body) {
                Ok(env) => GraphError::Api {
                    status,
                    error: env.error,
                },
                Err(_) => GraphError::Http { status },
            });
        }
        serde_json::from_slice(&body).map_err(|e| GraphError::Decode(e.to_string()))
    }

    /// The answer's body, read piece by piece and given up past [`MAX_ANSWER`], whatever its
    /// `Content-Length` claimed (a chunked answer has none).
    async fn read_body(&self, mut res: reqwest::Response) -> Result<Vec<u8>, GraphError> {
        if res.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(GraphError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(piece) = res.chunk().await.map_err(|e| self.transport(e))? {
            if body.len() + piece.len() > MAX_ANSWER {
                // Dropping `res` closes the connection: nothing more is read.
                return Err(GraphError::TooLarge);
            }
            body.extend_from_slice(&piece);
        }
        Ok(body)
    }

    /// A transport failure in words a person can use ("…: Connection refused", "…: operation
    /// timed out"): reqwest's own text alone is just "error sending request". The URL (which
    /// carries the token) is dropped, and token and proof are blanked out of the causes too,
    /// in case some layer ever quotes the request.
    fn transport(&self, e: reqwest::Error) -> GraphError {
        let e = e.without_url();
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            let part = c.to_string();
            if !text.contains(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            cause = c.source();
        }
        if !self.token.is_empty() {
            text = text.replace(&self.token, "[token]");
        }
        GraphError::Transport(text.replace(&self.proof, "[proof]"))
    }
}

fn form_from_raw(r: RawForm) -> Result<GraphForm, GraphError> {
    Ok(GraphForm {
        id: r
            .id
            .into_id()
            .ok_or_else(|| GraphError::Decode("form id is not digits".into()))?,
        name: r.name,
        status: r.status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: i64) -> GraphError {
        GraphError::Api {
            status: 400,
            error: ApiError {
                message: "m".into(),
                kind: None,
                code: Some(code),
                error_subcode: None,
                fbtrace_id: None,
                is_transient: None,
            },
        }
    }

    #[test]
    fn graph_error_codes_fall_into_the_documented_classes() {
        for c in [1, 2, 341, 368] {
            assert_eq!(api(c).class(), ErrorClass::Transient, "{c}");
        }
        for c in [4, 17, 32, 613, 80001, 80005] {
            assert_eq!(api(c).class(), ErrorClass::RateLimited, "{c}");
        }
        assert_eq!(api(190).class(), ErrorClass::Token);
        for c in [10, 200, 250, 299] {
            assert_eq!(api(c).class(), ErrorClass::Permission, "{c}");
        }
        assert_eq!(api(100).class(), ErrorClass::Permanent);
        assert_eq!(
            GraphError::Http { status: 502 }.class(),
            ErrorClass::Transient
        );
        assert_eq!(
            GraphError::Http { status: 429 }.class(),
            ErrorClass::RateLimited
        );
        assert_eq!(
            GraphError::Http { status: 404 }.class(),
            ErrorClass::Permanent
        );
        assert_eq!(
            GraphError::Transport("x".into()).class(),
            ErrorClass::Transient
        );
    }

    #[tokio::test]
    async fn transport_errors_name_the_cause_and_never_the_token() {
        // A port nobody listens on: bind, note it, let it go.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let token = "EAAG-secret-token";
        let g = GraphClient::new(
            &format!("http://{addr}/v25.0"),
            token,
            "app-secret",
            Duration::from_secs(5),
        );
        let err = g.lead("123").await.unwrap_err();
        let text = err.to_string();
        assert_eq!(err.class(), ErrorClass::Transient);
        assert!(text.to_lowercase().contains("refused"), "{text}");
        assert!(!text.contains(token) && !text.contains(&g.proof), "{text}");
        assert!(!text.contains("127.0.0.1"), "no URL: {text}");
    }

    #[test]
    fn a_raw_lead_converts_with_its_plus0000_time() {
        let raw: RawLead = serde_json::from_str(
            r#"{"id":1234567890123456,"created_time":"2026-02-28T08:49:14+0000","ad_id":"0","form_id":"77",
                "field_data":[{"name":"full_name","values":["Zoë"]},{"name":"n","values":[5]}]}"#,
        )
        .unwrap();
        let l = GraphLead::try_from(raw).unwrap();
        assert_eq!(l.id, "1234567890123456");
        assert_eq!(l.ad_id, None);
        assert_eq!(l.form_id.as_deref(), Some("77"));
        assert_eq!(l.field_data[1].values, vec!["5"]);
        assert_eq!(
            crate::model::format_seconds(l.created_time),
            "2026-02-28T08:49:14Z"
        );
    }

    #[test]
    fn the_proof_is_an_hmac_of_the_token() {
        let p = appsecret_proof("secret", "token");
        assert_eq!(p.len(), 64);
        assert_ne!(p, appsecret_proof("secret", "token2"));
    }
}
