use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::model::{Event, Lead};
use crate::shutdown::ShutdownSwitch;

/// A fan-out with `writers` threads; it runs until the returned switch is started or
/// dropped.
fn start_with(hub: &Hub, writers: usize) -> (ShutdownSwitch, Fanout) {
    let (stop, shutdown) = Shutdown::new();
    (stop, Fanout::start(hub, writers, shutdown))
}

fn start(hub: &Hub) -> (ShutdownSwitch, Fanout) {
    start_with(hub, 1)
}

/// The eviction of `member`; panics unless the fan-out sends one within 2 s.
async fn handed_back(member: Membership) -> Eviction {
    tokio::time::timeout(Duration::from_secs(2), member.evicted)
        .await
        .expect("handed back")
        .expect("by the fan-out")
}

/// A connection: the server's halves (the write half for the fan-out) and the client.
struct Pair {
    write: OwnedWriteHalf,
    _read: OwnedReadHalf,
    client: TcpStream,
}

async fn pair() -> Pair {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let (read, write) = server.into_split();
    Pair {
        write,
        _read: read,
        client,
    }
}

/// Joins with `pair`'s socket; panics if refused.
async fn join(fanout: &Fanout, write: OwnedWriteHalf, last_sent: i64) -> Membership {
    match fanout.join(write, last_sent, None).await {
        Ok(m) => m,
        Err(_) => panic!("refused"),
    }
}

/// Everything the client can read within a moment, and whether the server closed.
async fn received(client: &mut TcpStream) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let mut closed = false;
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(200), client.read(&mut buf)).await
    {
        if n == 0 {
            closed = true;
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    (String::from_utf8(got).unwrap(), closed)
}

/// The lead ids in everything the client can read within a moment.
async fn ids_received(client: &mut TcpStream) -> Vec<i64> {
    received(client)
        .await
        .0
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn members_get_each_lead_once_as_a_chunk_and_skip_the_ones_they_have() {
    let hub = Hub::new(16);
    let (_stop, fanout) = start(&hub);
    let mut a = pair().await;
    let mut b = pair().await;
    let _a = join(&fanout, a.write, 0).await;
    // B already has lead 2 (say, from its replay).
    let _b = join(&fanout, b.write, 2).await;
    for id in 1..=3 {
        hub.publish(Event::created(Lead::sample(id)));
    }
    let (text, _) = received(&mut a.client).await;
    let frame = crate::live::frames::lead_frame(&Lead::sample(1));
    assert!(
        text.starts_with(&format!("{:x}\r\nid: 1\n", frame.len())),
        "one chunk per lead: {text:?}"
    );
    let ids: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(ids_received(&mut b.client).await, [3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_share_the_blocks_and_each_member_gets_every_lead_once_in_order() {
    let hub = Hub::new(128);
    let (_stop, fanout) = start_with(&hub, 4);
    let mut members = Vec::new();
    let mut clients = Vec::new();
    // Enough blocks, writers and leads back to back that a round overtaking the one
    // before it on some socket would show.
    for _ in 0..BLOCK * 8 + 5 {
        let p = pair().await;
        members.push(join(&fanout, p.write, 0).await);
        clients.push((p.client, p._read));
    }
    // One in the middle of a block leaves; the fan-out stops writing to it and lets go of
    // its socket.
    members.swap_remove(BLOCK + 7).leave();
    let (mut gone, _) = clients.swap_remove(BLOCK + 7);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for id in 1..=60 {
        hub.publish(Event::created(Lead::sample(id)));
    }
    let received =
        futures_util::future::join_all(clients.iter_mut().map(|(c, _)| ids_received(c))).await;
    let all: Vec<i64> = (1..=60).collect();
    for ids in received {
        assert_eq!(ids, all);
    }
    assert_eq!(received_nothing_but_the_end(&mut gone).await, ());
}

/// Panics unless the client reads no bytes, only the end of the connection.
async fn received_nothing_but_the_end(client: &mut TcpStream) {
    let (text, closed) = received(client).await;
    assert_eq!(text, "");
    assert!(closed, "the socket was let go of");
}

#[tokio::test]
async fn a_stream_behind_the_fan_out_may_not_join_and_gets_its_socket_back() {
    let hub = Hub::new(16);
    let (_stop, fanout) = start(&hub);
    hub.publish(Event::created(Lead::sample(1)));
    let mut p = pair().await;
    // The fan-out has sent lead 1 (to nobody); joining with only lead 0 would skip it.
    let write = match fanout.join(p.write, 0, None).await {
        Err(Some(write)) => write,
        _ => panic!("joined while behind"),
    };
    let _member = join(&fanout, write, 1).await;
    hub.publish(Event::created(Lead::sample(2)));
    assert_eq!(ids_received(&mut p.client).await, [2]);
}

#[tokio::test]
async fn a_join_given_up_on_leaves_no_member_behind() {
    let hub = Hub::new(16);
    let (_stop, fanout) = start(&hub);
    let mut p = pair().await;
    // Polled once (the request goes out), then dropped before the fan-out answers.
    let gave_up = futures_util::FutureExt::now_or_never(fanout.join(p.write, 0, None));
    assert!(gave_up.is_none(), "answered at once");
    tokio::time::sleep(Duration::from_millis(50)).await;
    hub.publish(Event::created(Lead::sample(1)));
    received_nothing_but_the_end(&mut p.client).await;
}

#[tokio::test]
async fn a_full_socket_is_handed_back_with_itself_and_without_the_lead() {
    let hub = Hub::new(16);
    let (_stop, fanout) = start(&hub);
    let p = pair().await;
    // The client reads nothing: fill its socket until the kernel takes no more.
    let chunk = vec![b':'; 65536];
    while p.write.try_write(&chunk).is_ok() {}
    let member = join(&fanout, p.write, 0).await;
    hub.publish(Event::created(Lead::sample(1)));
    let eviction = handed_back(member).await;
    assert_eq!(eviction.last_sent, 0, "lead 1 was not sent");
    assert!(eviction.rest.is_empty());
    assert!(!eviction.closed);
    assert!(
        eviction.write.try_write(b"x").is_err(),
        "the same, full socket"
    );
}

#[tokio::test]
async fn a_member_whose_session_ends_is_handed_back_and_such_a_stream_may_not_join() {
    let hub = Hub::new(16);
    let (_stop, fanout) = start(&hub);
    let (a, b) = (pair().await, pair().await);
    let (session, other) = (SessionEnd::default(), SessionEnd::default());
    let Ok(member) = fanout.join(a.write, 0, Some(session.clone())).await else {
        panic!("refused");
    };
    let Ok(bystander) = fanout.join(b.write, 0, Some(other)).await else {
        panic!("refused");
    };
    session.raise();
    <Hub as crate::auth::EndedSink>::sessions_ended(&hub);
    let eviction = handed_back(member).await;
    assert!(!eviction.closed, "its task says logout");
    assert!(matches!(
        fanout.join(eviction.write, 0, Some(session)).await,
        Err(Some(_))
    ));
    let mut bystander = bystander;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut bystander.evicted)
            .await
            .is_err(),
        "another session's stream stays"
    );
}

#[tokio::test]
async fn shutdown_hands_every_member_back_as_closed_and_ends_the_fan_out() {
    let hub = Hub::new(16);
    let (stop, fanout) = start(&hub);
    let p = pair().await;
    let member = join(&fanout, p.write, 0).await;
    stop.start();
    let eviction = handed_back(member).await;
    assert!(eviction.closed);
    assert!(
        fanout.join(eviction.write, 0, None).await.is_err(),
        "the fan-out has ended"
    );
}

#[tokio::test]
async fn a_fan_out_that_lags_hands_every_member_back_and_admits_only_the_caught_up() {
    let hub = Hub::new(2);
    let (_stop, fanout) = start(&hub);
    let p = pair().await;
    let member = join(&fanout, p.write, 0).await;
    // Published without yielding: the fan-out cannot keep up with a channel of two.
    for id in 1..=5 {
        hub.publish(Event::created(Lead::sample(id)));
    }
    let eviction = handed_back(member).await;
    assert_eq!(
        eviction.last_sent, 0,
        "the fan-out lagged before its first lead"
    );
    let Err(Some(write)) = fanout.join(eviction.write, 4, None).await else {
        panic!("joined while behind");
    };
    assert!(fanout.join(write, 5, None).await.is_ok());
}
