//! The results of a run, as markdown tables and an SVG chart.

use std::fmt::Write;

use super::counters::Syscalls;
use super::workloads::{Sample, Workload, RAW_MIO, SERVERS, TOKIO_CT};

/// Rows of a chart panel: a label, and one optional value per server.
type ChartRows = Vec<(String, Vec<Option<f64>>)>;
/// A table's rows: a label, and per server the values of each round.
pub(super) type TableRows = Vec<(String, Vec<Option<Vec<f64>>>)>;

/// Everything a run measured. Outer vectors follow the workload order,
/// inner ones [`SERVERS`]; `Vec<f64>` cells hold one value per round.
#[derive(Debug, Default)]
pub struct Results {
    pub date: String,
    pub machine: String,
    pub rounds: usize,
    pub workloads: Vec<Workload>,
    pub samples: Vec<Vec<Vec<Sample>>>,
    pub idle_connections: usize,
    pub idle_rss: Vec<Vec<f64>>,
    pub instructions: Vec<Vec<Option<f64>>>,
    pub syscalls: Vec<Vec<Option<Syscalls>>>,
    pub allocations: Vec<Option<f64>>,
    /// The flood workload on reveille with its task budget off, per round.
    pub unbudgeted_flood: Vec<Sample>,
    /// The servers with worker threads, if they ran.
    pub threaded: Option<super::threads::ThreadedResults>,
    pub notes: Vec<String>,
}

/// The median of `values` (upper median for even counts).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Half the range as a share of the median: the noise a round-to-round
/// comparison must beat.
pub(super) fn spread(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    (max - min) / 2.0 / median(values)
}

pub(super) fn human(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// One table of the single-threaded servers: a row per workload, a column
/// per server, each cell the median with its ratios to tokio
/// `current_thread` and to the raw mio loop.
fn table(
    out: &mut String,
    title: &str,
    note: &str,
    rows: &[(String, Vec<Option<Vec<f64>>>)],
    show_spread: bool,
) {
    let names: Vec<&str> = SERVERS.iter().map(|s| s.name).collect();
    columns_table(
        out,
        title,
        note,
        &names,
        &[(TOKIO_CT, "ct"), (RAW_MIO, "mio")],
        rows,
        show_spread,
    );
}

/// One table: a row per workload, a column per name, each cell the median
/// (with ± half the range of its values if `show_spread`), and for the
/// columns that are not baselines its ratio to each baseline column, as
/// `(0.91× label, ...)`.
pub(super) fn columns_table(
    out: &mut String,
    title: &str,
    note: &str,
    names: &[&str],
    baselines: &[(usize, &str)],
    rows: &[(String, Vec<Option<Vec<f64>>>)],
    show_spread: bool,
) {
    let _ = writeln!(out, "\n### {title}\n\n{note}\n");
    let _ = write!(out, "| workload |");
    for name in names {
        let _ = write!(out, " {name} |");
    }
    let _ = write!(out, "\n|---|");
    for _ in names {
        let _ = write!(out, "---|");
    }
    let _ = writeln!(out);
    for (name, cells) in rows {
        let _ = write!(out, "| {name} |");
        let medians: Vec<Option<f64>> = cells.iter().map(|c| c.as_deref().map(median)).collect();
        for (i, cell) in cells.iter().enumerate() {
            let Some(values) = cell else {
                let _ = write!(out, " n/a |");
                continue;
            };
            let m = median(values);
            let _ = write!(out, " {}", human(m));
            if show_spread && values.len() > 1 {
                let _ = write!(out, " ±{:.0}%", spread(values) * 100.0);
            }
            if !baselines.iter().any(|(b, _)| *b == i) {
                let ratio = |base: Option<f64>| match base {
                    Some(b) if b != 0.0 => format!("{:.2}", m / b),
                    _ => "–".to_owned(),
                };
                let ratios: Vec<String> = baselines
                    .iter()
                    .map(|(b, label)| format!("{}× {label}", ratio(medians[*b])))
                    .collect();
                let _ = write!(out, " ({})", ratios.join(", "));
            }
            let _ = write!(out, " |");
        }
        let _ = writeln!(out);
    }
}

impl Results {
    fn rows(
        &self,
        metric: impl Fn(&Sample) -> f64,
        filter: impl Fn(&Workload) -> bool,
    ) -> TableRows {
        self.workloads
            .iter()
            .zip(&self.samples)
            .filter(|(w, _)| filter(w))
            .map(|(w, per_server)| {
                let cells = per_server
                    .iter()
                    .map(|samples| {
                        (!samples.is_empty()).then(|| samples.iter().map(&metric).collect())
                    })
                    .collect();
                (w.name.to_owned(), cells)
            })
            .collect()
    }

    /// The whole report in markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Measured {} on {}; {} interleaved rounds, server pinned to core 0 and the load \
             generator to core 1; medians, with ± half the round-to-round range, and in \
             parentheses reveille's and async-io's ratio to tokio `current_thread` and to the raw \
             mio loop.",
            self.date, self.machine, self.rounds
        );
        let is_bulk = |w: &Workload| w.mode == "bulk";
        table(
            &mut out,
            "Throughput",
            "Messages per second (bulk: MB/s echoed). The load generator saturates its core \
             first on most rows, so these mostly measure it; the CPU and instruction tables \
             below measure the servers.",
            &self
                .rows(|s| s.messages_per_sec, |w| !is_bulk(w))
                .into_iter()
                .chain(self.rows(|s| s.megabytes_per_sec, is_bulk))
                .collect::<Vec<_>>(),
            true,
        );
        table(
            &mut out,
            "Latency p50 / p99 (µs)",
            "Ping-pong round-trip time seen by the load generator.",
            &self
                .rows(|s| s.p50_us, |w| w.latency)
                .into_iter()
                .map(|(n, c)| (format!("{n}, p50"), c))
                .chain(
                    self.rows(|s| s.p99_us, |w| w.latency)
                        .into_iter()
                        .map(|(n, c)| (format!("{n}, p99"), c)),
                )
                .collect::<Vec<_>>(),
            true,
        );
        if !self.unbudgeted_flood.is_empty() {
            let of = |metric: fn(&Sample) -> f64| {
                median(&self.unbudgeted_flood.iter().map(metric).collect::<Vec<_>>())
            };
            let _ = writeln!(
                out,
                "\nFairness control: the flood row on reveille with its per-task I/O budget \
                 turned off (`Builder::task_budget(None)`): ping-pong p50 {} µs, p99 {} µs, {} \
                 messages/s (medians of {} rounds).",
                human(of(|s| s.p50_us)),
                human(of(|s| s.p99_us)),
                human(of(|s| s.messages_per_sec)),
                self.unbudgeted_flood.len()
            );
        }
        table(
            &mut out,
            "Server CPU per message (µs)",
            "User plus system time of the server process over the counted window \
             (`/proc/PID/stat`), divided by messages (bulk: by 64 KiB echoed).",
            &self.rows(|s| s.cpu_us_per_message, |_| true),
            true,
        );
        let instruction_rows: Vec<_> = self
            .workloads
            .iter()
            .zip(&self.instructions)
            .filter(|(_, cells)| cells.iter().any(Option::is_some))
            .map(|(w, cells)| {
                (
                    w.name.to_owned(),
                    cells.iter().map(|c| c.map(|v| vec![v])).collect(),
                )
            })
            .collect();
        if !instruction_rows.is_empty() {
            table(
                &mut out,
                "User-space instructions per message",
                "cachegrind (`--cache-sim=no`): instructions of a run of 2M messages minus a run \
                 of M, divided by M, so start-up and connection setup cancel.",
                &instruction_rows,
                false,
            );
        }
        let syscall_rows: Vec<_> = self
            .workloads
            .iter()
            .zip(&self.syscalls)
            .filter(|(_, cells)| cells.iter().any(Option::is_some))
            .map(|(w, cells)| {
                (
                    w.name.to_owned(),
                    cells
                        .iter()
                        .map(|c| c.as_ref().map(|s| vec![s.per_message]))
                        .collect(),
                )
            })
            .collect();
        if !syscall_rows.is_empty() {
            table(
                &mut out,
                "Syscalls per message",
                "`perf stat -e raw_syscalls:sys_enter`, counting only while the load generator's \
                 measured window is open (`perf stat --control`), divided by the messages echoed \
                 in it; the median of three windows, each in a fresh server, with that window's \
                 breakdown.",
                &syscall_rows,
                false,
            );
            let _ = writeln!(out, "\nBreakdown (per message):\n");
            for (w, cells) in self.workloads.iter().zip(&self.syscalls) {
                for (server, cell) in SERVERS.iter().zip(cells) {
                    if let Some(s) = cell {
                        let parts: Vec<String> = s
                            .by_name
                            .iter()
                            .map(|(name, n)| format!("{name} {n:.2}"))
                            .collect();
                        let _ =
                            writeln!(out, "- {}, {}: {}", w.name, server.name, parts.join(", "));
                    }
                }
            }
        }
        if self.allocations.iter().any(Option::is_some) {
            let _ = writeln!(
                out,
                "\n### Heap allocations per message (reveille)\n\nA counting global allocator in \
                 the reveille server, snapshots at the start and end of the counted window.\n"
            );
            for (w, a) in self.workloads.iter().zip(&self.allocations) {
                if let Some(a) = a {
                    let _ = writeln!(out, "- {}: {a:.4}", w.name);
                }
            }
        }
        if !self.idle_rss.is_empty() {
            let row = vec![(
                format!("{} idle connections", self.idle_connections),
                self.idle_rss
                    .iter()
                    .map(|v| (!v.is_empty()).then(|| v.clone()))
                    .collect(),
            )];
            table(
                &mut out,
                "Server RSS per idle connection (bytes)",
                "RSS after the connections each did one round trip, minus RSS before, divided by \
                 the count. Source addresses spread over 127.0.0.x.",
                &row,
                true,
            );
        }
        if let Some(threaded) = &self.threaded {
            threaded.markdown(&mut out);
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nNote: {note}");
        }
        out
    }

    /// A bar chart of each server's ratio to tokio `current_thread`, per
    /// workload, for throughput, server CPU per message and instructions
    /// per message.
    pub fn svg(&self) -> String {
        let colors = ["#d1495b", "#00798c", "#66a182", "#edae49", "#30638e"];
        let mut panels: Vec<(String, ChartRows)> = Vec::new();
        let ratio_rows = |metric: &dyn Fn(&Sample) -> f64| -> ChartRows {
            self.workloads
                .iter()
                .zip(&self.samples)
                .map(|(w, per_server)| {
                    let medians: Vec<Option<f64>> = per_server
                        .iter()
                        .map(|s| {
                            (!s.is_empty())
                                .then(|| median(&s.iter().map(metric).collect::<Vec<_>>()))
                        })
                        .collect();
                    let base = medians[TOKIO_CT];
                    (
                        w.name.to_owned(),
                        medians.iter().map(|m| Some(m.as_ref()? / base?)).collect(),
                    )
                })
                .collect()
        };
        panels.push((
            "throughput ÷ tokio ct (higher is better)".into(),
            ratio_rows(&Sample::rate),
        ));
        panels.push((
            "server CPU per message ÷ tokio ct (lower is better)".into(),
            ratio_rows(&|s| s.cpu_us_per_message),
        ));
        let instr: ChartRows = self
            .workloads
            .iter()
            .zip(&self.instructions)
            .filter(|(_, c)| c.iter().any(Option::is_some))
            .map(|(w, cells)| {
                let base = cells[TOKIO_CT];
                (
                    w.name.to_owned(),
                    cells.iter().map(|c| Some(c.as_ref()? / base?)).collect(),
                )
            })
            .collect();
        if !instr.is_empty() {
            panels.push((
                "user-space instructions per message ÷ tokio ct (lower is better)".into(),
                instr,
            ));
        }

        let width = 960.0;
        let left = 200.0;
        let bar_h = 9.0;
        let group_gap = 10.0;
        let panel_gap = 50.0;
        let mut y = 60.0;
        let mut body = String::new();
        for (title, rows) in &panels {
            let max = rows
                .iter()
                .flat_map(|(_, v)| v.iter().flatten())
                .copied()
                .fold(1.5f64, f64::max);
            let scale = (width - left - 60.0) / max;
            let _ = writeln!(
                body,
                r#"<text x="10" y="{y}" font-weight="bold">{title}</text>"#
            );
            y += 12.0;
            let top = y;
            for (name, values) in rows {
                let _ = writeln!(
                    body,
                    r#"<text x="{}" y="{}" text-anchor="end">{name}</text>"#,
                    left - 8.0,
                    y + bar_h * values.len() as f64 / 2.0 + 4.0
                );
                for (i, v) in values.iter().enumerate() {
                    if let Some(v) = v {
                        let _ = writeln!(
                            body,
                            r#"<rect x="{left}" y="{y}" width="{:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}" font-size="9">{v:.2}</text>"#,
                            v * scale,
                            bar_h - 1.0,
                            colors[i % colors.len()],
                            left + v * scale + 3.0,
                            y + bar_h - 1.5
                        );
                    }
                    y += bar_h;
                }
                y += group_gap;
            }
            let one = left + scale;
            let _ = writeln!(
                body,
                r#"<line x1="{one}" y1="{top}" x2="{one}" y2="{y}" stroke="black" stroke-dasharray="4 3"/><text x="{one}" y="{}" font-size="9" text-anchor="middle">1.0</text>"#,
                y + 10.0
            );
            y += panel_gap;
        }
        let mut legend = String::new();
        for (i, server) in SERVERS.iter().enumerate() {
            let x = 10.0 + i as f64 * 130.0;
            let _ = write!(
                legend,
                r#"<rect x="{x}" y="22" width="12" height="12" fill="{}"/><text x="{}" y="32">{}</text>"#,
                colors[i],
                x + 16.0,
                server.name
            );
        }
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="14" font-size="12">reveille echo benchmark, {} ({}), ratios to tokio current_thread</text>
{legend}
{body}</svg>
"#,
            self.date, self.machine
        )
    }
}
