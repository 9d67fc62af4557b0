//! Reading leads back: `/api/leads` (search, filters, order, pages), `/api/leads/count` and
//! `/healthz`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const PAGE_A: &str = "500000000000001";
const PAGE_B: &str = "500000000000002";
const FORM_A: &str = "600000000000001";
const FORM_B: &str = "600000000000002";

/// One person of the listing fixture: where the lead came from, what they answered, when.
struct Person {
    id: &'static str,
    page: &'static str,
    form: &'static str,
    answers: [(&'static str, &'static str); 4],
    created: i64,
}

/// Four people on two pages and two forms, created on the 10th of January … April 2025.
async fn app_with_four_leads() -> TestApp {
    let app = TestApp::spawn().await;
    let answers = |name, email, phone, city| {
        [
            ("full_name", name),
            ("email", email),
            ("phone_number", phone),
            ("city", city),
        ]
    };
    let people = [
        Person {
            id: "700000000000001",
            page: PAGE_A,
            form: FORM_A,
            answers: answers(
                "Ada Lovelace",
                "ada@gmail.com",
                "+44 20 7946 0001",
                "London",
            ),
            created: 1_736_503_200,
        },
        Person {
            id: "700000000000002",
            page: PAGE_A,
            form: FORM_B,
            answers: answers(
                "Grace Hopper",
                "grace@navy.mil",
                "+1 202 555 0102",
                "Arlington",
            ),
            created: 1_739_181_600,
        },
        Person {
            id: "700000000000003",
            page: PAGE_B,
            form: FORM_A,
            answers: answers("Zoë Ström", "zoe@example.se", "+46 8 123 456", "Zürich"),
            created: 1_741_600_800,
        },
        Person {
            id: "700000000000004",
            page: PAGE_B,
            form: FORM_B,
            answers: answers(
                "alan turing",
                "alan@gmail.com",
                "+44 161 496 0000",
                "Manchester",
            ),
            created: 1_744_279_200,
        },
    ];
    for p in &people {
        app.graph.add_lead(p.id, p.form, p.created, &p.answers);
    }
    let changes: Vec<(&str, &str, &str)> = people.iter().map(|p| (p.id, p.page, p.form)).collect();
    assert_eq!(app.post_webhook(&body_with(&changes)).await.status(), 200);
    assert_eq!(app.wait_for_count(4, Duration::from_secs(5)).await, 4);
    app
}

/// The full names of a listing, in order.
async fn names(app: &TestApp, query: &str) -> Vec<String> {
    app.leads(query).await["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["fields"]["full_name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn lead_listing_filters_by_text_form_page_and_time() {
    let app = app_with_four_leads().await;
    let sorted = |q: &str| {
        let app = &app;
        let q = format!("sort=name&order=asc&{q}");
        async move { names(app, &q).await }
    };
    assert_eq!(sorted("q=ada").await, ["Ada Lovelace"]);
    assert_eq!(
        sorted("q=gmail").await,
        ["Ada Lovelace", "alan turing"],
        "email"
    );
    assert_eq!(
        sorted("q=ada+gmail").await,
        ["Ada Lovelace"],
        "every word must match"
    );
    assert!(sorted("q=ada+navy").await.is_empty());
    assert_eq!(sorted("q=7946").await, ["Ada Lovelace"], "phone");
    assert_eq!(sorted("q=z%C3%BCrich").await, ["Zoë Ström"], "any answer");
    assert_eq!(
        sorted("q=Z%C3%9CRICH").await,
        ["Zoë Ström"],
        "case does not matter"
    );
    assert_eq!(sorted("q=MANCHESTER").await, ["alan turing"]);
    assert_eq!(sorted("q=").await.len(), 4, "an empty q is no filter");

    assert_eq!(
        sorted(&format!("form_id={FORM_A}")).await,
        ["Ada Lovelace", "Zoë Ström"]
    );
    assert_eq!(
        sorted(&format!("page_id={PAGE_B}")).await,
        ["alan turing", "Zoë Ström"]
    );
    assert_eq!(
        sorted(&format!("form_id={FORM_A}&page_id={PAGE_B}")).await,
        ["Zoë Ström"]
    );
    assert_eq!(
        app.leads(&format!("page_id={PAGE_B}")).await["total"],
        2,
        "total counts the filtered set"
    );

    // since/until on the time the person sent the form, RFC 3339 or unix seconds, inclusive.
    assert_eq!(
        sorted("since=2025-02-10T10:00:00Z").await,
        ["alan turing", "Grace Hopper", "Zoë Ström"]
    );
    assert_eq!(
        sorted("since=2025-02-10T11:00:00%2B01:00").await.len(),
        3,
        "an offset is honoured"
    );
    assert_eq!(
        sorted("until=1741600800").await,
        ["Ada Lovelace", "Grace Hopper", "Zoë Ström"]
    );
    assert_eq!(
        sorted("since=1739181600&until=2025-03-10T10:00:00Z").await,
        ["Grace Hopper", "Zoë Ström"]
    );
    assert_eq!(sorted("since=1739181601&until=1741600799").await.len(), 0);
}

#[tokio::test]
async fn lead_listing_sorts_both_ways_and_pages_with_a_total() {
    let app = app_with_four_leads().await;
    assert_eq!(
        names(&app, "sort=name&order=asc").await,
        ["Ada Lovelace", "alan turing", "Grace Hopper", "Zoë Ström"]
    );
    assert_eq!(
        names(&app, "sort=name&order=desc").await,
        ["Zoë Ström", "Grace Hopper", "alan turing", "Ada Lovelace"]
    );
    assert_eq!(
        names(&app, "sort=created_time").await,
        ["alan turing", "Zoë Ström", "Grace Hopper", "Ada Lovelace"],
        "newest first by default"
    );
    assert_eq!(
        names(&app, "sort=created_time&order=asc").await,
        ["Ada Lovelace", "Grace Hopper", "Zoë Ström", "alan turing"]
    );
    let row_ids = |v: Value| -> Vec<i64> {
        v["leads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect()
    };
    // received_at is the order of saving, which the row id follows.
    let asc = row_ids(app.leads("sort=received_at&order=asc").await);
    let mut expected = asc.clone();
    expected.sort();
    assert_eq!(asc, expected);
    let desc = row_ids(app.leads("sort=received_at&order=desc").await);
    assert_eq!(desc, asc.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(row_ids(app.leads("").await), desc, "default: newest first");

    let page = app
        .leads("sort=created_time&order=asc&limit=2&offset=1")
        .await;
    assert_eq!(page["total"], 4);
    assert_eq!(page["leads"].as_array().unwrap().len(), 2);
    assert_eq!(page["leads"][0]["fields"]["full_name"], "Grace Hopper");
    assert_eq!(page["leads"][1]["fields"]["full_name"], "Zoë Ström");
    let last = app
        .leads("sort=created_time&order=asc&limit=2&offset=3")
        .await;
    assert_eq!(last["total"], 4);
    assert_eq!(last["leads"].as_array().unwrap().len(), 1);
    let past = app.leads("limit=2&offset=10").await;
    assert_eq!(past["total"], 4);
    assert!(past["leads"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn bad_listing_parameters_are_a_400_with_a_json_error_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for (query, names) in [
        ("sort=price", "sort"),
        ("order=upwards", "order"),
        ("since=yesterday", "since"),
        ("until=soon", "until"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
    ] {
        let r = app.get_authed(&format!("/api/leads?{query}")).await;
        assert_eq!(r.status(), 400, "{query}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains(names), "{query}: {v}");
    }
}

#[tokio::test]
async fn count_gives_the_count_and_last_id_and_only_healthz_answers_without_a_token() {
    let app = TestApp::spawn().await;
    let empty: Value = app.get_json("/api/leads/count").await;
    assert_eq!(empty, json!({"count": 0, "last_id": 0, "last_event_id": 0}));

    let ids = add_graph_leads(&app, 1, 3);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.post_webhook(&leadgen_body(&refs)).await;
    assert_eq!(app.wait_for_count(3, Duration::from_secs(5)).await, 3);
    let count: Value = app.get_json("/api/leads/count").await;
    let newest = app.leads("limit=1").await["leads"][0]["id"].clone();
    assert_eq!(count["count"], 3);
    assert_eq!(count["last_id"], newest);
    assert_eq!(
        count["last_event_id"], newest,
        "no changes yet: the newest event is a lead"
    );

    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    for path in [
        "/api/leads",
        "/api/leads/count",
        "/api/status",
        "/api/dead-letters",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    }
    let r = app
        .client
        .get(app.url("/api/leads"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_search_of_too_many_words_or_characters_is_a_400_naming_the_limit_everywhere() {
    let app = TestApp::spawn().await;
    let ids = add_graph_leads(&app, 1, 1);
    app.deliver(&[&ids[0]]).await;
    assert_eq!(app.wait_for_count(1, Duration::from_secs(5)).await, 1);
    let thousand_words = vec!["ada"; 1000].join(" ");
    let long_word = "a".repeat(201);
    for path in [
        "/api/leads",
        "/api/stats",
        "/api/leads.csv",
        "/api/report.pdf",
    ] {
        for (q, limit) in [
            (thousand_words.as_str(), "at most 20"),
            (long_word.as_str(), "at most 200"),
        ] {
            let r = app
                .client
                .get(app.url(path))
                .query(&[("q", q)])
                .bearer_auth(DASHBOARD_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{path}");
            let v: Value = r.json().await.unwrap();
            let error = v["error"].as_str().unwrap();
            assert!(
                error.starts_with("q ") && error.contains(limit),
                "{path}: {error}"
            );
        }
        // Up to the limits, a search works.
        let r = app
            .client
            .get(app.url(path))
            .query(&[("q", vec!["a"; 20].join(" "))])
            .bearer_auth(DASHBOARD_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn an_offset_or_limit_out_of_range_is_a_400_never_the_first_page() {
    let app = TestApp::spawn().await;
    let ids = add_graph_leads(&app, 1, 2);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.post_webhook(&leadgen_body(&refs)).await;
    assert_eq!(app.wait_for_count(2, Duration::from_secs(5)).await, 2);
    for (query, named) in [
        ("offset=9223372036854775808", "offset"),
        ("offset=18446744073709551615", "offset"),
        ("offset=99999999999999999999999", "offset"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=18446744073709551616", "limit"),
    ] {
        let r = app.get_authed(&format!("/api/leads?{query}")).await;
        assert_eq!(r.status(), 400, "{query}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"].as_str().unwrap().starts_with(named),
            "{query}: {v}"
        );
    }
    // The largest offset there is: an empty page, not the first one.
    let v = app.leads("offset=9223372036854775807").await;
    assert_eq!(v["leads"], json!([]));
    assert_eq!(v["total"], 2);
}
