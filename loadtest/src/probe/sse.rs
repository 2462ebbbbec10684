//! A server-sent events client over reqwest, parsing the event stream format of the HTML
//! standard (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
//! lines of `field: value`, `:` comments, events dispatched on a blank line; `id`, `event`
//! and multi-line `data` fields.

use futures::{Stream, StreamExt};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    /// `message` when the stream names no type, as the standard says.
    pub event: String,
    pub data: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("connecting: {0}")]
    Connect(String),
    #[error("the server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the stream broke: {0}")]
    Broken(String),
    #[error("nothing arrived for {0:?}, not even a keep-alive")]
    Idle(std::time::Duration),
}

/// Incremental parser: feed bytes as they arrive, take whole events out.
#[derive(Debug, Default)]
pub struct Parser {
    buffer: Vec<u8>,
    id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
}

impl Parser {
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        self.buffer.extend_from_slice(bytes);
        while let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.line(&String::from_utf8_lossy(&line), out);
        }
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                out.push(SseEvent {
                    id: self.id.clone(),
                    event: self.event.take().unwrap_or_else(|| "message".to_string()),
                    data: self.data.join("\n"),
                });
            }
            self.data.clear();
            self.event = None;
            return;
        }
        if line.starts_with(':') {
            return; // comment: keep-alive
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
    }
}

/// Opens `GET url` with a bearer token (and `Last-Event-ID` when given) and returns the
/// stream of events. Non-2xx answers are errors carrying the body, so a test can read them.
pub async fn connect(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    last_event_id: Option<&str>,
) -> Result<impl Stream<Item = Result<SseEvent, SseError>> + Send + 'static, SseError> {
    connect_with_idle_timeout(client, url, token, last_event_id, None).await
}

/// [`connect`], and the stream ends with [`SseError::Idle`] when no bytes at all (events or
/// keep-alive comments) arrive for `idle`: how a client notices a frozen server.
pub async fn connect_with_idle_timeout(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    last_event_id: Option<&str>,
    idle: Option<std::time::Duration>,
) -> Result<impl Stream<Item = Result<SseEvent, SseError>> + Send + 'static, SseError> {
    let mut request = client.get(url).bearer_auth(token).header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.map_err(|e| SseError::Connect(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(SseError::Status { status: status.as_u16(), body });
    }
    let bytes = response.bytes_stream();
    let events = futures::stream::unfold(
        (bytes, Parser::default(), Vec::<SseEvent>::new()),
        move |(mut bytes, mut parser, mut ready)| async move {
            loop {
                if !ready.is_empty() {
                    let event = ready.remove(0);
                    return Some((Ok(event), (bytes, parser, ready)));
                }
                let next = match idle {
                    Some(limit) => match tokio::time::timeout(limit, bytes.next()).await {
                        Ok(next) => next,
                        Err(_) => return Some((Err(SseError::Idle(limit)), (bytes, parser, ready))),
                    },
                    None => bytes.next().await,
                };
                match next {
                    Some(Ok(chunk)) => parser.feed(&chunk, &mut ready),
                    Some(Err(e)) => return Some((Err(SseError::Broken(e.to_string())), (bytes, parser, ready))),
                    None => return None,
                }
            }
        },
    );
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&str]) -> Vec<SseEvent> {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            parser.feed(c.as_bytes(), &mut out);
        }
        out
    }

    #[test]
    fn events_split_across_chunks_are_reassembled() {
        let events = parse(&["id: 7\nev", "ent: diary\ndata: {\"a\"", ":1}\n", "\n"]);
        assert_eq!(events, vec![SseEvent { id: Some("7".into()), event: "diary".into(), data: "{\"a\":1}".into() }]);
    }

    #[test]
    fn comments_are_ignored_and_ids_carry_over() {
        let events = parse(&[": keep-alive\n\nid: 1\ndata: a\n\ndata: b\r\n\r\n"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].id.as_deref(), Some("1"), "the last event id persists per the standard");
        assert_eq!(events[1].event, "message");
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let events = parse(&["data: a\ndata: b\n\n"]);
        assert_eq!(events[0].data, "a\nb");
    }
}
