//! STOMP 1.0/1.1/1.2 frames: an incremental [`Decoder`] for bytes as they arrive (over WebSocket one message
//! may hold part of a frame, one frame or several) and an [`encode`] function.
//!
//! A frame is a command line, header lines `name:value` (split at the first `:`), an empty line, a body and a
//! NUL octet. Lines end with `\n` or `\r\n`; any line ends between frames are heart-beats and are skipped (so are
//! stray NUL octets between frames, i.e. empty frames). With a `content-length` header (the first one counts) the
//! body is exactly that many bytes and must be followed by NUL; without it the body runs to the first NUL.
//!
//! Header names and values are UTF-8. In STOMP 1.1 and 1.2 they are escaped (`\n`, `\c` for `:`, `\\`, and in
//! 1.2 also `\r`) in every frame except CONNECT, STOMP and CONNECTED; STOMP 1.0 escapes nothing. Values are never
//! trimmed. An undefined escape, a lone trailing backslash or a `\r` not followed by `\n` is a protocol error.
//!
//! The decoder enforces [`Limits`] (by default 64 headers, 8 KiB per command or header line, 1 MiB of body) as the
//! bytes arrive: an over-long line, an over-large `content-length` or a body growing past the limit is reported
//! without waiting for the rest of the frame. It resumes each search where the previous one stopped, so a frame
//! arriving in many small pieces is scanned once. After an error the decoder keeps returning that error.
//!
//! The encoder escapes headers as the version and command require. A character that has no representation there
//! (`\r` or `\n` in an unescaped frame, `\r` in STOMP 1.1) is written as a space, so a header can never break out of
//! its line. It adds `content-length` to a frame with a non-empty body that has none.

use std::fmt;

/// A heart-beat as sent on the wire: one EOL.
pub const HEARTBEAT: &[u8] = b"\n";

const CONTENT_LENGTH: &str = "content-length";
const ALL_COMMANDS: &str = "CONNECT, STOMP, CONNECTED, SEND, SUBSCRIBE, UNSUBSCRIBE, ACK, NACK, BEGIN, COMMIT, ABORT, DISCONNECT, MESSAGE, \
     RECEIPT, ERROR";
/// Longest excerpt of offending input quoted in an error message, in characters.
const EXCERPT_CHARS: usize = 80;
/// Buffer capacity kept between frames; a larger buffer left by a large frame is released once it is empty.
const RETAINED_CAPACITY: usize = 64 * 1024;

/// A STOMP command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Connect,
    Stomp,
    Connected,
    Send,
    Subscribe,
    Unsubscribe,
    Ack,
    Nack,
    Begin,
    Commit,
    Abort,
    Disconnect,
    Message,
    Receipt,
    Error,
}

impl Command {
    /// Every command, client frames first.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Connected,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Connected => "CONNECTED",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// The command named exactly `s` (commands are case-sensitive).
    pub fn parse(s: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|command| command.as_str() == s)
    }

    /// CONNECT, STOMP and CONNECTED frames never escape their headers, so that 1.0 peers can read them.
    fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A STOMP frame. Headers keep their order and repetitions; [`Frame::get`] returns the first occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub command: Command,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn new(command: Command) -> Frame {
        Frame { command, headers: Vec::new(), body: Vec::new() }
    }

    /// Appends a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Frame {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Frame {
        self.body = body.into();
        self
    }

    /// The value of the first header named `name`: a repeated header's later values are ignored (STOMP 1.2).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The protocol version negotiated on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V1_0,
    V1_1,
    V1_2,
}

impl Version {
    /// The version as written in `accept-version` and `version` headers.
    pub fn as_str(&self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }
}

/// How header names and values are escaped in one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escaping {
    None,
    V1_1,
    V1_2,
}

impl Escaping {
    fn of(version: Version, command: Command) -> Escaping {
        match version {
            _ if !command.escapes_headers() => Escaping::None,
            Version::V1_0 => Escaping::None,
            Version::V1_1 => Escaping::V1_1,
            Version::V1_2 => Escaping::V1_2,
        }
    }
}

/// Bounds on what one frame may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most headers in one frame.
    pub max_headers: usize,
    /// Longest command or header line in bytes, line end excluded.
    pub max_header_line: usize,
    /// Longest body in bytes.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_headers: 64, max_header_line: 8 * 1024, max_body: 1024 * 1024 }
    }
}

/// Why bytes are not a valid STOMP frame. Each message is meant to be sent to the client in an ERROR frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unknown command \"{command}\" (STOMP 1.2 commands: {ALL_COMMANDS})")]
    UnknownCommand { command: String },
    #[error("carriage return (\\r) not followed by a line feed (\\n) {place}")]
    StrayCarriageReturn { place: &'static str },
    #[error("header line without ':' between name and value: \"{line}\"")]
    HeaderWithoutColon { line: String },
    #[error("header line is not valid UTF-8: \"{line}\"")]
    HeaderNotUtf8 { line: String },
    #[error(
        "undefined escape \\{escape} in header \"{line}\" (STOMP {version} defines {defined}; write \\\\ for a \
         backslash)"
    )]
    UndefinedEscape { escape: String, line: String, version: &'static str, defined: &'static str },
    #[error("header \"{line}\" ends with a lone backslash (write \\\\ for a backslash)")]
    TrailingBackslash { line: String },
    #[error("more than {limit} headers")]
    TooManyHeaders { limit: usize },
    #[error("{what} longer than {limit} bytes")]
    LineTooLong { what: &'static str, limit: usize },
    #[error("content-length \"{value}\" is not a number")]
    InvalidContentLength { value: String },
    #[error("body longer than {limit} bytes (content-length {length})")]
    ContentLengthTooLarge { length: String, limit: usize },
    #[error("body longer than {limit} bytes")]
    BodyTooLong { limit: usize },
    #[error("the body of content-length {length} is not followed by NUL")]
    MissingNul { length: usize },
}

/// A frame whose command and some headers have been read.
#[derive(Debug)]
struct Partial {
    command: Command,
    headers: Vec<(String, String)>,
    content_length: Option<usize>,
}

#[derive(Debug)]
enum State {
    /// Skipping heart-beats, then reading the command line.
    Command,
    Headers(Partial),
    Body(Partial),
    Failed(FrameError),
}

/// Splits a byte stream into frames. Feed it with [`Decoder::push`], then call [`Decoder::next_frame`] until it
/// returns `Ok(None)`.
pub struct Decoder {
    limits: Limits,
    version: Version,
    buf: Vec<u8>,
    /// Start in `buf` of the current frame (or of the heart-beats before it); what precedes was consumed.
    start: usize,
    /// Bytes after `start` already parsed: the command line and the header lines read so far.
    parsed: usize,
    /// Bytes after `start + parsed` already searched, in vain, for the next line end (or for NUL in a body).
    scanned: usize,
    state: State,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("limits", &self.limits)
            .field("version", &self.version)
            .field("buffered", &self.buffered())
            .field("state", &self.state)
            .finish()
    }
}

impl Decoder {
    /// A decoder with STOMP 1.2 rules until [`Decoder::set_version`] says otherwise.
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            version: Version::V1_2,
            buf: Vec::new(),
            start: 0,
            parsed: 0,
            scanned: 0,
            state: State::Command,
        }
    }

    /// Sets the version negotiated by CONNECT/CONNECTED; it governs the header lines read from now on.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        // Drop consumed bytes only once they outnumber the kept ones, so that each byte is moved O(1) times
        // on average even when frames arrive a few bytes at a time.
        let kept = self.buf.len().saturating_sub(self.start);
        if kept == 0 {
            self.buf.clear();
            if self.buf.capacity() > RETAINED_CAPACITY && bytes.len() <= RETAINED_CAPACITY {
                self.buf.shrink_to(RETAINED_CAPACITY);
            }
            self.start = 0;
        } else if self.start >= kept {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed. After an error, every call returns it again.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let State::Failed(error) = &self.state {
            return Err(error.clone());
        }
        let result = self.decode();
        if let Err(error) = &result {
            self.state = State::Failed(error.clone());
            self.buf = Vec::new();
            self.start = 0;
        }
        result
    }

    /// Bytes received and not yet returned as frames (nor skipped as heart-beats).
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    fn decode(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            match std::mem::replace(&mut self.state, State::Command) {
                State::Command => {
                    if !self.skip_heartbeats()? {
                        return Ok(None);
                    }
                    let Some(line) = self.take_line("command line")? else {
                        return Ok(None);
                    };
                    let line = self.buf.get(line).unwrap_or_default();
                    let command = std::str::from_utf8(line).ok().and_then(Command::parse).ok_or_else(|| {
                        FrameError::UnknownCommand { command: excerpt(&String::from_utf8_lossy(line)) }
                    })?;
                    self.state = State::Headers(Partial { command, headers: Vec::new(), content_length: None });
                }
                State::Headers(mut partial) => {
                    let Some(line) = self.take_line("header line")? else {
                        self.state = State::Headers(partial);
                        return Ok(None);
                    };
                    if line.is_empty() {
                        self.state = State::Body(partial);
                    } else {
                        self.read_header(line, &mut partial)?;
                        self.state = State::Headers(partial);
                    }
                }
                State::Body(partial) => {
                    let Some(body) = self.take_body(partial.content_length)? else {
                        self.state = State::Body(partial);
                        return Ok(None);
                    };
                    return Ok(Some(Frame { command: partial.command, headers: partial.headers, body }));
                }
                State::Failed(error) => {
                    self.state = State::Failed(error.clone());
                    return Err(error);
                }
            }
        }
    }

    /// Consumes the EOLs (and stray NULs) before a frame. True when the next byte starts a command.
    fn skip_heartbeats(&mut self) -> Result<bool, FrameError> {
        if self.parsed > 0 || self.scanned > 0 {
            return Ok(true);
        }
        loop {
            match self.buf.get(self.start) {
                None => return Ok(false),
                Some(b'\n' | 0) => self.start += 1,
                Some(b'\r') => match self.buf.get(self.start + 1) {
                    None => return Ok(false),
                    Some(b'\n') => self.start += 2,
                    Some(_) => return Err(FrameError::StrayCarriageReturn { place: "between frames" }),
                },
                Some(_) => return Ok(true),
            }
        }
    }

    /// The range in `buf` of the next line without its EOL, once the line is complete.
    fn take_line(&mut self, what: &'static str) -> Result<Option<std::ops::Range<usize>>, FrameError> {
        let line_start = self.start + self.parsed;
        let search_start = line_start + self.scanned;
        let limit = self.limits.max_header_line;
        let unsearched = self.buf.get(search_start..).unwrap_or_default();
        let Some(found) = find_byte(unsearched, b'\n') else {
            self.scanned = self.buf.len().saturating_sub(line_start);
            let pending_cr = usize::from(self.buf.last() == Some(&b'\r'));
            if self.scanned.saturating_sub(pending_cr) > limit {
                return Err(FrameError::LineTooLong { what, limit });
            }
            return Ok(None);
        };
        let eol = search_start + found;
        let line = self.buf.get(line_start..eol).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > limit {
            return Err(FrameError::LineTooLong { what, limit });
        }
        if line.contains(&b'\r') {
            let place = if what == "command line" { "in the command line" } else { "in a header line" };
            return Err(FrameError::StrayCarriageReturn { place });
        }
        let line_end = line_start + line.len();
        self.parsed = eol + 1 - self.start;
        self.scanned = 0;
        Ok(Some(line_start..line_end))
    }

    fn read_header(&self, line: std::ops::Range<usize>, partial: &mut Partial) -> Result<(), FrameError> {
        let line = self.buf.get(line).unwrap_or_default();
        let text = std::str::from_utf8(line)
            .map_err(|_| FrameError::HeaderNotUtf8 { line: excerpt(&String::from_utf8_lossy(line)) })?;
        let Some((raw_name, raw_value)) = text.split_once(':') else {
            return Err(FrameError::HeaderWithoutColon { line: excerpt(text) });
        };
        if partial.headers.len() >= self.limits.max_headers {
            return Err(FrameError::TooManyHeaders { limit: self.limits.max_headers });
        }
        let escaping = Escaping::of(self.version, partial.command);
        let name = unescape(raw_name, escaping, text)?;
        let value = unescape(raw_value, escaping, text)?;
        if partial.content_length.is_none() && name == CONTENT_LENGTH {
            partial.content_length = Some(parse_content_length(&value, self.limits.max_body)?);
        }
        partial.headers.push((name, value));
        Ok(())
    }

    /// The body once it and its NUL have arrived; consumes the frame.
    fn take_body(&mut self, content_length: Option<usize>) -> Result<Option<Vec<u8>>, FrameError> {
        let body_start = self.start + self.parsed;
        let body_end = match content_length {
            Some(length) => {
                let body_end = body_start.saturating_add(length);
                match self.buf.get(body_end) {
                    None => return Ok(None),
                    Some(0) => body_end,
                    Some(_) => return Err(FrameError::MissingNul { length }),
                }
            }
            None => {
                let limit = self.limits.max_body;
                let search_start = body_start + self.scanned;
                match find_byte(self.buf.get(search_start..).unwrap_or_default(), 0) {
                    Some(found) if self.scanned + found <= limit => search_start + found,
                    Some(_) => return Err(FrameError::BodyTooLong { limit }),
                    None => {
                        self.scanned = self.buf.len().saturating_sub(body_start);
                        if self.scanned > limit {
                            return Err(FrameError::BodyTooLong { limit });
                        }
                        return Ok(None);
                    }
                }
            }
        };
        let body = self.buf.get(body_start..body_end).unwrap_or_default().to_vec();
        self.start = body_end + 1;
        self.parsed = 0;
        self.scanned = 0;
        Ok(Some(body))
    }
}

fn parse_content_length(value: &str, max_body: usize) -> Result<usize, FrameError> {
    // Digits only: `usize::from_str` would also take a leading '+'.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FrameError::InvalidContentLength { value: excerpt(value) });
    }
    match value.parse::<usize>() {
        Ok(length) if length <= max_body => Ok(length),
        _ => Err(FrameError::ContentLengthTooLarge { length: excerpt(value), limit: max_body }),
    }
}

fn unescape(raw: &str, escaping: Escaping, line: &str) -> Result<String, FrameError> {
    if escaping == Escaping::None || !raw.contains('\\') {
        return Ok(raw.to_owned());
    }
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => text.push('\n'),
            Some('c') => text.push(':'),
            Some('\\') => text.push('\\'),
            Some('r') if escaping == Escaping::V1_2 => text.push('\r'),
            Some(other) => {
                let (version, defined) = match escaping {
                    Escaping::V1_1 => ("1.1", "only \\n, \\c and \\\\"),
                    _ => ("1.2", "only \\r, \\n, \\c and \\\\"),
                };
                return Err(FrameError::UndefinedEscape {
                    escape: other.escape_debug().to_string(),
                    line: excerpt(line),
                    version,
                    defined,
                });
            }
            None => return Err(FrameError::TrailingBackslash { line: excerpt(line) }),
        }
    }
    Ok(text)
}

/// `text`, cut to [`EXCERPT_CHARS`] characters, for an error message.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

/// The index of the first `needle` in `haystack`, eight bytes at a time.
fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    let (chunks, tail) = haystack.as_chunks::<8>();
    for (index, chunk) in chunks.iter().enumerate() {
        let word = u64::from_le_bytes(*chunk) ^ pattern;
        // The lowest set bit marks the first zero byte of `word`, i.e. the first `needle` of the chunk.
        let zero_bytes = word.wrapping_sub(ONES) & !word & HIGHS;
        if zero_bytes != 0 {
            return Some(index * 8 + (zero_bytes.trailing_zeros() / 8) as usize);
        }
    }
    tail.iter().position(|&b| b == needle).map(|found| chunks.len() * 8 + found)
}

/// Appends `frame` to `out` as `version` writes it (see the module docs for how headers are escaped). A
/// `content-length` header already in `frame` is written as it is, so it must match the body.
pub fn encode(frame: &Frame, version: Version, out: &mut Vec<u8>) {
    let escaping = Escaping::of(version, frame.command);
    let headers_len: usize = frame.headers.iter().map(|(name, value)| name.len() + value.len() + 2).sum();
    out.reserve(frame.command.as_str().len() + headers_len + frame.body.len() + 40);
    out.extend_from_slice(frame.command.as_str().as_bytes());
    out.push(b'\n');
    let mut has_content_length = false;
    for (name, value) in &frame.headers {
        has_content_length |= name == CONTENT_LENGTH;
        write_header_text(name, escaping, out);
        out.push(b':');
        write_header_text(value, escaping, out);
        out.push(b'\n');
    }
    if !frame.body.is_empty() && !has_content_length {
        out.extend_from_slice(CONTENT_LENGTH.as_bytes());
        out.push(b':');
        write_decimal(frame.body.len(), out);
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(&frame.body);
    out.push(0);
}

fn write_header_text(text: &str, escaping: Escaping, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut copied = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let replacement: &[u8] = match (byte, escaping) {
            (b'\n', Escaping::None) | (b'\r', Escaping::None | Escaping::V1_1) => b" ",
            (_, Escaping::None) => continue,
            (b'\n', _) => b"\\n",
            (b'\r', _) => b"\\r",
            (b':', _) => b"\\c",
            (b'\\', _) => b"\\\\",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(copied..index).unwrap_or_default());
        out.extend_from_slice(replacement);
        copied = index + 1;
    }
    out.extend_from_slice(bytes.get(copied..).unwrap_or_default());
}

fn write_decimal(mut n: usize, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut first = digits.len();
    loop {
        first -= 1;
        if let Some(digit) = digits.get_mut(first) {
            *digit = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || first == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(first..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every frame in `bytes`, fed at once.
    fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        decode_chunks(Limits::default(), Version::V1_2, &[bytes]).map_err(|(_, error)| error)
    }

    /// Feeds `chunks` one after another, reading frames after each; on error, the frames read before it too.
    fn decode_chunks(
        limits: Limits,
        version: Version,
        chunks: &[&[u8]],
    ) -> Result<Vec<Frame>, (Vec<Frame>, FrameError)> {
        let mut decoder = Decoder::new(limits);
        decoder.set_version(version);
        let mut frames = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(error) => return Err((frames, error)),
                }
            }
        }
        Ok(frames)
    }

    fn decode_one(bytes: &[u8]) -> Frame {
        let frames = decode_all(bytes).expect("valid frame");
        assert_eq!(frames.len(), 1, "frames: {frames:?}");
        frames.into_iter().next().expect("one frame")
    }

    fn decode_error(bytes: &[u8]) -> FrameError {
        decode_all(bytes).expect_err("invalid frame")
    }

    fn encoded(frame: &Frame, version: Version) -> Vec<u8> {
        let mut out = Vec::new();
        encode(frame, version, &mut out);
        out
    }

    fn small_limits() -> Limits {
        Limits { max_headers: 2, max_header_line: 16, max_body: 10 }
    }

    // Cases ported from RabbitMQ's STOMP frame parser suite.

    #[test]
    fn simple_frame_with_lf_or_crlf_and_newline_after_nul() {
        for eol in ["\n", "\r\n"] {
            let text = format!("CONNECT{eol}header1:value1{eol}header2:value2{eol}{eol}Body Content\0\n");
            let frame = decode_one(text.as_bytes());
            assert_eq!(frame.command, Command::Connect);
            assert_eq!(frame.get("header1"), Some("value1"));
            assert_eq!(frame.get("header2"), Some("value2"));
            assert_eq!(frame.body, b"Body Content");
        }
    }

    #[test]
    fn command_only() {
        assert_eq!(decode_one(b"CONNECT\n\n\0"), Frame::new(Command::Connect));
    }

    #[test]
    fn heartbeats_before_a_frame_are_skipped() {
        for prefix in ["\n", "\r\n", "\n\r\n\n"] {
            let text = format!("{prefix}CONNECT\n\n\0");
            assert_eq!(decode_one(text.as_bytes()).command, Command::Connect);
        }
    }

    #[test]
    fn empty_frames_before_a_frame_are_skipped() {
        assert_eq!(decode_one(b"\0\0CONNECT\n\n\0").command, Command::Connect);
    }

    #[test]
    fn carriage_return_alone_between_frames_is_an_error() {
        assert_eq!(decode_error(b"\rCONNECT\n\n\0"), FrameError::StrayCarriageReturn { place: "between frames" });
    }

    #[test]
    fn carriage_return_inside_or_doubled_at_end_of_command_is_an_error() {
        let expected = FrameError::StrayCarriageReturn { place: "in the command line" };
        assert_eq!(decode_error(b"COMM\rAND\n\n\0"), expected);
        assert_eq!(decode_error(b"CONNECT\r\r\n\n\0"), expected);
        assert_eq!(decode_error(b"CONNECTA\r\r\n\n\0"), expected);
    }

    #[test]
    fn unknown_command_is_an_error() {
        assert_eq!(decode_error(b"CONNE\n\n\0"), FrameError::UnknownCommand { command: "CONNE".into() });
        assert_eq!(decode_error(b"send\n\n\0"), FrameError::UnknownCommand { command: "send".into() });
        assert_eq!(decode_error(b"SEND \n\n\0"), FrameError::UnknownCommand { command: "SEND ".into() });
        assert_eq!(decode_error(b"\xffSEND\n\n\0"), FrameError::UnknownCommand { command: "\u{fffd}SEND".into() });
    }

    #[test]
    fn resume_mid_command() {
        assert_eq!(decode_chunks(Limits::default(), Version::V1_2, &[b"CONN", b"ECT\n\n\0"]).unwrap().len(), 1);
    }

    #[test]
    fn resume_mid_unicode_header_name() {
        let text = "CONNECT\nheadꙕr1:value1\n\n\0".as_bytes();
        // Split inside the three bytes of 'ꙕ'.
        let frames = decode_chunks(Limits::default(), Version::V1_2, &[&text[..13], &text[13..]]).unwrap();
        assert_eq!(frames[0].get("headꙕr1"), Some("value1"));
    }

    #[test]
    fn resume_mid_header_value() {
        let frames = decode_chunks(Limits::default(), Version::V1_2, &[b"CONNECT\nheader1:val", b"ue1\n\n\0"]).unwrap();
        assert_eq!(frames[0].get("header1"), Some("value1"));
    }

    #[test]
    fn resume_mid_body() {
        let frames = decode_chunks(Limits::default(), Version::V1_2, &[b"CONNECT\n\nABC", b"DEF\0"]).unwrap();
        assert_eq!(frames[0].body, b"ABCDEF");
    }

    #[test]
    fn header_values_are_not_trimmed() {
        for version in [Version::V1_0, Version::V1_1, Version::V1_2] {
            let frames =
                decode_chunks(Limits::default(), version, &[b"CONNECT\nheader: foo \n\n\0", b"SEND\n a : b\t\n\n\0"])
                    .unwrap();
            assert_eq!(frames[0].get("header"), Some(" foo "));
            assert_eq!(frames[1].get(" a "), Some(" b\t"));
        }
    }

    #[test]
    fn repeated_header_first_occurrence_wins() {
        let frame = decode_one(b"CONNECT\nheader:correct\nheader:incorrect\n\n\0");
        assert_eq!(frame.get("header"), Some("correct"));
        assert_eq!(frame.headers.len(), 2);
    }

    #[test]
    fn header_without_colon_is_an_error() {
        let error = decode_error(b"CONNECT\nhdr1:val1\nhdrerror\nhdr2:val2\n\n\0");
        assert_eq!(error, FrameError::HeaderWithoutColon { line: "hdrerror".into() });
    }

    #[test]
    fn escapes_are_not_nested() {
        let frame = decode_one(b"SEND\nhdr\\\\rname:hdr\\\\rval\n\n\0");
        assert_eq!(frame.headers, [("hdr\\rname".to_owned(), "hdr\\rval".to_owned())]);
    }

    #[test]
    fn connect_stomp_and_connected_headers_are_not_unescaped() {
        for command in ["CONNECT", "STOMP", "CONNECTED"] {
            let text = format!("{command}\nhdr\\\\rname:hdr\\rval\\c\\x\n\n\0");
            let frame = decode_one(text.as_bytes());
            assert_eq!(frame.headers, [("hdr\\\\rname".to_owned(), "hdr\\rval\\c\\x".to_owned())]);
        }
    }

    #[test]
    fn carriage_return_inside_header_is_an_error() {
        let expected = FrameError::StrayCarriageReturn { place: "in a header line" };
        assert_eq!(decode_error(b"CONNECT\nhead\rer:val\n\n\0"), expected);
        assert_eq!(decode_error(b"CONNECT\nheader:val\rue\n\n\0"), expected);
        assert_eq!(decode_error(b"CONNECT\nheader:value\r\r\n\n\0"), expected);
    }

    #[test]
    fn header_value_may_contain_colon() {
        let frame = decode_one(b"CONNECT\nheader:val:ue\n\n\0");
        assert_eq!(frame.headers, [("header".to_owned(), "val:ue".to_owned())]);
    }

    #[test]
    fn escaped_headers_survive_a_round_trip() {
        for text in [&b"SEND\nhead\\r\\c\\ner:\\c\\n\\r\\\\\n\n\0\n"[..], b"SEND\nhead\\r\\c\\ner:\\c\\n\\r\\\\\n\n\0"]
        {
            let frame = decode_one(text);
            assert_eq!(frame.get("head\r:\ner"), Some(":\n\r\\"));
            assert_eq!(encoded(&frame, Version::V1_2), text.strip_suffix(b"\n").unwrap_or(text));
        }
    }

    // Bodies.

    #[test]
    fn content_length_body_may_contain_nul() {
        let frame = decode_one(b"SEND\ndestination:/q\ncontent-length:5\n\na\0b\0c\0");
        assert_eq!(frame.body, b"a\0b\0c");
    }

    #[test]
    fn first_content_length_counts() {
        let frame = decode_one(b"SEND\ncontent-length:3\ncontent-length:x\n\na\0b\0");
        assert_eq!(frame.body, b"a\0b");
    }

    #[test]
    fn content_length_zero_and_empty_body() {
        assert_eq!(decode_one(b"SEND\ncontent-length:0\n\n\0").body, b"");
        assert_eq!(decode_one(b"SEND\n\n\0").body, b"");
    }

    #[test]
    fn body_of_content_length_not_followed_by_nul_is_an_error() {
        assert_eq!(decode_error(b"SEND\ncontent-length:2\n\nabc\0"), FrameError::MissingNul { length: 2 });
    }

    #[test]
    fn content_length_must_be_digits() {
        for value in ["x", "", "+5", "-1", " 5", "5 ", "0x10", "١"] {
            let text = format!("SEND\ncontent-length:{value}\n\n\0");
            assert_eq!(decode_error(text.as_bytes()), FrameError::InvalidContentLength { value: value.into() });
        }
    }

    #[test]
    fn content_length_is_matched_after_unescaping_and_exactly() {
        // `content\-length` is not a valid escape; `Content-Length` is another header.
        assert_eq!(decode_one(b"SEND\nContent-Length:1\n\nab\0").body, b"ab");
        assert_eq!(decode_one(b"SEND\ncontent-length\\c:x\n\na\0").body, b"a");
    }

    // Several frames, small pieces.

    #[test]
    fn several_frames_in_one_push_with_heartbeats_between() {
        let frames = decode_all(b"\nSEND\na:1\n\nx\0\r\n\nSEND\na:2\n\n\0\nSEND\ncontent-length:1\n\n\0\0").unwrap();
        let bodies: Vec<&[u8]> = frames.iter().map(|f| f.body.as_slice()).collect();
        assert_eq!(bodies, [&b"x"[..], b"", b"\0"]);
        assert_eq!(frames[1].get("a"), Some("2"));
    }

    #[test]
    fn frames_fed_one_byte_or_a_few_bytes_at_a_time() {
        let text: &[u8] = b"\r\nSUBSCRIBE\r\nid:0\r\ndestination:/queue/a\r\n\r\n\0\nSEND\ndestination:/queue/a\n\
            content-length:4\n\nab\0c\0MESSAGE\nsubscription:0\nmessage-id:1\n\nhello\0\n\n";
        let whole = decode_all(text).unwrap();
        assert_eq!(whole.len(), 3);
        for size in 1..=7 {
            let chunks: Vec<&[u8]> = text.chunks(size).collect();
            assert_eq!(decode_chunks(Limits::default(), Version::V1_2, &chunks).unwrap(), whole, "chunks of {size}");
        }
    }

    #[test]
    fn buffered_counts_bytes_not_yet_returned() {
        let mut decoder = Decoder::new(Limits::default());
        decoder.push(b"\n\r\n");
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.buffered(), 0);
        decoder.push(b"SEND\na:b\n\nbo");
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.buffered(), 12);
        decoder.push(b"dy\0SE");
        assert_eq!(decoder.next_frame().unwrap().unwrap().body, b"body");
        assert_eq!(decoder.buffered(), 2);
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!(decoder.buffered(), 2);
    }

    #[test]
    fn search_resumes_where_it_stopped() {
        let mut decoder = Decoder::new(Limits::default());
        decoder.push(b"SEND\nlong-hea");
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!((decoder.parsed, decoder.scanned), (5, 8));
        decoder.push(b"der:x\n\nbody");
        assert_eq!(decoder.next_frame(), Ok(None));
        assert_eq!((decoder.parsed, decoder.scanned), (20, 4));
        for _ in 0..100 {
            decoder.push(b"b");
            assert_eq!(decoder.next_frame(), Ok(None));
        }
        assert_eq!(decoder.scanned, 104);
        decoder.push(b"\0");
        assert_eq!(decoder.next_frame().unwrap().unwrap().body.len(), 104);
    }

    #[test]
    fn consumed_bytes_are_dropped_as_frames_stream_in() {
        let frame = Frame::new(Command::Send).header("destination", "/queue/a").body(vec![b'x'; 100]);
        let one = encoded(&frame, Version::V1_2);
        let stream: Vec<u8> = one.iter().copied().cycle().take(one.len() * 200).collect();
        let mut decoder = Decoder::new(Limits::default());
        let mut count = 0;
        for chunk in stream.chunks(7) {
            decoder.push(chunk);
            while let Some(decoded) = decoder.next_frame().unwrap() {
                assert_eq!(decoded.body, frame.body);
                count += 1;
            }
            assert!(decoder.buf.len() <= 2 * one.len() + 7, "buffer holds {} bytes", decoder.buf.len());
        }
        assert_eq!(count, 200);
        assert_eq!(decoder.buffered(), 0);
    }

    // Limits, enforced before the frame is complete.

    #[test]
    fn overlong_command_or_header_line_is_an_error_before_its_end() {
        let limits = small_limits();
        let mut decoder = Decoder::new(limits);
        decoder.push(&[b'A'; 16]);
        assert_eq!(decoder.next_frame(), Ok(None));
        decoder.push(b"A");
        assert_eq!(decoder.next_frame(), Err(FrameError::LineTooLong { what: "command line", limit: 16 }));

        let mut decoder = Decoder::new(limits);
        decoder.push(b"SEND\n0123456789:12345\r");
        assert_eq!(decoder.next_frame(), Ok(None), "16 bytes and the start of \\r\\n fit");
        decoder.push(b"6");
        assert_eq!(decoder.next_frame(), Err(FrameError::LineTooLong { what: "header line", limit: 16 }));

        assert_eq!(
            decode_chunks(limits, Version::V1_2, &[b"SEND\n0123456789:123456\n\n\0"]),
            Err((vec![], FrameError::LineTooLong { what: "header line", limit: 16 }))
        );
        assert!(decode_chunks(limits, Version::V1_2, &[b"SEND\n0123456789:12345\r\n\n\0"]).is_ok());
    }

    #[test]
    fn too_many_headers_is_an_error() {
        let limits = small_limits();
        assert!(decode_chunks(limits, Version::V1_2, &[b"SEND\na:1\nb:2\n\n\0"]).is_ok());
        assert_eq!(
            decode_chunks(limits, Version::V1_2, &[b"SEND\na:1\nb:2\nc:3\n"]),
            Err((vec![], FrameError::TooManyHeaders { limit: 2 }))
        );
    }

    #[test]
    fn content_length_over_the_limit_is_an_error_once_the_header_is_read() {
        let limits = Limits { max_header_line: 32, ..small_limits() };
        assert_eq!(
            decode_chunks(limits, Version::V1_2, &[b"SEND\ncontent-length:11\n"]),
            Err((vec![], FrameError::ContentLengthTooLarge { length: "11".into(), limit: 10 }))
        );
        let huge = "99999999999999999999999999";
        assert_eq!(
            decode_error(format!("SEND\ncontent-length:{huge}\n").as_bytes()),
            FrameError::ContentLengthTooLarge { length: huge.into(), limit: 1024 * 1024 }
        );
        assert!(decode_chunks(limits, Version::V1_2, &[b"SEND\ncontent-length:10\n\n0123456789\0"]).is_ok());
    }

    #[test]
    fn body_without_content_length_over_the_limit_is_an_error_before_its_nul() {
        let limits = small_limits();
        assert!(decode_chunks(limits, Version::V1_2, &[b"SEND\n\n0123456789\0"]).is_ok());
        assert_eq!(
            decode_chunks(limits, Version::V1_2, &[b"SEND\n\n0123456789", b"a"]),
            Err((vec![], FrameError::BodyTooLong { limit: 10 }))
        );
        assert_eq!(
            decode_chunks(limits, Version::V1_2, &[b"SEND\n\n0123456789a\0"]),
            Err((vec![], FrameError::BodyTooLong { limit: 10 }))
        );
        assert_eq!(
            decode_chunks(limits, Version::V1_2, &[b"SEND\n\n012345", b"6789a\0"]),
            Err((vec![], FrameError::BodyTooLong { limit: 10 }))
        );
    }

    // Escaping per version.

    #[test]
    fn undefined_escape_or_trailing_backslash_is_an_error() {
        assert_eq!(
            decode_error(b"SEND\nfoo:ba\\tr\n\n\0"),
            FrameError::UndefinedEscape {
                escape: "t".into(),
                line: "foo:ba\\tr".into(),
                version: "1.2",
                defined: "only \\r, \\n, \\c and \\\\"
            }
        );
        assert_eq!(decode_error(b"SEND\nfoo\\:bar\n\n\0"), FrameError::TrailingBackslash { line: "foo\\:bar".into() });
        assert_eq!(decode_error(b"SEND\nfoo:bar\\\n\n\0"), FrameError::TrailingBackslash { line: "foo:bar\\".into() });
    }

    #[test]
    fn escaped_carriage_return_is_defined_in_1_2_only() {
        let text: &[u8] = b"MESSAGE\na:x\\ry\n\n\0";
        let frames = decode_chunks(Limits::default(), Version::V1_2, &[text]).unwrap();
        assert_eq!(frames[0].get("a"), Some("x\ry"));
        let (_, error) = decode_chunks(Limits::default(), Version::V1_1, &[text]).unwrap_err();
        assert!(matches!(error, FrameError::UndefinedEscape { ref escape, version: "1.1", .. } if escape == "r"));
        let frames = decode_chunks(Limits::default(), Version::V1_1, &[b"MESSAGE\na\\c:x\\n\\\\y\n\n\0"]).unwrap();
        assert_eq!(frames[0].get("a:"), Some("x\n\\y"));
    }

    #[test]
    fn nothing_is_unescaped_in_1_0() {
        let frames = decode_chunks(Limits::default(), Version::V1_0, &[b"MESSAGE\na\\t:x\\ry\\\n\n\0"]).unwrap();
        assert_eq!(frames[0].headers, [("a\\t".to_owned(), "x\\ry\\".to_owned())]);
    }

    #[test]
    fn unicode_headers() {
        let frame = Frame::new(Command::Message).header("ключ", "значение ☃ 𝄞").header("名前", "値:値");
        let frames = decode_chunks(Limits::default(), Version::V1_2, &[&encoded(&frame, Version::V1_2)]).unwrap();
        assert_eq!(frames, [frame]);
    }

    #[test]
    fn header_that_is_not_utf8_is_an_error() {
        assert_eq!(
            decode_error(b"SEND\nname:\xc3\x28\n\n\0"),
            FrameError::HeaderNotUtf8 { line: "name:\u{fffd}(".into() }
        );
    }

    #[test]
    fn errors_are_sticky_and_later_bytes_ignored() {
        let mut decoder = Decoder::new(Limits::default());
        decoder.push(b"FOO\n\n\0");
        let error = decoder.next_frame().unwrap_err();
        decoder.push(b"SEND\n\n\0");
        assert_eq!(decoder.next_frame(), Err(error));
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let cases = [
            (
                decode_error(b"FOO\n\n\0"),
                "unknown command \"FOO\" (STOMP 1.2 commands: CONNECT, STOMP, CONNECTED, SEND, SUBSCRIBE, \
                 UNSUBSCRIBE, ACK, NACK, BEGIN, COMMIT, ABORT, DISCONNECT, MESSAGE, RECEIPT, ERROR)",
            ),
            (decode_error(b"SEND\nhdrerror\n\n\0"), "header line without ':' between name and value: \"hdrerror\""),
            (
                decode_error(b"SEND\na:\\t\n\n\0"),
                "undefined escape \\t in header \"a:\\t\" (STOMP 1.2 defines only \\r, \\n, \\c and \\\\; write \\\\ \
                 for a backslash)",
            ),
            (
                decode_error(b"SEND\na:b\\\n\n\0"),
                "header \"a:b\\\" ends with a lone backslash (write \\\\ for a backslash)",
            ),
            (decode_error(b"SEND\ncontent-length:x\n\n\0"), "content-length \"x\" is not a number"),
            (decode_error(b"SEND\ncontent-length:1\n\nab\0"), "the body of content-length 1 is not followed by NUL"),
            (
                decode_error(b"SEND\ncontent-length:1048577\n"),
                "body longer than 1048576 bytes (content-length 1048577)",
            ),
            (decode_error(b"\rX"), "carriage return (\\r) not followed by a line feed (\\n) between frames"),
            (FrameError::TooManyHeaders { limit: 64 }, "more than 64 headers"),
            (FrameError::LineTooLong { what: "header line", limit: 8192 }, "header line longer than 8192 bytes"),
            (FrameError::BodyTooLong { limit: 1048576 }, "body longer than 1048576 bytes"),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn long_input_is_cut_in_error_messages() {
        let command = "X".repeat(200);
        let FrameError::UnknownCommand { command: quoted } = decode_error(format!("{command}\n").as_bytes()) else {
            panic!("expected an unknown command");
        };
        assert_eq!(quoted, format!("{}…", "X".repeat(EXCERPT_CHARS)));
    }

    // Encoder.

    #[test]
    fn encode_adds_content_length_to_a_non_empty_body_only() {
        let frame = Frame::new(Command::Message).header("destination", "/queue/a").body("hello");
        assert_eq!(encoded(&frame, Version::V1_2), b"MESSAGE\ndestination:/queue/a\ncontent-length:5\n\nhello\0");
        let frame = Frame::new(Command::Receipt).header("receipt-id", "7");
        assert_eq!(encoded(&frame, Version::V1_2), b"RECEIPT\nreceipt-id:7\n\n\0");
    }

    #[test]
    fn encode_keeps_an_existing_content_length() {
        let frame = Frame::new(Command::Send).header("content-length", "2").body("ab");
        assert_eq!(encoded(&frame, Version::V1_2), b"SEND\ncontent-length:2\n\nab\0");
    }

    #[test]
    fn encode_escapes_per_version_and_command() {
        let frame = |command| Frame::new(command).header("a:b\\", "c\r\nd:");
        assert_eq!(encoded(&frame(Command::Message), Version::V1_2), b"MESSAGE\na\\cb\\\\:c\\r\\nd\\c\n\n\0");
        assert_eq!(encoded(&frame(Command::Message), Version::V1_1), b"MESSAGE\na\\cb\\\\:c \\nd\\c\n\n\0");
        assert_eq!(encoded(&frame(Command::Message), Version::V1_0), b"MESSAGE\na:b\\:c  d:\n\n\0");
        assert_eq!(encoded(&frame(Command::Connected), Version::V1_2), b"CONNECTED\na:b\\:c  d:\n\n\0");
        assert_eq!(encoded(&frame(Command::Connect), Version::V1_1), b"CONNECT\na:b\\:c  d:\n\n\0");
    }

    #[test]
    fn encode_appends_to_out() {
        let mut out = HEARTBEAT.to_vec();
        encode(&Frame::new(Command::Disconnect), Version::V1_2, &mut out);
        assert_eq!(out, b"\nDISCONNECT\n\n\0");
    }

    #[test]
    fn decimal_digits() {
        for n in [0, 7, 10, 1234567890, usize::MAX] {
            let mut out = Vec::new();
            write_decimal(n, &mut out);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn frame_builder_and_first_header_wins() {
        let frame = Frame::new(Command::Send).header("a", "1").header("a", String::from("2")).body(vec![0, 1]);
        assert_eq!(frame.get("a"), Some("1"));
        assert_eq!(frame.get("b"), None);
        assert_eq!(frame.body, [0, 1]);
    }

    #[test]
    fn command_names() {
        for command in Command::ALL {
            assert_eq!(Command::parse(command.as_str()), Some(command));
            assert_eq!(command.to_string(), command.as_str());
        }
        assert_eq!(Command::ALL.map(|c| c.as_str()).join(", "), ALL_COMMANDS);
        assert_eq!(Command::parse("send"), None);
        assert_eq!(Command::parse(""), None);
    }

    // Properties.

    /// Header text: any characters, or mostly the ones that need escaping.
    fn header_text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
            r"[a-z:\\\r\n\x00 é☃𝄞-]{0,12}",
        ]
    }

    /// Drops what `escaping` cannot represent, and keeps clear of `content-length`.
    fn representable(name: String, value: String, escaping: Escaping) -> (String, String) {
        let keep = |c: char, in_name: bool| match escaping {
            Escaping::None => c != '\r' && c != '\n' && !(in_name && c == ':'),
            Escaping::V1_1 => c != '\r',
            Escaping::V1_2 => true,
        };
        let mut name: String = name.chars().filter(|&c| keep(c, true)).collect();
        if name == CONTENT_LENGTH {
            name.push('x');
        }
        (name, value.chars().filter(|&c| keep(c, false)).collect())
    }

    fn frame_for(version: Version) -> impl Strategy<Value = Frame> {
        (
            prop::sample::select(Command::ALL.to_vec()),
            prop::collection::vec((header_text(), header_text()), 0..8),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                prop::collection::vec(prop::sample::select(vec![0, b'\n', b'\r', b'a']), 0..10),
            ],
        )
            .prop_map(move |(command, headers, body)| {
                let escaping = Escaping::of(version, command);
                let headers = headers.into_iter().map(|(name, value)| representable(name, value, escaping)).collect();
                Frame { command, headers, body }
            })
    }

    fn version() -> impl Strategy<Value = Version> {
        prop::sample::select(vec![Version::V1_0, Version::V1_1, Version::V1_2])
    }

    /// Split points into `len` bytes, sorted.
    fn cuts(indices: &[prop::sample::Index], len: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = indices.iter().map(|index| index.index(len + 1)).collect();
        cuts.sort_unstable();
        cuts
    }

    fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut chunks = Vec::new();
        let mut from = 0;
        for &cut in cuts {
            chunks.push(&bytes[from..cut]);
            from = cut;
        }
        chunks.push(&bytes[from..]);
        chunks
    }

    proptest! {
        #[test]
        fn encoded_frames_decode_identically_in_any_chunks(
            (version, frames, heartbeats, indices) in version().prop_flat_map(|version| (
                Just(version),
                prop::collection::vec(frame_for(version), 1..4),
                prop::collection::vec(prop::sample::select(vec!["", "\n", "\r\n", "\n\r\n"]), 4),
                prop::collection::vec(any::<prop::sample::Index>(), 0..12),
            )),
        ) {
            let mut stream = Vec::new();
            for (frame, heartbeat) in frames.iter().zip(&heartbeats) {
                stream.extend_from_slice(heartbeat.as_bytes());
                encode(frame, version, &mut stream);
            }
            stream.extend_from_slice(heartbeats[3].as_bytes());
            let expected: Vec<Frame> = frames
                .iter()
                .map(|frame| {
                    let mut frame = frame.clone();
                    if !frame.body.is_empty() {
                        frame.headers.push((CONTENT_LENGTH.to_owned(), frame.body.len().to_string()));
                    }
                    frame
                })
                .collect();

            let chunks = split(&stream, &cuts(&indices, stream.len()));
            let mut decoder = Decoder::new(Limits::default());
            decoder.set_version(version);
            let mut decoded = Vec::new();
            for chunk in chunks {
                decoder.push(chunk);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    decoded.push(frame);
                }
            }
            prop_assert_eq!(decoded, expected);
            prop_assert_eq!(decoder.buffered(), 0);
        }

        #[test]
        fn find_byte_finds_the_first_occurrence(
            haystack in prop::collection::vec(prop::sample::select(vec![0u8, 1, b'\n', 0x80, 0xff]), 0..40),
            needle in prop::sample::select(vec![0u8, b'\n', 0xff]),
        ) {
            prop_assert_eq!(find_byte(&haystack, needle), haystack.iter().position(|&b| b == needle));
        }
    }

    proptest! {
        // Arbitrary input rarely forms frames, so this property gets more cases.
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn any_input_decodes_the_same_in_any_chunks(
            pieces in prop::collection::vec(
                prop_oneof![
                    4 => prop::sample::select(vec![
                        "SEND\n", "CONNECT\n", "MESSAGE\r\n", "SEND\n\n", "content-length:2\n", "content-length:x\n",
                        "a:b\n", "a\\c\\n:\\\\\n", "a:\\r\n", "\n", "\r\n", "\r", "\0", "\\", ":", "xyz", "01234",
                    ]).prop_map(|s| s.as_bytes().to_vec()),
                    1 => prop::collection::vec(any::<u8>(), 0..4),
                ],
                0..24,
            ),
            version in version(),
            indices in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let bytes = pieces.concat();
            let limits = Limits { max_headers: 3, max_header_line: 12, max_body: 8 };
            let whole = decode_chunks(limits, version, &[&bytes]);
            let chunked = decode_chunks(limits, version, &split(&bytes, &cuts(&indices, bytes.len())));
            prop_assert_eq!(whole, chunked);
        }
    }
}
