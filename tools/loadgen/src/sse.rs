//! One `/api/stream` client, with arrivals stamped by the kernel.

use std::io::{self};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::client::{dechunk, find, get_request, Conn};

/// One `/api/stream` client.
pub(crate) struct Sse {
    pub(crate) conn: Conn,
    /// The server answers a fresh connection's stream with a body that runs until the close,
    /// and one on a reused connection (routed through hyper) with chunks.
    pub(crate) chunked: bool,
    pub(crate) text: Vec<u8>,
    /// Kernel receive time of the newest bytes read.
    pub(crate) stamp: SystemTime,
}

/// A lead event as a client sees it.
pub(crate) struct Seen {
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
    /// Opens the stream; returns once the answer's head is read, which the server sends after
    /// it has subscribed to the fan-out.
    pub(crate) async fn open(addr: SocketAddr) -> Result<Sse, String> {
        let mut conn = Conn::connect(addr)
            .await
            .map_err(|e| format!("stream connect: {e}"))?;
        conn.stream
            .write_all(&get_request(addr, "/api/stream"))
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

    /// The next `lead` event; comments and the hello are skipped, anything else is an error.
    pub(crate) async fn next_lead(&mut self) -> Result<Seen, String> {
        loop {
            while let Some(end) = find(&self.text, b"\n\n") {
                let block: Vec<u8> = self.text.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&block);
                let (mut id, mut event, mut data) = (None, "message", "");
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse::<i64>().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v;
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = v;
                    }
                }
                match (event, id) {
                    ("lead", Some(id)) => {
                        let leadgen_id = data
                            .split_once("\"leadgen_id\":\"")
                            .and_then(|(_, rest)| rest.split_once('"'))
                            .map(|(v, _)| v.to_string())
                            .unwrap_or_default();
                        return Ok(Seen {
                            id,
                            leadgen_id,
                            at: self.stamp,
                        });
                    }
                    (_, None) if data.is_empty() => {} // hello, retry hint, keep-alive
                    (other, _) => return Err(format!("unexpected stream event {other:?}")),
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
            if find(&self.text, b"\n\n").is_none() {
                self.fill().await.map_err(|e| format!("stream read: {e}"))?;
            }
        }
    }
}
