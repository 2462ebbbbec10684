//! A STOMP 1.2 client over WebSocket (tokio-tungstenite), for the chat scenarios and tests:
//! CONNECT with a token, SUBSCRIBE (optionally resuming after a seq), SEND with receipts and
//! idempotency keys, and frames read as they arrive. Frames are the workspace's `stomp` codec;
//! the interop tests hold it to independent clients (stompjs, stomp.py).

use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use stomp::{Command, Decoder, Frame, Limits, Version, encode};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, thiserror::Error)]
pub enum StompError {
    #[error("connecting to {url}: {cause}")]
    Connect { url: String, cause: String },
    #[error("the server answered CONNECT with ERROR: {message}: {detail}")]
    Refused { message: String, detail: String },
    #[error("the server sent {0} where CONNECTED was expected")]
    Unexpected(String),
    #[error("the connection closed")]
    Closed,
    #[error("websocket: {0}")]
    Socket(String),
    #[error("a frame from the server is malformed: {0}")]
    Frame(#[from] stomp::FrameError),
    #[error("nothing arrived within {0:?}")]
    Timeout(Duration),
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `ws://host:port/ws/chat`.
    pub url: String,
    /// The session token, sent as `passcode`.
    pub token: String,
    /// Offered in the upgrade; empty offers none.
    pub subprotocols: Vec<String>,
    /// `heart-beat: cx,cy` in milliseconds.
    pub heartbeat: (u64, u64),
    /// How long to wait for CONNECTED.
    pub timeout: Duration,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            subprotocols: vec!["v12.stomp".into()],
            heartbeat: (0, 0),
            timeout: Duration::from_secs(10),
        }
    }
}

/// What the server said in CONNECTED, and the sub-protocol it chose.
#[derive(Debug, Clone)]
pub struct Connected {
    pub frame: Frame,
    pub subprotocol: Option<String>,
}

/// The sending half of a connection.
pub struct StompWriter {
    sink: SplitSink<Socket, Message>,
    version: Version,
}

/// The receiving half of a connection.
pub struct StompReader {
    stream: SplitStream<Socket>,
    decoder: Decoder,
    /// When each WebSocket message holding only line ends (a heart-beat) arrived; the last
    /// [`HEARTBEATS_KEPT`].
    heartbeats: std::collections::VecDeque<std::time::Instant>,
}

const HEARTBEATS_KEPT: usize = 1_000;

/// Opens the WebSocket only, offering `opts.subprotocols`: nothing is sent yet.
pub async fn open(opts: &ConnectOptions) -> Result<(StompWriter, StompReader), StompError> {
    open_with_subprotocol(opts).await.map(|(w, r, _)| (w, r))
}

async fn open_with_subprotocol(
    opts: &ConnectOptions,
) -> Result<(StompWriter, StompReader, Option<String>), StompError> {
    let connect_err = |cause: String| StompError::Connect { url: opts.url.clone(), cause };
    let mut request = opts.url.as_str().into_client_request().map_err(|e| connect_err(e.to_string()))?;
    if !opts.subprotocols.is_empty() {
        let value = opts.subprotocols.join(", ");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            value.parse().map_err(|_| connect_err(format!("bad sub-protocol list {value}")))?,
        );
    }
    // Nagle's algorithm off, as browsers do for WebSockets: a frame is a small write.
    let connecting = tokio_tungstenite::connect_async_with_config(request, None, true);
    let (socket, response) = tokio::time::timeout(opts.timeout, connecting)
        .await
        .map_err(|_| connect_err("timed out".into()))?
        .map_err(|e| connect_err(e.to_string()))?;
    let subprotocol =
        response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(str::to_string);
    let (sink, stream) = socket.split();
    let writer = StompWriter { sink, version: Version::V1_2 };
    let reader = StompReader { stream, decoder: Decoder::new(Limits::default()), heartbeats: Default::default() };
    Ok((writer, reader, subprotocol))
}

/// Opens a WebSocket, sends CONNECT and waits for CONNECTED.
pub async fn connect(opts: &ConnectOptions) -> Result<(StompWriter, StompReader, Connected), StompError> {
    let (mut writer, mut reader, subprotocol) = open_with_subprotocol(opts).await?;
    let connect = Frame::new(Command::Connect)
        .header("accept-version", "1.2")
        .header("host", "localhost")
        .header("passcode", opts.token.clone())
        .header("heart-beat", format!("{},{}", opts.heartbeat.0, opts.heartbeat.1));
    writer.send(&connect).await?;
    let frame = reader.next_within(opts.timeout).await?.ok_or(StompError::Closed)?;
    match frame.command {
        Command::Connected => Ok((writer, reader, Connected { frame, subprotocol })),
        Command::Error => Err(StompError::Refused {
            message: frame.get("message").unwrap_or_default().to_string(),
            detail: String::from_utf8_lossy(&frame.body).into_owned(),
        }),
        other => Err(StompError::Unexpected(other.to_string())),
    }
}

impl StompWriter {
    pub async fn send(&mut self, frame: &Frame) -> Result<(), StompError> {
        let mut out = Vec::with_capacity(128 + frame.body.len());
        encode(frame, self.version, &mut out);
        self.send_raw(out).await
    }

    /// Sends bytes as one WebSocket message: text when they are UTF-8, else binary.
    pub async fn send_raw(&mut self, bytes: Vec<u8>) -> Result<(), StompError> {
        let message = match String::from_utf8(bytes) {
            Ok(text) => Message::Text(text.into()),
            Err(e) => Message::Binary(e.into_bytes().into()),
        };
        self.sink.send(message).await.map_err(|e| StompError::Socket(e.to_string()))
    }

    /// SUBSCRIBE to `destination` as `id`; `last_seq` asks for what came after it.
    pub async fn subscribe(
        &mut self,
        id: &str,
        destination: &str,
        last_seq: Option<u64>,
        receipt: Option<&str>,
    ) -> Result<(), StompError> {
        let mut frame = Frame::new(Command::Subscribe).header("id", id).header("destination", destination);
        if let Some(seq) = last_seq {
            frame = frame.header("last-seq", seq.to_string());
        }
        if let Some(r) = receipt {
            frame = frame.header("receipt", r);
        }
        self.send(&frame).await
    }

    /// SEND `body` to `destination`.
    pub async fn send_message(
        &mut self,
        destination: &str,
        body: &str,
        key: Option<&str>,
        receipt: Option<&str>,
    ) -> Result<(), StompError> {
        let mut frame = Frame::new(Command::Send)
            .header("destination", destination)
            .header("content-type", "text/plain;charset=utf-8")
            .body(body.as_bytes().to_vec());
        if let Some(k) = key {
            frame = frame.header("idempotency-key", k);
        }
        if let Some(r) = receipt {
            frame = frame.header("receipt", r);
        }
        self.send(&frame).await
    }

    /// Closes the WebSocket without DISCONNECT, as a dropped network would (from our side).
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

impl StompReader {
    /// The next frame (heart-beats skipped); `None` when the connection closed.
    pub async fn next(&mut self) -> Result<Option<Frame>, StompError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Some(frame));
            }
            match self.stream.next().await {
                Some(Ok(Message::Text(text))) => self.push(text.as_bytes()),
                Some(Ok(Message::Binary(bytes))) => self.push(&bytes),
                Some(Ok(Message::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(StompError::Socket(e.to_string())),
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() && bytes.iter().all(|b| matches!(b, b'\n' | b'\r')) {
            if self.heartbeats.len() == HEARTBEATS_KEPT {
                self.heartbeats.pop_front();
            }
            self.heartbeats.push_back(std::time::Instant::now());
        }
        self.decoder.push(bytes);
    }

    /// When the server's heart-beats arrived (those sent as WebSocket messages of their own).
    pub fn heartbeats(&self) -> Vec<std::time::Instant> {
        self.heartbeats.iter().copied().collect()
    }

    /// [`next`](Self::next) within `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Result<Option<Frame>, StompError> {
        tokio::time::timeout(limit, self.next()).await.map_err(|_| StompError::Timeout(limit))?
    }
}
