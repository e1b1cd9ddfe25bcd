//! `bench framed`: tokio-util's `FramedRead` with `LinesCodec` over a
//! reveille `TcpStream`, reading a stream of lines on loopback, two ways:
//!
//! * **native**: through reveille's own `tokio::io::AsyncRead` (feature
//!   `tokio-io`), which reads into the `ReadBuf`'s uninitialised memory;
//! * **Compat**: through tokio-util's `Compat` over reveille's futures-io
//!   `AsyncRead`, which must zero-fill the unfilled part of each `ReadBuf`
//!   first, since a futures-io read takes a `&mut [u8]`.
//!
//! Unlike the echo benchmark, this runs in one process: the reader on a
//! reveille runtime on this thread, the writer a std thread doing blocking
//! writes of the whole stream. With two cores or more they are pinned apart
//! (reader on core 0, writer on core 1). The two paths alternate within each
//! round, their order swapped each round, and every run checks the count of
//! lines and bytes it decoded.
//!
//! Beside the rates, two counts show the zero-filling:
//!
//! * where valgrind is installed, instructions spent in `memset` per MiB
//!   received, by callgrind, in a child process per path (this binary again,
//!   with `--path`): the zero-filling itself, of every byte of the unfilled
//!   part, including those the kernel then overwrites;
//! * bytes zeroed and left so per MiB received, from one untimed run per
//!   path under a wrapper that compares the `ReadBuf`'s initialised mark
//!   before and after each read: what a read initialised beyond the data it
//!   received. A lower bound of the zero-filling (a read that the kernel
//!   fills to the end leaves nothing past the data), but exact, and with no
//!   valgrind.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reveille::net::TcpStream;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::report::median;

/// What `bench framed` is told.
#[derive(Debug, Clone, Copy)]
pub struct FramedOptions {
    /// Rounds; each runs both paths once.
    pub rounds: usize,
    /// Size of the stream of lines, in MiB.
    pub mib: usize,
    /// Only this path, timed, with no counts (`--path`): what the callgrind
    /// child runs.
    pub only: Option<Path>,
    /// Count `memset`'s instructions under callgrind (off with
    /// `--no-instructions`, or without valgrind).
    pub instructions: bool,
}

impl Default for FramedOptions {
    fn default() -> FramedOptions {
        FramedOptions {
            rounds: 5,
            mib: 64,
            only: None,
            instructions: super::procs::have("valgrind"),
        }
    }
}

/// Stream size of each callgrind child: enough reads (about 130 per MiB)
/// that setup is noise, small enough for valgrind to take seconds.
const CALLGRIND_MIB: usize = 8;

/// The two read paths compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// reveille's own `tokio::io::AsyncRead`.
    Native,
    /// tokio-util's `Compat` over reveille's futures-io `AsyncRead`.
    Compat,
}

impl Path {
    const ALL: [Path; 2] = [Path::Native, Path::Compat];

    fn name(self) -> &'static str {
        match self {
            Path::Native => "reveille tokio-io (native)",
            Path::Compat => "tokio-util Compat over futures-io",
        }
    }

    /// The `--path` argument.
    pub fn arg(self) -> &'static str {
        match self {
            Path::Native => "native",
            Path::Compat => "compat",
        }
    }

    /// Parses a `--path` argument.
    pub fn parse(arg: &str) -> Option<Path> {
        Path::ALL.into_iter().find(|p| p.arg() == arg)
    }
}

/// The stream of lines: `len` bytes or a little more, lines of 0 to 199
/// ASCII letters, each ended by `\n`. Returns it with its line count.
fn lines(len: usize) -> (Vec<u8>, usize) {
    let mut data = Vec::with_capacity(len + 256);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut count = 0;
    while data.len() < len {
        let line_len = (next() % 200) as usize;
        data.extend((0..line_len).map(|i| b'a' + ((i as u64 + count) % 26) as u8));
        data.push(b'\n');
        count += 1;
    }
    (data, count as usize)
}

/// Counts, for a read path, the bytes each read initialised past the data
/// it received (zeroed, and left so). Passes everything else through.
struct ZeroFillCounter<R> {
    inner: R,
    zero_filled: u64,
    reads: u64,
}

impl<R: AsyncRead + Unpin> AsyncRead for ZeroFillCounter<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let initialised = buf.initialized().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        // What the read initialised that is not data: the path wrote it.
        let newly = buf.initialized().len() - initialised;
        let data = buf.filled().len().saturating_sub(initialised).min(newly);
        this.zero_filled += (newly - data) as u64;
        if let Poll::Ready(Ok(())) = polled {
            this.reads += 1;
        }
        polled
    }
}

/// Decodes every line of `reader`; returns (lines, bytes of line content).
async fn drain<R: AsyncRead + Unpin>(
    reader: R,
) -> io::Result<(FramedRead<R, LinesCodec>, usize, usize)> {
    let mut framed = FramedRead::new(reader, LinesCodec::new());
    let (mut count, mut bytes) = (0, 0);
    while let Some(line) = framed.next().await {
        let line = line.map_err(io::Error::other)?;
        count += 1;
        bytes += line.len();
    }
    Ok((framed, count, bytes))
}

/// What one run measured.
struct Run {
    elapsed: Duration,
    /// With the counting wrapper only: bytes zeroed past the data, and
    /// reads.
    counted: Option<(u64, u64)>,
}

/// One connection: a writer thread sends `data`, this thread reads it on
/// `runtime` through `path`, timed from the connect to the EOF.
fn run_once(
    runtime: &reveille::Runtime,
    data: &Arc<Vec<u8>>,
    lines: usize,
    path: Path,
    count: bool,
) -> Run {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        pin_to(1);
        let (mut stream, _) = listener.accept()?;
        stream.write_all(&sent)?;
        // The drop closes it: the reader's EOF.
        io::Result::Ok(())
    });
    let content = data.len() - lines;
    let run = runtime.block_on(async {
        let stream = TcpStream::connect(addr).await?;
        let start = Instant::now();
        let (decoded, counted) = match (path, count) {
            (Path::Native, false) => {
                let (_, n, b) = drain(stream).await?;
                ((n, b), None)
            }
            (Path::Compat, false) => {
                let (_, n, b) = drain(stream.compat()).await?;
                ((n, b), None)
            }
            (Path::Native, true) => {
                let (framed, n, b) = drain(counter(stream)).await?;
                let c = framed.into_inner();
                ((n, b), Some((c.zero_filled, c.reads)))
            }
            (Path::Compat, true) => {
                let (framed, n, b) = drain(counter(stream.compat())).await?;
                let c = framed.into_inner();
                ((n, b), Some((c.zero_filled, c.reads)))
            }
        };
        let elapsed = start.elapsed();
        assert_eq!(
            decoded,
            (lines, content),
            "{}: decoded (lines, bytes) differ from those sent",
            path.name()
        );
        io::Result::Ok(Run { elapsed, counted })
    });
    writer
        .join()
        .expect("writer thread panicked")
        .expect("writer");
    run.expect("read the lines")
}

fn counter<R>(inner: R) -> ZeroFillCounter<R> {
    ZeroFillCounter {
        inner,
        zero_filled: 0,
        reads: 0,
    }
}

/// Pins this thread to `core` when there are two cores or more, so that the
/// reader and the writer do not share one.
fn pin_to(core: usize) {
    if super::procs::cores() < 2 {
        return;
    }
    // SAFETY: `set` is a valid, zeroed cpu_set_t that CPU_SET writes into
    // at an index below its size, and sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!(
                "framed: cannot pin to core {core}: {}",
                io::Error::last_os_error()
            );
        }
    }
}

/// Runs the comparison and returns its markdown.
pub fn framed(options: FramedOptions) -> String {
    pin_to(0);
    let (data, lines) = lines(options.mib << 20);
    let data = Arc::new(data);
    let runtime = reveille::Runtime::new().expect("reveille runtime");
    let mut rates = [Vec::new(), Vec::new()];
    let paths: Vec<usize> = match options.only {
        Some(only) => vec![Path::ALL.iter().position(|&p| p == only).unwrap_or(0)],
        None => (0..Path::ALL.len()).collect(),
    };
    // One untimed run of each path first: the first touches of the
    // allocator's and the kernel's memory are not what is compared.
    for &p in &paths {
        run_once(&runtime, &data, lines, Path::ALL[p], false);
    }
    for round in 0..options.rounds {
        for k in 0..paths.len() {
            let p = paths[(k + round) % paths.len()];
            let path = Path::ALL[p];
            let run = run_once(&runtime, &data, lines, path, false);
            let rate = data.len() as f64 / run.elapsed.as_secs_f64() / 1e6;
            eprintln!(
                "framed round {}/{}: {}: {rate:.0} MB/s",
                round + 1,
                options.rounds,
                path.name()
            );
            rates[p].push(rate);
        }
    }
    if let Some(only) = options.only {
        return format!(
            "{}: {:.0} MB/s median",
            only.name(),
            median(&rates[paths[0]])
        );
    }
    let mib = data.len() as f64 / f64::from(1 << 20);
    let instructions: Vec<Option<Instructions>> = Path::ALL
        .iter()
        .map(|&path| options.instructions.then(|| count_instructions(path)))
        .collect();
    let counts: Vec<(u64, u64)> = Path::ALL
        .iter()
        .map(|&path| {
            run_once(&runtime, &data, lines, path, true)
                .counted
                .expect("a counted run counts")
        })
        .collect();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "### FramedRead + LinesCodec over a reveille TcpStream: {} MiB of lines on loopback \
         ({} rounds)\n",
        options.mib, options.rounds
    );
    let _ = writeln!(
        out,
        "| read path | MB/s median | MB/s per round | memset instructions per MiB \
         | bytes zeroed past the data per MiB | reads per MiB |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (p, path) in Path::ALL.iter().enumerate() {
        let per_round: Vec<String> = rates[p].iter().map(|r| format!("{r:.0}")).collect();
        let (zero_filled, reads) = counts[p];
        let memset = instructions[p].map_or("-".to_owned(), |i| format!("{:.0}", i.memset));
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {memset} | {:.0} | {:.1} |",
            path.name(),
            median(&rates[p]),
            per_round.join(", "),
            zero_filled as f64 / mib,
            reads as f64 / mib
        );
    }
    let _ = writeln!(
        out,
        "\nnative / Compat, medians: {:.3}. MB is 10^6 bytes. memset: callgrind, one run per \
         path of {CALLGRIND_MIB} MiB{}; bytes zeroed past the data, and reads: one untimed run \
         per path.",
        median(&rates[0]) / median(&rates[1]),
        if options.instructions {
            ""
        } else {
            "; not run: no valgrind, or --no-instructions"
        }
    );
    if let [Some(native), Some(compat)] = instructions[..] {
        let _ = writeln!(
            out,
            "\nInstructions per MiB received, whole process (the same line making and writer in \
             both): native {:.0}, Compat {:.0}; Compat costs {:.0} more per MiB, {:.0} of them \
             in memset.",
            native.total,
            compat.total,
            compat.total - native.total,
            compat.memset - native.memset
        );
    }
    out
}

/// Instructions per MiB received, counted by callgrind over a whole run.
#[derive(Debug, Clone, Copy)]
struct Instructions {
    /// In `memset` (every libc variant): the zero-filling. Nothing else in
    /// the process calls it in bulk (the lines are made with `extend`, and
    /// the writer only writes).
    memset: f64,
    /// The whole process: making the lines and writing them cost the same
    /// for both paths, so the difference between paths is the read path's.
    total: f64,
}

/// Runs this binary under callgrind on `path` alone.
fn count_instructions(path: Path) -> Instructions {
    let out = std::env::temp_dir().join(format!(
        "reveille-framed-{}-{}.callgrind",
        path.arg(),
        std::process::id()
    ));
    let exe = std::env::current_exe().expect("this binary's path");
    eprintln!("framed: counting memset under callgrind: {}", path.name());
    let status = std::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(["framed", "--path", path.arg(), "--rounds", "1", "--mib"])
        .arg(CALLGRIND_MIB.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run valgrind");
    assert!(
        status.success(),
        "the callgrind run of {} failed",
        path.name()
    );
    let annotated = std::process::Command::new("callgrind_annotate")
        .arg(&out)
        .output()
        .expect("run callgrind_annotate");
    let _ = std::fs::remove_file(&out);
    let text = String::from_utf8_lossy(&annotated.stdout);
    // "9,125,160 ( 5.90%)  ./string/...:__memset_avx2_unaligned_erms [...]"
    let count = |line: &str| {
        line.split_whitespace()
            .next()
            .and_then(|count| count.replace(',', "").parse::<u64>().ok())
    };
    let memset: u64 = text
        .lines()
        .filter(|line| line.contains(":__memset") && !line.trim_start().starts_with("=>"))
        .filter_map(count)
        .sum();
    let total = text
        .lines()
        .find(|line| line.contains("PROGRAM TOTALS"))
        .and_then(count)
        .unwrap_or_else(|| panic!("no PROGRAM TOTALS in callgrind_annotate's output:\n{text}"));
    Instructions {
        memset: memset as f64 / CALLGRIND_MIB as f64,
        total: total as f64 / CALLGRIND_MIB as f64,
    }
}
