//! One SSE stream client, with arrivals stamped by the kernel: of leadstream's `/api/stream`,
//! or of the peer's (Nchan), on a fresh or a browser-style connection.

use std::io::{self};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::client::{dechunk, find, get_request, stream_request, Conn};

/// Which server a stream client talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peer {
    Leadstream,
    /// nginx with the Nchan module (`crate::nchan`): the same client against a known SSE
    /// server.
    Nchan,
}

impl Peer {
    /// The stream's path, and an ordinary request a page makes before its stream.
    fn paths(self) -> (&'static str, &'static str) {
        match self {
            Peer::Leadstream => ("/api/stream", "/api/leads/count"),
            Peer::Nchan => (crate::nchan::SUBSCRIBE, crate::nchan::ORDINARY),
        }
    }
}

/// How a stream's connection is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// A connection of its own, as curl opens it.
    Fresh,
    /// As a browser's EventSource or a proxy's pool: on a keep-alive connection that carried
    /// an ordinary request first.
    Browser,
}

impl Via {
    pub(crate) fn words(self) -> &'static str {
        match self {
            Via::Fresh => "fresh connections",
            Via::Browser => "browser-style connections",
        }
    }
}

/// One stream client.
pub(crate) struct Sse {
    pub(crate) conn: Conn,
    /// Whether the answer came in chunks (leadstream's HTTP/1.1 streams) or runs until the
    /// close.
    pub(crate) chunked: bool,
    /// Stream bytes not yet parsed into lines.
    pub(crate) text: Vec<u8>,
    /// Kernel receive time of the newest bytes read.
    pub(crate) stamp: SystemTime,
    /// The event being read: its id, name and data.
    event: (Option<String>, String, Option<String>),
}

/// A lead event as a client sees it.
pub(crate) struct Seen {
    /// Leadstream's row id (0 from Nchan, whose ids are not numbers).
    pub(crate) id: i64,
    pub(crate) leadgen_id: String,
    /// When its last byte reached this client's socket (kernel receive timestamp).
    pub(crate) at: SystemTime,
}

/// Asks the kernel to stamp every received segment with its arrival time (`SO_TIMESTAMPNS`).
///
/// Arrival is what "the subscriber received the event" means; the moment this process gets
/// round to reading 10,000 sockets is the client's own business (a browser does it on its own
/// machine), and timing that would measure the load generator, not the server.
pub(crate) fn stamp_arrivals(stream: &TcpStream) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a c_int option value of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One `recvmsg` into the spare capacity of `buf`: bytes read, and the receive timestamp of
/// the newest of them when the kernel gave one.
pub(crate) fn recv_stamped(
    fd: RawFd,
    buf: &mut Vec<u8>,
) -> io::Result<(usize, Option<SystemTime>)> {
    let spare = buf.spare_capacity_mut();
    let mut iov = libc::iovec {
        iov_base: spare.as_mut_ptr() as *mut libc::c_void,
        iov_len: spare.len(),
    };
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: iov points at `spare`, control at `control`, both outliving the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the first n bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    let mut at = None;
    // SAFETY: the CMSG_* walk stays within msg_controllen, as the kernel filled it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let t: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                at = Some(UNIX_EPOCH + Duration::new(t.tv_sec as u64, t.tv_nsec as u32));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n, at))
}

impl Sse {
    /// Opens a stream from `peer` on a connection opened the way `via` says; returns once the
    /// answer's head is read, which leadstream sends after it has subscribed.
    pub(crate) async fn open(addr: SocketAddr, peer: Peer, via: Via) -> Result<Sse, String> {
        let (stream_path, ordinary) = peer.paths();
        let mut conn = Conn::connect(addr)
            .await
            .map_err(|e| format!("stream connect: {e}"))?;
        if via == Via::Browser {
            match conn.roundtrip(&get_request(addr, ordinary)).await {
                Ok((200, _)) => {}
                other => return Err(format!("{ordinary} answered {:?}", other.map(|r| r.0))),
            }
        }
        conn.stream
            .write_all(&stream_request(addr, stream_path))
            .await
            .map_err(|e| format!("stream request: {e}"))?;
        let head = conn
            .read_head()
            .await
            .map_err(|e| format!("stream answer: {e}"))?;
        if head.status != 200 || !head.content_type.starts_with("text/event-stream") {
            return Err(format!(
                "stream answered {} {}",
                head.status, head.content_type
            ));
        }
        stamp_arrivals(&conn.stream).map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
        Ok(Sse {
            chunked: head.chunked,
            conn,
            text: Vec::with_capacity(1024),
            stamp: SystemTime::now(),
            event: (None, String::new(), None),
        })
    }

    /// Reads what the socket holds, keeping its arrival time.
    pub(crate) async fn fill(&mut self) -> io::Result<()> {
        self.conn.buf.reserve(4096);
        loop {
            self.conn.stream.readable().await?;
            let fd = self.conn.stream.as_raw_fd();
            let buf = &mut self.conn.buf;
            match self
                .conn
                .stream
                .try_io(Interest::READABLE, || recv_stamped(fd, buf))
            {
                Ok((0, _)) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok((_, at)) => {
                    self.stamp = at.unwrap_or_else(SystemTime::now);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next lead (leadstream's `event: lead` or `event: update`, Nchan's unnamed
    /// message). Comments and the
    /// `retry:` line are read as EventSource reads them (they dispatch nothing); any other
    /// event, or an empty one, is an error.
    pub(crate) async fn next_lead(&mut self) -> Result<Seen, String> {
        loop {
            while let Some(end) = find(&self.text, b"\n") {
                let line: Vec<u8> = self.text.drain(..end + 1).collect();
                let line = String::from_utf8_lossy(&line[..end]);
                let line = line.trim_end_matches('\r');
                if line.is_empty() {
                    let (id, name, data) = std::mem::take(&mut self.event);
                    match (name.as_str(), data) {
                        ("" | "lead" | "update" | "message", Some(data)) => {
                            let leadgen_id = data
                                .split_once("\"leadgen_id\":\"")
                                .and_then(|(_, rest)| rest.split_once('"'))
                                .map(|(v, _)| v.to_string())
                                .unwrap_or_default();
                            return Ok(Seen {
                                id: id.and_then(|i| i.parse().ok()).unwrap_or(0),
                                leadgen_id,
                                at: self.stamp,
                            });
                        }
                        // Nchan sends a comment and a blank line on connecting.
                        ("", None) if id.is_none() => {}
                        (other, _) => {
                            return Err(format!(
                                "unexpected stream event {other:?} (an empty one?)"
                            ))
                        }
                    }
                    continue;
                }
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value).to_string();
                match field {
                    "id" => self.event.0 = Some(value),
                    "event" => self.event.1 = value,
                    "data" => self.event.2 = Some(value),
                    _ => {} // retry
                }
            }
            if self.chunked {
                let ended =
                    dechunk(&mut self.conn.buf, &mut self.text).map_err(|e| e.to_string())?;
                if ended {
                    return Err("the server ended the stream".into());
                }
            } else {
                self.text.append(&mut self.conn.buf);
            }
            if find(&self.text, b"\n").is_none() {
                self.fill().await.map_err(|e| format!("stream read: {e}"))?;
            }
        }
    }
}
