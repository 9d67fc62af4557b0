//! A fake Graph API on a random loopback port that behaves as docs/meta.md says Meta does:
//! `+0000` timestamps, ids as strings, error JSON with codes under HTTP 400 (rate limits too),
//! 500s, slow answers, `paging.next` as absolute URLs (empty pages included), and checks of the
//! access token and `appsecret_proof` on every call.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use leadstream::meta::graph::appsecret_proof;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

pub const GRAPH_VERSION: &str = "v25.0";

/// What the next call(s) should answer instead of the truth.
#[derive(Debug, Clone)]
pub enum Failure {
    /// HTTP 500 with Meta's error JSON (code 2, "temporary").
    ServerError,
    /// HTTP 502 with an HTML body, as a proxy would.
    BadGateway,
    /// HTTP 400, code 4 (application request limit reached).
    RateLimited,
    /// HTTP 400, code 190 subcode 463 (token expired).
    TokenExpired,
    /// HTTP 400, code 100 (object does not exist).
    NotFound,
    /// Answer correctly, but only after this long.
    Slow(Duration),
    /// HTTP 400, code 100, with this message (Meta's words are text from outside too).
    Refused(String),
    /// HTTP 200 with a body of this many bytes (spaces after a `{`), made as it is read, without
    /// a Content-Length; [`FakeGraph::huge_bytes_sent`] says how much of it went out.
    Huge(usize),
}

#[derive(Default)]
pub struct GraphState {
    /// lead id → lead JSON (as Graph returns it).
    pub leads: HashMap<String, Value>,
    /// page id → forms (id, name).
    pub forms: HashMap<String, Vec<(String, String)>>,
    /// form id → lead ids, newest first (as Graph lists them).
    pub form_leads: HashMap<String, Vec<String>>,
    /// Answers that replace the next calls, one each, in order.
    pub queued_failures: VecDeque<Failure>,
    /// While set, every call fails this way.
    pub always: Option<Failure>,
    /// Leads per page of `/{form}/leads`.
    pub page_size: usize,
    /// Page numbers (0-based) of a form's listing that come back empty, with a `next`.
    pub empty_pages: Vec<usize>,
    /// Every path called, in order (no query strings).
    pub calls: Vec<String>,
    /// When each of `calls` arrived.
    pub call_times: Vec<std::time::Instant>,
    /// Forms per page of `/{page}/leadgen_forms`; `None` lists them all on one page.
    pub forms_page_size: Option<usize>,
    /// `filtering` parameters received by `/{form}/leads`.
    pub filters_seen: Vec<String>,
    /// Forms whose lead listing's `paging.next` points at the page itself.
    pub looping_forms: Vec<String>,
    /// Forms whose lead listing always has another (empty) page.
    pub endless_forms: Vec<String>,
}

#[derive(Clone)]
pub struct FakeGraph {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<GraphState>>,
    /// Bytes of [`Failure::Huge`] answers handed to the connection so far.
    pub huge_sent: Arc<std::sync::atomic::AtomicUsize>,
    pub token: String,
    pub app_secret: String,
}

impl FakeGraph {
    pub async fn start(token: &str, app_secret: &str) -> FakeGraph {
        let state = Arc::new(Mutex::new(GraphState {
            page_size: 25,
            ..Default::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let g = FakeGraph {
            addr,
            state: state.clone(),
            huge_sent: Default::default(),
            token: token.into(),
            app_secret: app_secret.into(),
        };
        let g2 = g.clone();
        let route = warp::path(GRAPH_VERSION)
            .and(warp::path::tail())
            .and(warp::get())
            .and(warp::query::<HashMap<String, String>>())
            .then(move |tail: warp::path::Tail, q: HashMap<String, String>| {
                let g = g2.clone();
                async move { g.answer(tail.as_str().to_string(), q).await }
            });
        tokio::spawn(warp::serve(route).incoming(listener).run());
        g
    }

    /// The value for META_GRAPH_URL.
    pub fn url(&self) -> String {
        format!("http://{}/{GRAPH_VERSION}", self.addr)
    }

    /// Adds a lead as Graph would hold it (also listed under its form).
    pub fn add_lead(&self, id: &str, form_id: &str, created_unix: i64, fields: &[(&str, &str)]) {
        let created = chrono::DateTime::from_timestamp(created_unix, 0).unwrap();
        let field_data: Vec<Value> = fields
            .iter()
            .map(|(n, v)| json!({"name": n, "values": [v]}))
            .collect();
        let lead = json!({
            "id": id,
            "created_time": created.format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
            "form_id": form_id,
            "field_data": field_data,
            "is_organic": false,
            "platform": "fb",
        });
        let mut s = self.state.lock().unwrap();
        s.leads.insert(id.to_string(), lead);
        let list = s.form_leads.entry(form_id.to_string()).or_default();
        list.insert(0, id.to_string());
    }

    pub fn add_form(&self, page_id: &str, form_id: &str, name: &str) {
        let mut s = self.state.lock().unwrap();
        s.forms
            .entry(page_id.to_string())
            .or_default()
            .push((form_id.to_string(), name.to_string()));
        s.form_leads.entry(form_id.to_string()).or_default();
    }

    pub fn fail_next(&self, f: Failure, times: usize) {
        let mut s = self.state.lock().unwrap();
        for _ in 0..times {
            s.queued_failures.push_back(f.clone());
        }
    }

    pub fn set_always(&self, f: Option<Failure>) {
        self.state.lock().unwrap().always = f;
    }

    /// Lets the next `ok_calls` calls through, then fails `times` calls with `f`.
    pub fn fail_after(&self, ok_calls: usize, f: Failure, times: usize) {
        // A zero-length Slow answers correctly: it only holds a place in the queue.
        self.fail_next(Failure::Slow(Duration::ZERO), ok_calls);
        self.fail_next(f, times);
    }

    /// The `filtering` parameters `/{form}/leads` received, in order.
    pub fn filters_seen(&self) -> Vec<String> {
        self.state.lock().unwrap().filters_seen.clone()
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Calls of `GET /{lead_id}` for one lead.
    pub fn lead_calls(&self, id: &str) -> usize {
        self.calls().iter().filter(|c| c.as_str() == id).count()
    }

    async fn answer(&self, path: String, q: HashMap<String, String>) -> Response {
        let failure = {
            let mut s = self.state.lock().unwrap();
            s.calls.push(path.clone());
            s.call_times.push(std::time::Instant::now());
            s.always.clone().or_else(|| s.queued_failures.pop_front())
        };
        match failure {
            Some(Failure::Slow(d)) => tokio::time::sleep(d).await,
            Some(Failure::ServerError) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    2,
                    None,
                    "An unexpected error has occurred. Please retry your request later.",
                )
            }
            Some(Failure::BadGateway) => {
                return warp::reply::with_status(
                    warp::reply::html("<html>502 Bad Gateway</html>"),
                    StatusCode::BAD_GATEWAY,
                )
                .into_response()
            }
            Some(Failure::RateLimited) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    4,
                    None,
                    "(#4) Application request limit reached",
                )
            }
            Some(Failure::TokenExpired) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    190,
                    Some(463),
                    "Error validating access token: Session has expired on Friday.",
                )
            }
            Some(Failure::NotFound) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    100,
                    Some(33),
                    "Unsupported get request. Object with ID does not exist",
                )
            }
            Some(Failure::Refused(message)) => {
                return error(StatusCode::BAD_REQUEST, 100, None, &message)
            }
            Some(Failure::Huge(len)) => return self.huge(len),
            None => {}
        }
        if q.get("access_token") != Some(&self.token) {
            return error(
                StatusCode::BAD_REQUEST,
                190,
                None,
                "Invalid OAuth access token - Cannot parse access token",
            );
        }
        if q.get("appsecret_proof") != Some(&appsecret_proof(&self.app_secret, &self.token)) {
            return error(
                StatusCode::BAD_REQUEST,
                100,
                None,
                "Invalid appsecret_proof provided in the API argument",
            );
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let s = &mut *self.state.lock().unwrap();
        match parts.as_slice() {
            [page, "leadgen_forms"] => {
                let forms: Vec<Value> = s
                    .forms
                    .get(*page)
                    .map(|fs| {
                        fs.iter()
                            .map(|(id, name)| json!({"id": id, "name": name, "status": "ACTIVE"}))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut paging = json!({"cursors": {"before": "b", "after": "a"}});
                let Some(size) = s.forms_page_size else {
                    return ok(json!({"data": forms, "paging": paging}));
                };
                let size = size.max(1);
                let n: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
                let data: Vec<Value> = forms.iter().skip(n * size).take(size).cloned().collect();
                if (n + 1) * size < forms.len() {
                    paging["next"] =
                        json!(self.next_url(&format!("{page}/leadgen_forms"), &q, n + 1));
                }
                ok(json!({"data": data, "paging": paging}))
            }
            [form, "leads"] => {
                if let Some(f) = q.get("filtering") {
                    s.filters_seen.push(f.clone());
                }
                let since = q.get("filtering").and_then(|f| {
                    let v: Value = serde_json::from_str(f).ok()?;
                    v[0]["value"].as_i64()
                });
                let ids: Vec<String> = s
                    .form_leads
                    .get(*form)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|id| {
                        let t = s.leads[id]["created_time"].as_str().unwrap_or("");
                        let t = chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%z")
                            .unwrap()
                            .timestamp();
                        since.is_none_or(|since| t > since)
                    })
                    .collect();
                let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
                // Empty pages are inserted as extra pages that shift the real ones.
                let empties_before = s.empty_pages.iter().filter(|&&e| e < page).count();
                let is_empty = s.empty_pages.contains(&page);
                let real_page = page - empties_before;
                let size = s.page_size.max(1);
                let start = real_page * size;
                let data: Vec<Value> = if is_empty {
                    Vec::new()
                } else {
                    ids.iter()
                        .skip(start)
                        .take(size)
                        .map(|id| s.leads[id].clone())
                        .collect()
                };
                let more = if is_empty {
                    start < ids.len()
                } else {
                    start + size < ids.len()
                };
                let mut paging = json!({"cursors": {"before": "b", "after": "a"}});
                let path = format!("{form}/leads");
                if s.looping_forms.iter().any(|f| f == form) {
                    paging["next"] = json!(self.next_url(&path, &q, page));
                } else if more || s.endless_forms.iter().any(|f| f == form) {
                    paging["next"] = json!(self.next_url(&path, &q, page + 1));
                }
                ok(json!({"data": data, "paging": paging}))
            }
            [id] => {
                if let Some(lead) = s.leads.get(*id) {
                    return ok(lead.clone());
                }
                let form = s
                    .forms
                    .values()
                    .flatten()
                    .find(|(fid, _)| fid == id)
                    .cloned();
                match form {
                    Some((fid, name)) => ok(json!({"id": fid, "name": name, "status": "ACTIVE"})),
                    None => error(
                        StatusCode::BAD_REQUEST,
                        100,
                        Some(33),
                        "Unsupported get request. Object with ID does not exist",
                    ),
                }
            }
            _ => error(
                StatusCode::BAD_REQUEST,
                100,
                None,
                "Unknown path components",
            ),
        }
    }
}

impl FakeGraph {
    /// Bytes of [`Failure::Huge`] answers handed to the connection so far.
    pub fn huge_bytes_sent(&self) -> usize {
        self.huge_sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A 200 whose body goes on for `len` bytes, made 64 KiB at a time as the client reads.
    fn huge(&self, len: usize) -> Response {
        const PIECE: usize = 64 * 1024;
        let sent = self.huge_sent.clone();
        let pieces = futures_util::stream::iter((0..len.div_ceil(PIECE)).map(move |i| {
            let n = PIECE.min(len - i * PIECE);
            let mut piece = vec![b' '; n];
            if i == 0 {
                piece[0] = b'{';
            }
            sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, std::io::Error>(bytes::Bytes::from(piece))
        }));
        let mut res = warp::reply::stream(pieces).into_response();
        res.headers_mut().insert(
            "content-type",
            warp::http::HeaderValue::from_static("application/json"),
        );
        res
    }

    /// An absolute `paging.next`, as Meta sends it: `path` with the query it was asked with,
    /// at `page`.
    fn next_url(&self, path: &str, q: &HashMap<String, String>, page: usize) -> String {
        let mut next =
            url::Url::parse(&format!("http://{}/{GRAPH_VERSION}/{path}", self.addr)).unwrap();
        for (k, v) in q {
            if k != "page" {
                next.query_pairs_mut().append_pair(k, v);
            }
        }
        next.query_pairs_mut()
            .append_pair("page", &page.to_string());
        next.to_string()
    }
}

fn ok(v: Value) -> Response {
    warp::reply::json(&v).into_response()
}

fn error(status: StatusCode, code: i64, subcode: Option<i64>, message: &str) -> Response {
    let mut e = json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf123"});
    if let Some(s) = subcode {
        e["error_subcode"] = json!(s);
    }
    warp::reply::with_status(warp::reply::json(&json!({ "error": e })), status).into_response()
}
