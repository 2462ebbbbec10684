//! The harness's own figures while a run goes, in the Prometheus text exposition format
//! (`loadtest run --metrics-listen 127.0.0.1:9464`), so a Prometheus or Grafana the user
//! already runs can watch a long capacity run instead of waiting for its report.
//!
//! Every series carries `scenario`, `strategy` and `round` labels: a new strategy (or round of
//! `--repeat`) is a new series, so counters only ever grow within one. Notification runs
//! (`fanout`, `capacity`) publish their ledger every 2 s: expected, delivered, duplicated,
//! unexpected, not yet received, the causing requests in flight, the p99 of the last
//! [`WINDOW_S`] seconds and a histogram of every delivery's latency. Every kind publishes
//! which strategy runs and since when.
//!
//! `GET /metrics` answers; anything else is 404. One request per connection.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::ledger::{LedgerSummary, p99_of};

/// The p99 gauge covers the deliveries first received in this many whole seconds before the
/// last ledger update.
pub const WINDOW_S: usize = 10;

/// Upper bounds (seconds) of the delivery latency histogram's buckets.
pub const BUCKETS_S: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// What the endpoint shows; shared by the runners (which write) and the server (which reads).
#[derive(Debug, Default)]
pub struct Live {
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone)]
struct State {
    scenario: String,
    strategy: String,
    round: u32,
    /// The round the next strategy's run belongs to: the labels change only when it begins,
    /// so the last run's figures are never shown under the next round's labels.
    next_round: u32,
    /// Unix time (s) the strategy's run started.
    started_unix_s: f64,
    notify: Option<Notify>,
}

/// A notification run's ledger so far.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Notify {
    pub caused: u64,
    pub expected: u64,
    pub delivered: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub not_yet_received: u64,
    pub in_flight: u64,
    /// p99 (µs) and deliveries, received so far, of what was caused in the last [`WINDOW_S`]
    /// whole seconds; 0 when none.
    pub window_p99_us: u64,
    pub window_deliveries: u64,
    /// Cumulative counts per [`BUCKETS_S`] bound, then the count and sum of every timed one.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_s: f64,
}

impl Notify {
    /// The ledger's part of the figures (`caused` and `in_flight` come from the driver).
    pub fn from_summary(s: &LedgerSummary) -> Notify {
        let mut n = Notify {
            expected: s.expected,
            delivered: s.delivered,
            duplicated: s.duplicated,
            unexpected: s.unexpected,
            not_yet_received: s.lost,
            buckets: vec![0; BUCKETS_S.len()],
            ..Notify::default()
        };
        for &us in s.latency_per_second_us.iter().flatten() {
            let secs = us as f64 / 1e6;
            n.count += 1;
            n.sum_s += secs;
            if let Some(i) = BUCKETS_S.iter().position(|b| secs <= *b) {
                n.buckets[i] += 1;
            }
        }
        for i in 1..n.buckets.len() {
            n.buckets[i] += n.buckets[i - 1];
        }
        // The last second is still filling: the window is the WINDOW_S seconds before it.
        let seconds = &s.latency_per_second_us;
        let end = seconds.len().saturating_sub(1);
        let mut window: Vec<u64> = seconds[end.saturating_sub(WINDOW_S)..end].concat();
        n.window_deliveries = window.len() as u64;
        n.window_p99_us = p99_of(&mut window);
        n
    }
}

impl Live {
    pub fn new(scenario: &str) -> Arc<Live> {
        Arc::new(Live { state: Mutex::new(State { scenario: scenario.to_string(), ..State::default() }) })
    }

    /// A strategy's run starts (in the round last set): new series from here.
    pub fn begin(&self, strategy: &str) {
        let mut s = self.lock();
        s.strategy = strategy.to_string();
        s.round = s.next_round;
        s.started_unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        s.notify = None;
    }

    /// The round of `--repeat` the next strategies run in (from their [`Live::begin`] on).
    pub fn round(&self, round: u32) {
        self.lock().next_round = round;
    }

    /// A notification run's ledger: everything but `caused` and `in_flight`, which
    /// [`Live::driver`] keeps.
    pub fn ledger(&self, from: Notify) {
        let mut s = self.lock();
        let n = s.notify.get_or_insert_with(Notify::default);
        *n = Notify { caused: n.caused, in_flight: n.in_flight, ..from };
    }

    /// A notification run's driver: events caused and causing requests in flight.
    pub fn driver(&self, caused: u64, in_flight: u64) {
        let mut s = self.lock();
        let n = s.notify.get_or_insert_with(Notify::default);
        (n.caused, n.in_flight) = (caused, in_flight);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A runner that panicked mid-update leaves figures, not a broken lock, to show.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let s = self.lock().clone();
        let mut out = String::new();
        let labels =
            format!("scenario=\"{}\",strategy=\"{}\",round=\"{}\"", escape(&s.scenario), escape(&s.strategy), s.round);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{labels}}} {value}");
        };
        metric("loadtest_run_started_seconds", "gauge", "Unix time the strategy's run started.", num(s.started_unix_s));
        let Some(n) = &s.notify else { return out };
        let counters: [(&str, &str, u64); 5] = [
            ("loadtest_caused_total", "Events caused (diaries and comments whose request succeeded).", n.caused),
            ("loadtest_expected_total", "Notifications expected: (recipient, cause) pairs.", n.expected),
            ("loadtest_delivered_total", "Expected notifications received at least once.", n.delivered),
            ("loadtest_duplicated_total", "Receipts of an expected notification after its first.", n.duplicated),
            ("loadtest_unexpected_total", "Receipts nobody expected: misrouted or invented.", n.unexpected),
        ];
        for (name, help, v) in counters {
            metric(name, "counter", help, v.to_string());
        }
        metric(
            "loadtest_not_yet_received",
            "gauge",
            "Expected and not received yet: lost if still missing after the drain.",
            n.not_yet_received.to_string(),
        );
        metric(
            "loadtest_requests_in_flight",
            "gauge",
            "Causing requests sent and not answered.",
            n.in_flight.to_string(),
        );
        metric(
            "loadtest_window_p99_seconds",
            "gauge",
            &format!(
                "Delivery latency p99 of the notifications caused in the last {WINDOW_S} whole seconds and received so \
                 far (0: none yet)."
            ),
            num(n.window_p99_us as f64 / 1e6),
        );
        metric(
            "loadtest_window_deliveries",
            "gauge",
            &format!("Deliveries received so far of the notifications caused in the last {WINDOW_S} whole seconds."),
            n.window_deliveries.to_string(),
        );
        let name = "loadtest_delivery_latency_seconds";
        let _ = writeln!(out, "# HELP {name} From the causing request to the first receipt of each delivery.");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, count) in BUCKETS_S.iter().zip(&n.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{}\"}} {count}", num(*bound));
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", n.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", num(n.sum_s));
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", n.count);
        out
    }
}

/// A label value as the exposition format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v}") }
}

/// Binds `addr` and answers `GET /metrics` from `live` until the returned task is aborted;
/// returns the address bound (port 0 picks one). A busy port is an error that names the
/// address and the way out.
pub async fn serve(addr: SocketAddr, live: Arc<Live>) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("--metrics-listen {addr}: cannot listen there ({e}); choose a free port, e.g. 127.0.0.1:0")
    })?;
    let bound = listener.local_addr()?;
    eprintln!("live metrics: http://{bound}/metrics");
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            let live = live.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = 0;
                // The request line and headers, bounded in size and time.
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while got < buf.len() {
                        let n = conn.read(&mut buf[got..]).await?;
                        if n == 0 {
                            break;
                        }
                        got += n;
                        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    std::io::Result::Ok(())
                })
                .await;
                if !matches!(read, Ok(Ok(()))) {
                    return;
                }
                let head = String::from_utf8_lossy(&buf[..got]);
                let mut line = head.lines().next().unwrap_or("").split(' ');
                let (method, path) = (line.next().unwrap_or(""), line.next().unwrap_or(""));
                let (status, body) = match (method, path.split('?').next().unwrap_or("")) {
                    ("GET", "/metrics") => ("200 OK", live.render()),
                    ("GET", _) => ("404 Not Found", "only /metrics is served here\n".to_string()),
                    _ => ("405 Method Not Allowed", "only GET /metrics is served here\n".to_string()),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> LedgerSummary {
        LedgerSummary {
            expected: 10,
            delivered: 7,
            duplicated: 1,
            lost: 3,
            // Seconds 0..12: 0.5 ms each, one slow second (2 s) at second 1, which falls out
            // of the window; second 12 is still filling and not in it either.
            latency_per_second_us: (0..13)
                .map(|s| match s {
                    1 => vec![2_000_000],
                    12 => vec![900_000],
                    _ => vec![500],
                })
                .collect(),
            ..LedgerSummary::default()
        }
    }

    #[test]
    fn a_ledger_becomes_counters_a_window_p99_and_a_cumulative_histogram() {
        let n = Notify::from_summary(&summary());
        assert_eq!((n.expected, n.delivered, n.not_yet_received), (10, 7, 3));
        assert_eq!((n.window_deliveries, n.window_p99_us), (10, 500), "seconds 2..12");
        assert_eq!(n.count, 13);
        assert_eq!(n.buckets[0], 11, "0.5 ms <= 1 ms: eleven of them");
        assert_eq!(*n.buckets.last().unwrap(), 13);
        assert_eq!(n.buckets[BUCKETS_S.iter().position(|b| *b == 1.0).unwrap()], 12, "0.9 s <= 1 s");
    }

    #[test]
    fn the_exposition_has_labels_help_types_and_a_histogram_ending_in_inf() {
        let live = Live::new("notify \"cap\"");
        assert!(!live.render().contains("loadtest_delivered_total"), "nothing of a ledger before one exists");
        live.round(2);
        live.begin("rabbitmq");
        live.driver(40, 3);
        live.ledger(Notify::from_summary(&summary()));
        let text = live.render();
        let labels = r#"scenario="notify \"cap\"",strategy="rabbitmq",round="2""#;
        for line in [
            format!("loadtest_caused_total{{{labels}}} 40"),
            format!("loadtest_delivered_total{{{labels}}} 7"),
            format!("loadtest_not_yet_received{{{labels}}} 3"),
            format!("loadtest_requests_in_flight{{{labels}}} 3"),
            format!("loadtest_window_p99_seconds{{{labels}}} 0.0005"),
            format!("loadtest_delivery_latency_seconds_bucket{{{labels},le=\"0.001\"}} 11"),
            format!("loadtest_delivery_latency_seconds_bucket{{{labels},le=\"+Inf\"}} 13"),
            format!("loadtest_delivery_latency_seconds_count{{{labels}}} 13"),
            "# TYPE loadtest_delivery_latency_seconds histogram".to_string(),
            "# TYPE loadtest_delivered_total counter".to_string(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        // The driver's figures survive a ledger update and the reverse.
        live.ledger(Notify::default());
        assert!(live.render().contains(&format!("loadtest_caused_total{{{labels}}} 40")));
        // A new round does not relabel the last run's figures: only the next run's begin does,
        // and its series starts empty.
        live.round(3);
        assert!(live.render().contains(&format!("loadtest_caused_total{{{labels}}} 40")));
        live.begin("rabbitmq");
        let text = live.render();
        assert!(text.contains(r#"round="3""#) && !text.contains("loadtest_caused_total"), "{text}");
    }

    #[tokio::test]
    async fn the_endpoint_answers_metrics_refuses_other_paths_and_names_a_busy_port() {
        let live = Live::new("s");
        live.round(1);
        live.begin("outbox");
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), live.clone()).await.unwrap();
        let get = |path: &'static str| async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
            let mut answer = String::new();
            c.read_to_string(&mut answer).await.unwrap();
            answer
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.contains("text/plain; version=0.0.4"), "{ok}");
        assert!(ok.contains(r#"loadtest_run_started_seconds{scenario="s",strategy="outbox",round="1"}"#), "{ok}");
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        let err = serve(addr, live).await.expect_err("the port is taken").to_string();
        assert!(err.contains(&format!("--metrics-listen {addr}: cannot listen there")), "{err}");
        task.abort();
    }
}
