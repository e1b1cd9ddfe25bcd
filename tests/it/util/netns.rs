//! A real, lossy network path for tests: two network namespaces of the test's
//! own, joined by a veth pair, each end rate-limited by `tbf` with a short
//! `pfifo` queue under it, so that bursts overflow the queue, packets drop and
//! TCP retransmits. Threads enter a namespace with `setns(2)` and run their
//! own reveille runtime there.
//!
//! Why the drops are losses TCP must repair: a queue that refuses a whole
//! packet tells the sending stack at once, which keeps the segment and sends
//! it again later without calling it a retransmission (measured: with
//! segmentation offload off, thousands of drops and zero `RetransSegs`). The
//! loss comes from offload being on, as it is on veth by default: TCP hands
//! the device super-packets of up to 64 KB, tbf (whose bucket is smaller)
//! cuts each into MTU-sized segments and queues them one by one, the pfifo
//! tail-drops the ones that do not fit, and the sender is told the packet
//! went out. That is a router's tail drop, seen by TCP only through SACKs
//! and timeouts.
//!
//! Creating namespaces needs root and iproute2 (`ip`, `tc`). Where that is
//! missing, [`NetnsPair::create_or_skip`] says why and the test returns,
//! unless `REVEILLE_REQUIRE_ALL=1` or `REVEILLE_REQUIRE_NETNS=1` (see
//! [`super::skip`]) turns the reason into a failure.
//!
//! Nothing here touches the host's own namespace: the veth pair is created
//! inside the client namespace with its peer placed directly in the server
//! namespace, and addresses and queues are set with `ip -n` / `tc -n`.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The client's address, on its end of the veth pair. A private range, and
/// only ever inside the test's own namespaces.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The server's address, on the other end.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

/// The interface names inside each namespace (a namespace has its own
/// interface names, so these never collide with the host's or another run's).
const CLIENT_IF: &str = "veth-c";
const SERVER_IF: &str = "veth-s";

/// The smallest MTU IPv6 allows: segments are small, so a few hundred
/// kilobytes in flight are hundreds of packets for the queue to drop.
pub const MTU: u32 = 1280;

/// Each direction's rate: 50 Mbit/s moves 32 MiB in about 5.5 s, so a test
/// stays well under 20 s even with retransmissions, while the link is still
/// far slower than what the two TCP stacks would push through an unshaped veth.
pub const RATE: &str = "50mbit";

/// tbf's bucket: a dozen full-size packets. Small enough that the rate, not
/// the bucket, decides when packets leave, and smaller than a 64 KB
/// super-packet, so tbf segments those (see the module docs).
const BURST: &str = "16kb";

/// Packets the `pfifo` under tbf holds. Ten packets (12.5 KB, 2 ms at the
/// rate) is far below what a TCP sender's window reaches, so the queue
/// overflows and drops: the loss the tests are about.
pub const QUEUE_PACKETS: u32 = 10;

/// Two namespaces joined by a shaped veth pair. Dropping it deletes both
/// namespaces (which deletes the veth pair), also when the test panicked.
#[derive(Debug)]
pub struct NetnsPair {
    /// Where the client runs; holds [`CLIENT_IP`].
    pub client: String,
    /// Where the server runs; holds [`SERVER_IP`].
    pub server: String,
    /// Namespaces created so far, which `Drop` deletes.
    created: Vec<String>,
}

impl NetnsPair {
    /// Builds the pair, or returns `None` after saying why it cannot (not
    /// root, no `ip` or `tc`, a kernel without namespaces or tbf); fails the
    /// test instead where skips are forbidden ([`super::skip::skip_netns`]).
    pub fn create_or_skip() -> Option<NetnsPair> {
        match NetnsPair::create() {
            Ok(pair) => Some(pair),
            Err(reason) => {
                super::skip::skip_netns(format!("no network namespaces: {reason}"));
                None
            }
        }
    }

    /// Builds the pair, or says why it cannot.
    pub fn create() -> Result<NetnsPair, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Err(format!(
                "network namespaces need root (running as uid {euid})"
            ));
        }
        for tool in ["ip", "tc"] {
            if let Err(error) = Command::new(tool).arg("-V").output() {
                return Err(format!("cannot run `{tool}` (install iproute2): {error}"));
            }
        }
        // pid, a per-process counter and the clock: parallel tests, parallel
        // runs, and leftovers of a killed run with a recycled pid never meet.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |t| t.subsec_nanos())
        );
        let mut pair = NetnsPair {
            client: format!("reveille-{unique}-client"),
            server: format!("reveille-{unique}-server"),
            created: Vec::new(),
        };
        // From here on, an early return drops `pair`, which deletes whatever
        // was created.
        for ns in [pair.client.clone(), pair.server.clone()] {
            command("ip", &["netns", "add", &ns])?;
            pair.created.push(ns);
        }
        let mtu = MTU.to_string();
        let (client, server) = (pair.client.as_str(), pair.server.as_str());
        #[rustfmt::skip]
        command("ip", &[
            "-n", client, "link", "add", CLIENT_IF, "mtu", &mtu, "type", "veth",
            "peer", "name", SERVER_IF, "netns", server, "mtu", &mtu,
        ])?;
        for (ns, interface, ip) in [
            (client, CLIENT_IF, CLIENT_IP),
            (server, SERVER_IF, SERVER_IP),
        ] {
            command(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{ip}/24"),
                    "dev",
                    interface,
                ],
            )?;
            command("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            command("ip", &["-n", ns, "link", "set", interface, "up"])?;
            #[rustfmt::skip]
            command("tc", &[
                "-n", ns, "qdisc", "add", "dev", interface, "root", "handle", "1:",
                "tbf", "rate", RATE, "burst", BURST, "latency", "50ms",
            ])?;
            #[rustfmt::skip]
            command("tc", &[
                "-n", ns, "qdisc", "add", "dev", interface, "parent", "1:1", "handle", "10:",
                "pfifo", "limit", &QUEUE_PACKETS.to_string(),
            ])?;
        }
        Ok(pair)
    }

    /// Packets dropped by the queues of both ends so far (tbf's root counter
    /// includes the drops of the pfifo under it).
    pub fn dropped_packets(&self) -> u64 {
        [(&self.client, CLIENT_IF), (&self.server, SERVER_IF)]
            .into_iter()
            .map(|(ns, interface)| {
                let shown = command("tc", &["-n", ns, "-s", "qdisc", "show", "dev", interface])
                    .unwrap_or_else(|e| panic!("{e}"));
                root_qdisc_drops(&shown)
                    .unwrap_or_else(|| panic!("no tbf drop counter in:\n{shown}"))
            })
            .sum()
    }

    /// A TCP counter of one namespace: `group` `Tcp` (in /proc/net/snmp,
    /// e.g. `RetransSegs`) or `TcpExt` (/proc/net/netstat, e.g.
    /// `TCPLostRetransmit`). Each namespace counts on its own, from zero.
    pub fn tcp_counter(ns: &str, group: &str, name: &str) -> u64 {
        let file = if group == "Tcp" { "snmp" } else { "netstat" };
        let (group, name) = (group.to_owned(), name.to_owned());
        // /proc/thread-self/net is the calling thread's namespace; /proc/net
        // would be the main thread's.
        let text = spawn_in(ns, "counters", move || {
            std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))
                .expect("read /proc/thread-self/net")
        })
        .join(Instant::now() + Duration::from_secs(10));
        mib_value(&text, &group, &name)
            .unwrap_or_else(|| panic!("no {group} {name} in /proc/net/{file}"))
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in self.created.drain(..) {
            // Deleting the namespace that holds one end of the veth pair
            // deletes both ends. Never panic here: this may run while a test
            // is already unwinding.
            if let Err(error) = command("ip", &["netns", "del", &ns]) {
                eprintln!("cleanup: {error}");
            }
        }
    }
}

/// Runs `program args`, returning its stdout, or an error that names the
/// command and carries its stderr.
fn command(program: &str, args: &[&str]) -> Result<String, String> {
    let shown = || format!("`{program} {}`", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", shown()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            shown(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The `dropped N` of the first (root) qdisc in `tc -s qdisc show` output.
fn root_qdisc_drops(shown: &str) -> Option<u64> {
    let after = &shown[shown.find("dropped ")? + "dropped ".len()..];
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A value of /proc/net/snmp or /proc/net/netstat, where each group is a line
/// of names followed by a line of values, both starting with `Group:`.
fn mib_value(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|line| line.starts_with(&prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let at = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Moves the calling thread into network namespace `ns`. Sockets it creates
/// afterwards live there; other threads are not affected.
fn enter(ns: &str) -> io::Result<()> {
    let file = File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: `file` is an open namespace file, valid for the call; setns
    // with CLONE_NEWNET changes only this thread's network namespace, and
    // touches no memory of ours.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A thread running in a network namespace, with a bounded join.
pub struct NsThread<T> {
    what: String,
    handle: JoinHandle<()>,
    result: Receiver<T>,
}

/// Spawns a thread that enters `ns` and then runs `body` (which usually
/// starts its own reveille runtime).
pub fn spawn_in<T: Send + 'static>(
    ns: &str,
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> NsThread<T> {
    let (send, result) = mpsc::channel();
    let ns = ns.to_owned();
    let what = format!("{what} (in {ns})");
    let handle = std::thread::Builder::new()
        .name(what.clone())
        .spawn(move || {
            enter(&ns).unwrap_or_else(|e| panic!("setns into {ns}: {e}"));
            // The receiver may be gone if the test already failed.
            let _ = send.send(body());
        })
        .expect("spawn thread");
    NsThread {
        what,
        handle,
        result,
    }
}

impl<T> NsThread<T> {
    /// The thread's result; its panic, re-raised; or a panic if it is not
    /// done by `deadline` (a hung reactor cannot hang the test: the thread is
    /// left behind, and the process ends with the test run).
    pub fn join(self, deadline: Instant) -> T {
        let limit = deadline.saturating_duration_since(Instant::now());
        match self.result.recv_timeout(limit) {
            Ok(value) => {
                // Done sending, so the thread is about to end.
                let _ = self.handle.join();
                value
            }
            Err(RecvTimeoutError::Disconnected) => match self.handle.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("{} ended without a result", self.what),
            },
            Err(RecvTimeoutError::Timeout) => {
                panic!("{} did not finish in time", self.what)
            }
        }
    }
}
