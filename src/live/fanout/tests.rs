use std::time::Duration;

use tokio::net::TcpListener;

use super::*;
use crate::model::Lead;
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

/// A connected pair: the server's end (for the fan-out) and the client's.
async fn pair() -> (Arc<TcpStream>, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (Arc::new(server), client)
}

/// The lead ids in everything the client can read within a moment.
async fn ids_received(client: &mut TcpStream) -> Vec<i64> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(200), client.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn members_get_each_lead_once_and_skip_the_ones_they_have() {
    let hub = Hub::new(16);
    let (_stop, fanout) = start(&hub);
    let (a, mut client_a) = pair().await;
    let (b, mut client_b) = pair().await;
    let _a = fanout.join(a, 0).await.expect("a joins");
    // B already has lead 2 (say, from its replay).
    let _b = fanout.join(b, 2).await.expect("b joins");
    for id in 1..=3 {
        hub.publish(Lead::sample(id));
    }
    assert_eq!(ids_received(&mut client_a).await, [1, 2, 3]);
    assert_eq!(ids_received(&mut client_b).await, [3]);
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
        let (socket, client) = pair().await;
        members.push(fanout.join(socket, 0).await.expect("joins"));
        clients.push(client);
    }
    // One in the middle of a block leaves; the fan-out stops writing to it.
    members.swap_remove(BLOCK + 7).leave();
    let mut gone = clients.swap_remove(BLOCK + 7);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for id in 1..=60 {
        hub.publish(Lead::sample(id));
    }
    let received = futures_util::future::join_all(clients.iter_mut().map(ids_received)).await;
    let all: Vec<i64> = (1..=60).collect();
    for ids in received {
        assert_eq!(ids, all);
    }
    assert_eq!(ids_received(&mut gone).await, [] as [i64; 0]);
}

#[tokio::test]
async fn a_stream_behind_the_fan_out_may_not_join() {
    let hub = Hub::new(16);
    let (_stop, fanout) = start(&hub);
    hub.publish(Lead::sample(1));
    let (socket, mut client) = pair().await;
    // The fan-out has sent lead 1 (to nobody); joining with only lead 0 would skip it.
    assert!(fanout.join(socket.clone(), 0).await.is_none());
    let _member = fanout.join(socket, 1).await.expect("caught up: joins");
    hub.publish(Lead::sample(2));
    assert_eq!(ids_received(&mut client).await, [2]);
}

#[tokio::test]
async fn a_join_given_up_on_leaves_no_member_behind() {
    let hub = Hub::new(16);
    let (_stop, fanout) = start(&hub);
    let (socket, mut client) = pair().await;
    // Polled once (the request goes out), then dropped before the fan-out answers.
    let gave_up = futures_util::FutureExt::now_or_never(fanout.join(socket.clone(), 0));
    assert!(gave_up.is_none(), "answered at once");
    tokio::time::sleep(Duration::from_millis(50)).await;
    hub.publish(Lead::sample(1));
    assert_eq!(ids_received(&mut client).await, [] as [i64; 0]);
    assert_eq!(
        Arc::strong_count(&socket),
        1,
        "the fan-out let go of the socket"
    );
}

#[tokio::test]
async fn a_full_socket_is_handed_back_without_the_lead() {
    let hub = Hub::new(16);
    let (_stop, fanout) = start(&hub);
    let (socket, _client) = pair().await;
    // The client reads nothing: fill its socket until the kernel takes no more.
    let chunk = vec![b':'; 65536];
    while socket.try_write(&chunk).is_ok() {}
    let member = fanout.join(socket, 0).await.expect("joins");
    hub.publish(Lead::sample(1));
    let eviction = handed_back(member).await;
    assert_eq!(eviction.last_sent, 0, "lead 1 was not sent");
    assert!(eviction.rest.is_empty());
    assert!(!eviction.closed);
}

#[tokio::test]
async fn shutdown_hands_every_member_back_as_closed_and_ends_the_fan_out() {
    let hub = Hub::new(16);
    let (stop, fanout) = start(&hub);
    let (socket, _client) = pair().await;
    let member = fanout.join(socket.clone(), 0).await.expect("joins");
    stop.start();
    let eviction = handed_back(member).await;
    assert!(eviction.closed);
    assert!(
        fanout.join(socket, 0).await.is_none(),
        "the fan-out has ended"
    );
}

#[tokio::test]
async fn a_fan_out_that_lags_hands_every_member_back_and_admits_only_the_caught_up() {
    let hub = Hub::new(2);
    let (_stop, fanout) = start(&hub);
    let (socket, _client) = pair().await;
    let member = fanout.join(socket.clone(), 0).await.expect("joins");
    // Published without yielding: the fan-out cannot keep up with a channel of two.
    for id in 1..=5 {
        hub.publish(Lead::sample(id));
    }
    let eviction = handed_back(member).await;
    assert_eq!(
        eviction.last_sent, 0,
        "the fan-out lagged before its first lead"
    );
    assert!(fanout.join(socket.clone(), 4).await.is_none());
    assert!(fanout.join(socket, 5).await.is_some());
}
