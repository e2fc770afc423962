//! A fault-injecting TCP proxy on loopback, one in front of every member's
//! client and peer port. Its faults, switched at any time:
//!
//! - `cut`: open connections are closed and new ones refused (a crashed
//!   link: the peer sees resets at once);
//! - `blackhole`: bytes stop moving both ways but connections stay open (a
//!   partition: the peer sees silence until its own timeouts fire);
//! - `delay_ms`: each forwarded chunk waits that long (a slow link);
//! - `reset()`: every open connection is closed once (a flapping link);
//! - `isolate(marker)`: a blackhole for the connections whose first bytes
//!   hold `marker` (case aside), such as etcd's `X-Server-From: <id>` header
//!   on the connections one member opens to another: with it a member is cut
//!   off on the links it dials as well as on the ones it accepts.
//!
//! One thread per direction per connection; each wakes every 50 ms to see
//! the switches, so a fault applies within that. `stop` ends the proxy and
//! its connections.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// The switches of one proxy.
#[derive(Default, Debug)]
pub struct Faults {
    pub cut: AtomicBool,
    pub blackhole: AtomicBool,
    pub delay_ms: AtomicU64,
    generation: AtomicU64,
    stop: AtomicBool,
    /// Lower-case markers of the connections held (see `isolate`).
    isolated: Mutex<Vec<String>>,
    isolating: AtomicBool,
}

impl Faults {
    /// Closes every open connection once.
    pub fn reset(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Holds every connection (open or to come) whose first bytes contain
    /// `marker`, ignoring case.
    pub fn isolate(&self, marker: &str) {
        self.isolated.lock().push(marker.to_ascii_lowercase());
        self.isolating.store(true, Ordering::Relaxed);
    }

    /// Lifts every fault.
    pub fn heal(&self) {
        self.cut.store(false, Ordering::Relaxed);
        self.blackhole.store(false, Ordering::Relaxed);
        self.delay_ms.store(0, Ordering::Relaxed);
        self.isolating.store(false, Ordering::Relaxed);
        self.isolated.lock().clear();
    }

    /// Whether a connection that began with `head` (lower case) is held.
    fn holds(&self, head: &str) -> bool {
        self.blackhole.load(Ordering::Relaxed)
            || (self.isolating.load(Ordering::Relaxed)
                && self.isolated.lock().iter().any(|m| head.contains(m.as_str())))
    }

    /// Ends the proxy: no new connections, open ones closed.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn closing(&self, generation: u64) -> bool {
        self.stop.load(Ordering::Relaxed)
            || self.cut.load(Ordering::Relaxed)
            || self.generation.load(Ordering::Relaxed) != generation
    }
}

/// Starts a proxy from 127.0.0.1:`listen` to 127.0.0.1:`target`.
pub fn start(listen: u16, target: u16) -> std::io::Result<Arc<Faults>> {
    let l = TcpListener::bind(("127.0.0.1", listen))?;
    l.set_nonblocking(true)?;
    let faults = Arc::new(Faults::default());
    let f = faults.clone();
    std::thread::spawn(move || {
        while !f.stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((inbound, _)) => {
                    if f.cut.load(Ordering::Relaxed) {
                        let _ = inbound.shutdown(Shutdown::Both);
                        continue;
                    }
                    let f = f.clone();
                    std::thread::spawn(move || connect(inbound, target, f));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    Ok(faults)
}

fn connect(inbound: TcpStream, target: u16, f: Arc<Faults>) {
    let _ = inbound.set_nonblocking(false);
    // The first bytes, for `isolate`: a request head arrives at once (every
    // protocol here has the client speak first).
    let _ = inbound.set_read_timeout(Some(Duration::from_millis(200)));
    let mut first = [0u8; 2048];
    let n = inbound.peek(&mut first).unwrap_or(0);
    let head: Arc<str> = String::from_utf8_lossy(&first[..n]).to_ascii_lowercase().into();
    let Ok(out) = TcpStream::connect_timeout(&([127, 0, 0, 1], target).into(), Duration::from_secs(1)) else {
        let _ = inbound.shutdown(Shutdown::Both);
        return;
    };
    let generation = f.generation.load(Ordering::Relaxed);
    let pairs = (|| Ok::<_, std::io::Error>([(inbound.try_clone()?, out.try_clone()?), (out, inbound)]))();
    let Ok(pairs) = pairs else { return };
    for (from, to) in pairs {
        let (f, head) = (f.clone(), head.clone());
        std::thread::spawn(move || pump(from, to, &f, &head, generation));
    }
}

/// Copies `from` to `to` until either side closes or the proxy closes them.
fn pump(mut from: TcpStream, mut to: TcpStream, f: &Faults, head: &str, generation: u64) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = to.set_nodelay(true);
    let mut buf = vec![0u8; 64 << 10];
    while !f.closing(generation) {
        if f.holds(head) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let d = f.delay_ms.load(Ordering::Relaxed);
                if d > 0 {
                    std::thread::sleep(Duration::from_millis(d));
                }
                // Held bytes are dropped if the link is cut meanwhile.
                while f.holds(head) && !f.closing(generation) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if f.closing(generation) || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
