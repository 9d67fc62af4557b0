//! The peer: nginx with the Nchan module (Debian's `libnginx-mod-nchan`), an SSE server many
//! people already run, measured in the same run with the same client.
//!
//! One channel; subscribers get its messages as EventSource (`nchan_subscriber eventsource`),
//! from the next message on; a message is published with a `POST`. An ordinary location
//! answers the request a browser-style connection makes before its stream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench::TempDir;
use crate::server::{proc_cpu, proc_rss};

pub(crate) const SUBSCRIBE: &str = "/sub";
pub(crate) const ORDINARY: &str = "/count";
const PUBLISH: &str = "/pub";
const MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

/// nginx with Nchan, running until dropped.
pub(crate) struct Nchan {
    child: Child,
    pub(crate) addr: SocketAddr,
    pub(crate) workers: usize,
    _dir: TempDir,
}

impl Nchan {
    /// Starts nginx with `workers` worker processes; `Err` says why it cannot (nginx or the
    /// module missing), and the row is skipped with that note.
    pub(crate) fn start(parent: Option<PathBuf>, workers: usize) -> Result<Nchan, String> {
        if !Path::new(MODULE).exists() {
            return Err(format!(
                "{MODULE} is missing (apt-get install nginx libnginx-mod-nchan)"
            ));
        }
        let dir = TempDir::new(parent)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let d = dir.0.display();
        // Every path inside the temporary directory; the descriptor limit is the hard limit
        // this process raised its own to, which the child inherits.
        let conf = format!(
            "load_module {MODULE};\n\
             daemon off;\nmaster_process on;\nworker_processes {workers};\nuser root;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 30000; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d};\nproxy_temp_path {d};\nfastcgi_temp_path {d};\n\
               uwsgi_temp_path {d};\nscgi_temp_path {d};\n\
               server {{\n\
                 listen {addr};\n\
                 location = {ORDINARY} {{ default_type application/json; return 200 '{{\"count\":0}}'; }}\n\
                 location = {SUBSCRIBE} {{ nchan_subscriber eventsource; nchan_channel_id leads; \
                   nchan_subscriber_first_message newest; }}\n\
                 location = {PUBLISH} {{ nchan_publisher; nchan_channel_id leads; \
                   nchan_message_buffer_length 16; }}\n\
               }}\n\
             }}\n"
        );
        let conf_path = dir.0.join("nginx.conf");
        std::fs::write(&conf_path, conf).map_err(|e| format!("cannot write nginx.conf: {e}"))?;
        let log = std::fs::File::create(dir.0.join("stderr.log"))
            .map_err(|e| format!("cannot create nginx's log: {e}"))?;
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start nginx: {e}"))?;
        let nchan = Nchan {
            child,
            addr,
            workers,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return Err("nginx did not listen within 5 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nchan)
    }

    /// The master's process id and its workers'.
    fn pids(&self) -> Vec<u32> {
        let master = self.child.id();
        let mut pids = vec![master];
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                if ppid == Some(master) {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// Resident memory of nginx, master and workers.
    pub(crate) fn rss(&self) -> Result<u64, String> {
        self.pids().into_iter().map(proc_rss).sum()
    }

    /// CPU time of nginx so far, master and workers.
    pub(crate) fn cpu(&self) -> Duration {
        self.pids().into_iter().map(proc_cpu).sum()
    }
}

impl Drop for Nchan {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then ends its workers too.
        // SAFETY: kill(2) on our own child's process id.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// A `POST` that publishes `body` to the channel.
pub(crate) fn publish_request(addr: SocketAddr, body: &str) -> Vec<u8> {
    format!(
        "POST {PUBLISH} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
