//! A server's `/metrics` as Prometheus text exposition
//! (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format): scraped
//! over HTTP and summed by metric name, so a report can say what the servers counted.

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// The label set as written, without braces; empty when there is none.
    pub labels: String,
    pub value: f64,
}

/// The samples of an exposition; comments, blank lines and lines that do not parse are
/// skipped (a scrape is a report's footnote, never a reason to fail a run).
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(sample).collect()
}

fn sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = open + line[open..].rfind('}')?;
            (&line[..open], &line[open + 1..close], &line[close + 1..])
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, "", rest)
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample { name: name.to_string(), labels: labels.to_string(), value })
}

/// The sum of every sample `selector` picks: a name (`notify_pushed_total`, every label set)
/// or a name with labels that must be among the sample's (`notify_stage_seconds_sum{stage="store"}`).
pub fn total(samples: &[Sample], selector: &str) -> f64 {
    let (name, wanted) = match selector.split_once('{') {
        Some((name, labels)) => (name, labels.trim_end_matches('}')),
        None => (selector, ""),
    };
    let wanted: Vec<&str> = wanted.split(',').filter(|l| !l.is_empty()).collect();
    samples
        .iter()
        .filter(|s| s.name == name && wanted.iter().all(|w| s.labels.split(',').any(|l| l == *w)))
        .map(|s| s.value)
        .sum()
}

/// `GET {base}/metrics`, parsed.
pub async fn scrape(http: &reqwest::Client, base: &str) -> Result<Vec<Sample>, String> {
    let response = http.get(format!("{base}/metrics")).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("GET /metrics answered {}", response.status()));
    }
    Ok(parse(&response.text().await.map_err(|e| e.to_string())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_summed_over_their_labels_and_comments_skipped() {
        let text = "# HELP notify_gap_repairs Live notifications ...\n\
                    # TYPE notify_gap_repairs counter\n\
                    notify_gap_repairs_total{strategy=\"rabbitmq\"} 3\n\
                    notify_gap_repairs_total{strategy=\"rabbitmq\",x=\"a}b\"} 4 1700000000\n\
                    http_requests_total 12\n\
                    garbage\n\
                    # EOF\n";
        let samples = parse(text);
        assert_eq!(total(&samples, "notify_gap_repairs_total"), 7.0);
        assert_eq!(total(&samples, "http_requests_total"), 12.0);
        assert_eq!(total(&samples, "absent"), 0.0);
        assert_eq!(samples[1].labels, "strategy=\"rabbitmq\",x=\"a}b\"");
        assert_eq!(total(&samples, "notify_gap_repairs_total{strategy=\"rabbitmq\"}"), 7.0);
        assert_eq!(total(&samples, "notify_gap_repairs_total{x=\"a}b\"}"), 4.0);
        assert_eq!(total(&samples, "notify_gap_repairs_total{strategy=\"outbox\"}"), 0.0);
    }
}
