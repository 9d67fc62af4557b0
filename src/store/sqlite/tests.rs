use std::sync::mpsc;

use super::state::{get_state, set_state};
use super::*;
use crate::model::{Lead, LeadFilter, NewLead, SortKey};

/// A store on a fresh file, whose sink passes every committed event's lead to the receiver
/// (an erasure has none).
fn open(dir: &tempfile::TempDir) -> (Sqlite, mpsc::Receiver<Lead>) {
    let (tx, rx) = mpsc::channel();
    let sink = move |events: Vec<crate::model::Event>| {
        for lead in events.into_iter().filter_map(|event| event.lead) {
            let _ = tx.send(lead);
        }
    };
    (Sqlite::open(&dir.path().join("t.db"), sink).unwrap(), rx)
}

#[tokio::test]
async fn a_lead_is_saved_once_and_published_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, rx) = open(&dir);
    let first = store.save_lead(NewLead::sample("10", "Ada")).await.unwrap();
    let again = store.save_lead(NewLead::sample("10", "Ada")).await.unwrap();
    assert!(first.is_some());
    assert!(again.is_none());
    assert_eq!(rx.recv().unwrap().id, first.unwrap().id);
    assert!(
        rx.try_recv().is_err(),
        "the duplicate must not be published"
    );
    assert_eq!(store.count().await.unwrap().count, 1);
}

#[tokio::test]
async fn a_failed_operation_leaves_no_half_write_while_its_batch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _rx) = open(&dir);
    // Queued together, so the writer takes them into one transaction.
    let half = store.write(|c| {
        set_state(c, "half", "written")?;
        c.execute("INSERT INTO no_such_table VALUES (1)", [])?;
        Ok(Written::value(()))
    });
    let whole = store.write(|c| {
        set_state(c, "whole", "written")?;
        Ok(Written::value(()))
    });
    let (half, whole) = tokio::join!(half, whole);
    assert!(half.is_err());
    whole.unwrap();
    assert_eq!(store.read(|c| get_state(c, "half")).await.unwrap(), None);
    assert_eq!(
        store
            .read(|c| get_state(c, "whole"))
            .await
            .unwrap()
            .as_deref(),
        Some("written")
    );
}

#[tokio::test]
async fn a_failing_operation_does_not_sink_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _rx) = open(&dir);
    let bad = store.write(|c| {
        c.execute("INSERT INTO no_such_table VALUES (1)", [])?;
        Ok(Written::value(()))
    });
    let good = store.save_lead(NewLead::sample("11", "Bob"));
    let (bad, good) = tokio::join!(bad, good);
    assert!(bad.is_err());
    assert!(good.unwrap().is_some());
}

/// How many leads a search for `q` finds.
async fn found(store: &Sqlite, q: &str) -> i64 {
    let filter = LeadFilter {
        q: Some(q.into()),
        ..Default::default()
    };
    store.list_leads(filter, 10, 0).await.unwrap().1
}

#[tokio::test]
async fn search_matches_every_word_and_escapes_wildcards() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _rx) = open(&dir);
    store
        .save_lead(NewLead::sample("1", "Ada Lovelace"))
        .await
        .unwrap();
    store
        .save_lead(NewLead::sample("2", "Zoë Ström"))
        .await
        .unwrap();
    store
        .save_lead(NewLead::sample("3", "100% real"))
        .await
        .unwrap();
    assert_eq!(found(&store, "ada love").await, 1);
    assert_eq!(found(&store, "STRÖM").await, 1);
    assert_eq!(found(&store, "%").await, 1);
    assert_eq!(found(&store, "ada zoë").await, 0);
    // Form names fold beyond ASCII too ("ÉTÉ" finds the form "Été").
    store
        .write(|c| {
            c.execute(
                "INSERT INTO forms (form_id, name, updated_ms) VALUES ('2', 'Offre d''Été', 0)",
                [],
            )?;
            Ok(Written::value(()))
        })
        .await
        .unwrap();
    assert_eq!(found(&store, "ÉTÉ").await, 3);
    assert_eq!(found(&store, "été ström").await, 1);
}

#[tokio::test]
async fn a_walk_in_batches_meets_every_lead_once_in_listing_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _rx) = open(&dir);
    // More than two batches, with ties in both sort keys (and names differing only in case).
    let leads = (0..2_345)
        .map(|i| {
            let mut lead = NewLead::sample(
                &format!("{}", 10_000 + i),
                ["ada", "Ada", "Zoë", "bo"][i % 4],
            );
            lead.created_time =
                chrono::DateTime::from_timestamp(1_700_000_000 + (i as i64 % 7), 0).unwrap();
            lead
        })
        .collect();
    store.save_leads(leads).await.unwrap();
    for sort in [SortKey::ReceivedAt, SortKey::CreatedTime, SortKey::Name] {
        for ascending in [true, false] {
            let filter = LeadFilter {
                sort,
                ascending,
                ..LeadFilter::default()
            };
            let (listed, total) = store.list_leads(filter.clone(), 5_000, 0).await.unwrap();
            assert_eq!(total, 2_345);
            let walked = store
                .each_lead(filter, Vec::new(), |ids, lead| {
                    ids.push(lead.id);
                    Ok::<(), std::convert::Infallible>(())
                })
                .await
                .unwrap();
            let listed: Vec<i64> = listed.iter().map(|l| l.id).collect();
            assert_eq!(walked, listed, "{sort:?} ascending={ascending}");
        }
    }
}
