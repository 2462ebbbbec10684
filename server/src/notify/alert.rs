//! Alerts for dead-lettered notifications: a Slack-compatible webhook (`{"text": "..."}`),
//! posted with a timeout and retried with backoff.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AlertSink {
    client: reqwest::Client,
    url: url::Url,
    retries: u32,
}

impl AlertSink {
    pub fn new(url: url::Url, timeout: Duration, retries: u32) -> anyhow::Result<Self> {
        Ok(Self { client: reqwest::Client::builder().timeout(timeout).build()?, url, retries })
    }

    /// Posts `text`; Ok once the webhook answered 2xx.
    pub async fn post(&self, text: &str) -> Result<(), String> {
        let body = serde_json::json!({ "text": text });
        let mut delay = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 0..=self.retries {
            match self.client.post(self.url.clone()).json(&body).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => last = format!("webhook answered {}", r.status()),
                Err(e) => last = format!("webhook unreachable: {e}"),
            }
            if attempt < self.retries {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
        Err(last)
    }
}
