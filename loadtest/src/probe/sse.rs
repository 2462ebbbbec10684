//! A server-sent events client over reqwest, parsing the event stream format of the HTML
//! standard (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
//! lines of `field: value`, `:` comments, events dispatched on a blank line; `id`, `event`,
//! multi-line `data` and `retry` fields.

use futures::{Stream, StreamExt};

/// One dispatch of the stream: an event, or (with empty `data`) a block that only moved the
/// last event id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The stream's last event ID string at this dispatch: what a browser sends as
    /// `Last-Event-ID` if the connection drops now. It persists across events until the
    /// server sets another.
    pub id: Option<String>,
    /// `message` when the stream names no type, as the standard says; empty with empty data.
    pub event: String,
    /// Empty: a browser fires no event for this dispatch, but its last event id still moves
    /// to `id` (the standard's dispatch step 1 comes before the empty-data check).
    pub data: String,
    /// The reconnection time the server last set with `retry:`, in milliseconds, as of this
    /// dispatch: how long a browser waits before it reconnects.
    pub retry_ms: Option<u64>,
}

impl SseEvent {
    /// Whether a browser would fire an event for this dispatch.
    pub fn fires(&self) -> bool {
        !self.data.is_empty()
    }
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

/// Incremental parser: feed bytes as they arrive, take dispatches out.
#[derive(Debug, Default)]
pub struct Parser {
    buffer: Vec<u8>,
    /// The previous chunk ended in CR: a LF starting this one belongs to that line end.
    after_cr: bool,
    /// At the very start of the stream a byte order mark is skipped.
    started: bool,
    /// The standard's "last event ID buffer": set by `id:` fields, never reset.
    id_buffer: Option<String>,
    /// The last event ID string as of the last dispatch.
    last_event_id: Option<String>,
    event: Option<String>,
    data: Vec<String>,
    /// The standard's "reconnection time", once a `retry:` field set it.
    retry_ms: Option<u64>,
}

impl Parser {
    /// Parses `bytes`; pushes one [`SseEvent`] per event fired, and one with empty data per
    /// dispatch that only changed the last event id.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        let mut bytes = bytes;
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.after_cr = false;
        self.buffer.extend_from_slice(bytes);
        if !self.started {
            const BOM: &[u8] = "\u{FEFF}".as_bytes();
            if self.buffer.len() < BOM.len() && BOM.starts_with(&self.buffer) {
                return; // maybe a mark split over chunks: wait for more
            }
            self.started = true;
            if self.buffer.starts_with(BOM) {
                self.buffer.drain(..BOM.len());
            }
        }
        // Lines end in CRLF, LF or CR alone.
        let mut start = 0;
        let mut i = 0;
        while i < self.buffer.len() {
            let b = self.buffer[i];
            if b == b'\n' || b == b'\r' {
                let line = String::from_utf8_lossy(&self.buffer[start..i]).into_owned();
                let mut next = i + 1;
                if b == b'\r' {
                    match self.buffer.get(next) {
                        Some(b'\n') => next += 1,
                        Some(_) => {}
                        None => self.after_cr = true,
                    }
                }
                self.line(&line, out);
                start = next;
                i = next;
            } else {
                i += 1;
            }
        }
        self.buffer.drain(..start);
    }

    /// The last event ID string as of the last dispatch: what a reconnect sends.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
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
            "id" if !value.contains('\0') => self.id_buffer = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            // Only ASCII digits count; anything else is ignored, as the standard says.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok().or(self.retry_ms);
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let moved = self.last_event_id != self.id_buffer;
        self.last_event_id.clone_from(&self.id_buffer);
        let event = self.event.take();
        if self.data.is_empty() {
            if moved {
                out.push(SseEvent {
                    id: self.last_event_id.clone(),
                    event: String::new(),
                    data: String::new(),
                    retry_ms: self.retry_ms,
                });
            }
            return;
        }
        out.push(SseEvent {
            id: self.last_event_id.clone(),
            event: event.filter(|e| !e.is_empty()).unwrap_or_else(|| "message".to_string()),
            data: std::mem::take(&mut self.data).join("\n"),
            retry_ms: self.retry_ms,
        });
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
        let want = SseEvent { id: Some("7".into()), event: "diary".into(), data: "{\"a\":1}".into(), retry_ms: None };
        assert_eq!(events, vec![want]);
    }

    #[test]
    fn comments_are_ignored_and_ids_carry_over() {
        let events = parse(&[": keep-alive\n\nid: 1\ndata: a\n\ndata: b\r\n\r\n"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].id.as_deref(), Some("1"), "the last event id persists per the standard");
        assert_eq!(events[1].event, "message");
    }

    #[test]
    fn lines_may_end_in_cr_alone_even_across_chunks() {
        let events = parse(&["id: 3\rdata: x\r", "\n\r", "data: y\r\r"]);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!((events[0].id.as_deref(), events[0].data.as_str()), (Some("3"), "x"));
        assert_eq!(events[1].data, "y");
    }

    #[test]
    fn a_block_with_an_id_and_no_data_moves_the_last_event_id_without_firing() {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        parser.feed(b"id: 5\ndata: a\n\nid: 9\n\n: keep-alive\n\n", &mut out);
        assert_eq!(out.len(), 2);
        assert!(out[0].fires() && !out[1].fires());
        assert_eq!(out[1].id.as_deref(), Some("9"));
        assert_eq!(parser.last_event_id(), Some("9"), "a reconnect now sends 9, as a browser would");
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_skipped() {
        let events = parse(&["\u{FEFF}data: a\n\n"]);
        assert_eq!(events[0].data, "a");
    }

    #[test]
    fn retry_sets_the_reconnection_time_and_garbage_does_not() {
        let events = parse(&["retry: 2500\nevent: unavailable\ndata: {}\n\nretry: 3x\ndata: b\n\n"]);
        assert_eq!((events[0].event.as_str(), events[0].retry_ms), ("unavailable", Some(2500)));
        assert_eq!(events[1].retry_ms, Some(2500), "`3x` is not digits: ignored");
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let events = parse(&["data: a\ndata: b\n\n"]);
        assert_eq!(events[0].data, "a\nb");
    }
}
