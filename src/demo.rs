//! Demo mode: a simulated Meta inside the process, so `make run` shows the real product working
//! on a machine with no Meta app.
//!
//! It does what Meta does and nothing more: it signs and POSTs `leadgen` webhooks to this
//! server's own `/webhook` (now and then a duplicate or a batch of several), and answers the
//! Graph calls the worker and the sync make, at `/demo-graph/v25.0/…`, checking the token and
//! `appsecret_proof` like Meta. Everything after the webhook is the real pipeline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::auth::secret_eq;
use crate::config::{base_url, random_token, MetaSettings, Secret};
use crate::ingest::signature::sign;
use crate::meta::graph::appsecret_proof;
use crate::shutdown::Shutdown;

pub const DEMO_PAGE_ID: &str = "100000000000001";
/// (form id, form name, questions beyond name/email/phone)
const FORMS: &[(&str, &str, &[&str])] = &[
    ("200000000000001", "Spring open day", &["preferred_date"]),
    (
        "200000000000002",
        "Free quote request",
        &["company_name", "budget"],
    ),
    ("200000000000003", "Newsletter sign-up", &[]),
];
const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Zoë", "José", "Łukasz", "Amélie", "Søren", "Mei", "Aarav", "Fatima",
    "Olu", "Björn", "Chloé", "Diego", "Hana", "Ines", "Kwame", "Lena", "Mateo",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Ström",
    "García",
    "Nowak",
    "Dubois",
    "Jensen",
    "Chen",
    "Sharma",
    "Haddad",
    "Adeyemi",
    "Andersson",
    "Martin",
    "López",
    "Sato",
    "Costa",
    "Mensah",
    "Müller",
    "Rossi",
];

/// A lead the simulated Meta knows, so its Graph can answer for it.
#[derive(Debug, Clone)]
struct DemoLead {
    id: String,
    form: usize,
    created: DateTime<Utc>,
    field_data: Value,
}

#[derive(Clone)]
pub struct DemoMeta {
    app_secret: Secret,
    verify_token: Secret,
    page_token: Secret,
    graph_url: String,
    webhook_url: String,
    leads: Arc<Mutex<HashMap<String, DemoLead>>>,
    counter: Arc<Mutex<u64>>,
}

impl DemoMeta {
    pub fn new(server: SocketAddr) -> DemoMeta {
        let base = base_url(server);
        DemoMeta {
            app_secret: Secret::new(random_token(16)),
            verify_token: Secret::new(random_token(16)),
            page_token: Secret::new(format!("demo-page-token-{}", random_token(8))),
            graph_url: format!("{base}/demo-graph/v25.0"),
            webhook_url: format!("{base}/webhook"),
            leads: Arc::default(),
            counter: Arc::new(Mutex::new(Utc::now().timestamp_millis() as u64 * 10)),
        }
    }

    /// The Meta app this simulated Meta stands for: its made-up secrets, its Graph on this
    /// server, its one page.
    pub fn meta_settings(&self) -> MetaSettings {
        MetaSettings {
            app_secret: self.app_secret.clone(),
            verify_token: self.verify_token.clone(),
            page_access_token: self.page_token.clone(),
            page_ids: vec![DEMO_PAGE_ID.to_string()],
            graph_url: self.graph_url.clone(),
        }
    }

    fn random(&self, n: usize) -> usize {
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        u32::from_le_bytes(b) as usize % n.max(1)
    }

    /// Makes up a lead as a person would fill the form in.
    fn new_lead(&self) -> DemoLead {
        let id = {
            let mut c = self.counter.lock().expect("demo lock");
            *c += 1;
            // 16 digits, like Meta's lead ids.
            format!("9{:015}", *c % 1_000_000_000_000_000)
        };
        let form = self.random(FORMS.len());
        let first = FIRST[self.random(FIRST.len())];
        let last = LAST[self.random(LAST.len())];
        let email_user: String = format!("{first}.{last}")
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    'x'
                }
            })
            .collect();
        let mut fields = vec![
            json!({"name": "full_name", "values": [format!("{first} {last}")]}),
            json!({"name": "email", "values": [format!("{email_user}@example.com")]}),
            json!({"name": "phone_number", "values": [format!("+44 7700 9{:05}", self.random(100_000))]}),
        ];
        for q in FORMS[form].2 {
            let v = match *q {
                "preferred_date" => ["Saturday morning", "Sunday afternoon", "Any weekday"]
                    [self.random(3)]
                .to_string(),
                "company_name" => ["Analytical Engines Ltd", "Hopper & Co", "Bletchley Works"]
                    [self.random(3)]
                .to_string(),
                "budget" => ["< 1,000 €", "1,000–5,000 €", "> 5,000 €"][self.random(3)].to_string(),
                _ => String::new(),
            };
            fields.push(json!({"name": q, "values": [v]}));
        }
        DemoLead {
            id,
            form,
            created: Utc::now(),
            field_data: Value::Array(fields),
        }
    }

    fn change(lead: &DemoLead) -> Value {
        json!({"field": "leadgen", "value": {
            "leadgen_id": lead.id, "page_id": DEMO_PAGE_ID, "form_id": FORMS[lead.form].0,
            "created_time": lead.created.timestamp()
        }})
    }

    /// Posts a webhook every `every`: mostly one lead, sometimes a batch, sometimes a resend.
    pub async fn run(self, every: Duration, shutdown: Shutdown) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let mut last_body: Option<Vec<u8>> = None;
        // A first lead soon after start, so a newcomer sees something at once.
        let mut wait = Duration::from_millis(1500).min(every);
        loop {
            tokio::select! {
                _ = shutdown.started() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = every;
            let roll = self.random(10);
            let body = match (roll, &last_body) {
                // Meta delivers at least once: resend the previous delivery now and then.
                (0, Some(prev)) => prev.clone(),
                _ => {
                    let n = if roll == 1 { 2 + self.random(3) } else { 1 };
                    let leads: Vec<DemoLead> = (0..n).map(|_| self.new_lead()).collect();
                    {
                        let mut known = self.leads.lock().expect("demo lock");
                        for l in &leads {
                            known.insert(l.id.clone(), l.clone());
                        }
                    }
                    let changes: Vec<Value> = leads.iter().map(Self::change).collect();
                    let body = json!({"object": "page", "entry": [{
                        "id": DEMO_PAGE_ID, "time": Utc::now().timestamp(), "changes": changes
                    }]});
                    serde_json::to_vec(&body).expect("json")
                }
            };
            let sig = sign(self.app_secret.expose().as_bytes(), &body);
            let res = http
                .post(&self.webhook_url)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", sig)
                .body(body.clone())
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => log::warn!("demo: webhook answered {}", r.status()),
                Err(e) => log::warn!("demo: webhook failed: {}", e.without_url()),
            }
            last_body = Some(body);
        }
    }

    /// Answers one simulated Graph call: `path` below `/demo-graph/v25.0/`, and the query.
    pub fn graph(&self, path: &str, query: &HashMap<String, String>) -> (u16, Value) {
        let token_ok = query
            .get("access_token")
            .is_some_and(|t| secret_eq(t, self.page_token.expose()));
        let proof_ok = query.get("appsecret_proof").is_some_and(|p| {
            secret_eq(
                p,
                &appsecret_proof(self.app_secret.expose(), self.page_token.expose()),
            )
        });
        if !token_ok {
            return graph_error(
                190,
                "Invalid OAuth access token - Cannot parse access token",
            );
        }
        if !proof_ok {
            return graph_error(100, "Invalid appsecret_proof provided in the API argument");
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let lead_json = |l: &DemoLead| {
            json!({"id": l.id, "created_time": l.created.format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
                   "form_id": FORMS[l.form].0, "field_data": l.field_data, "is_organic": false, "platform": "fb"})
        };
        match parts.as_slice() {
            [page, "leadgen_forms"] if *page == DEMO_PAGE_ID => {
                let data: Vec<Value> = FORMS
                    .iter()
                    .map(|(id, name, _)| json!({"id": id, "name": name, "status": "ACTIVE"}))
                    .collect();
                (
                    200,
                    json!({"data": data, "paging": {"cursors": {"before": "a", "after": "b"}}}),
                )
            }
            [form, "leads"] => {
                let Some(fi) = FORMS.iter().position(|f| f.0 == *form) else {
                    return graph_error(100, "Unsupported get request. Object does not exist");
                };
                let mut data: Vec<Value> = self
                    .leads
                    .lock()
                    .expect("demo lock")
                    .values()
                    .filter(|l| l.form == fi)
                    .map(lead_json)
                    .collect();
                data.sort_by(|a, b| b["created_time"].as_str().cmp(&a["created_time"].as_str()));
                (
                    200,
                    json!({"data": data, "paging": {"cursors": {"before": "a", "after": "b"}}}),
                )
            }
            [id] => {
                if let Some((fid, name, _)) = FORMS.iter().find(|f| f.0 == *id) {
                    return (200, json!({"id": fid, "name": name, "status": "ACTIVE"}));
                }
                match self.leads.lock().expect("demo lock").get(*id) {
                    Some(l) => (200, lead_json(l)),
                    None => graph_error(
                        100,
                        "Unsupported get request. Object with ID does not exist",
                    ),
                }
            }
            _ => graph_error(100, "Unknown path components"),
        }
    }
}

fn graph_error(code: i64, message: &str) -> (u16, Value) {
    (
        400,
        json!({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "demo"}}),
    )
}
