//! What a shard saw, unjudged, one JSON object per line (`journal.jsonl`): the merge replays
//! every shard's lines into one ledger. Times are microseconds on the shard's own clock since
//! its `t0` (whose wall-clock time `shard.json` gives); the merge lines the shards up by those
//! wall-clock times for deliveries per second, and measures a latency only within one shard.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::ledger::Cause;
use crate::run::clients::LedgerMsg;

pub const FILE: &str = "journal.jsonl";

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// This shard caused `cause` (its request succeeded): what the database holds beyond the
    /// causes of every shard is indeterminate, not unexpected.
    Created { cause: Cause },
    /// `recipient` must be notified of `cause`; the causing request was sent at `t_us`.
    Expect { recipient: u64, cause: Cause, t_us: u64 },
    /// A client of this shard received notification `id` at `t_us`.
    Observe {
        client: u64,
        client_user: u64,
        id: u64,
        recipient: u64,
        cause: Cause,
        t_us: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_id: Option<u64>,
    },
    /// An event without a notification (`ready`) moved a client's stream position.
    Position { client: u64, event_id: u64 },
}

impl Entry {
    /// The journal line of what a client or the driver told the ledger collector.
    pub fn of(msg: LedgerMsg, t0: Instant) -> Entry {
        let t = |at: Instant| u64::try_from(at.saturating_duration_since(t0).as_micros()).unwrap_or(u64::MAX);
        match msg {
            LedgerMsg::Expect { recipient, cause, at } => Entry::Expect { recipient, cause, t_us: t(at) },
            LedgerMsg::Observe { client, client_user, id, recipient, cause, at, event_id } => {
                Entry::Observe { client, client_user, id, recipient, cause, t_us: t(at), event_id }
            }
            LedgerMsg::Position { client, event_id } => Entry::Position { client, event_id },
        }
    }
}

/// Appends entries to `journal.jsonl`, buffered.
pub struct Writer {
    out: BufWriter<std::fs::File>,
    pub lines: u64,
}

impl Writer {
    pub fn create(dir: &Path) -> std::io::Result<Writer> {
        Ok(Writer { out: BufWriter::new(std::fs::File::create(dir.join(FILE))?), lines: 0 })
    }

    pub fn write(&mut self, entry: &Entry) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, entry)?;
        self.out.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<u64> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(self.lines)
    }
}

/// Calls `each` for every entry of `dir`'s journal, in order; a line that does not parse is an
/// error naming the file and the line.
pub fn read(dir: &Path, mut each: impl FnMut(Entry)) -> anyhow::Result<u64> {
    let path = dir.join(FILE);
    let file = std::fs::File::open(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}: a shard's folder holds the journal it wrote", path.display()))?;
    let mut n = 0;
    for (k, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| anyhow::anyhow!("{}: line {}: {e}", path.display(), k + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: Entry = serde_json::from_str(&line).map_err(|e| {
            anyhow::anyhow!(
                "{}: line {}: not a journal entry ({e}); was the file cut short or edited?",
                path.display(),
                k + 1
            )
        })?;
        each(entry);
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_a_damaged_line_is_named() {
        let dir = std::env::temp_dir().join(crate::infra::unique_name("journal"));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let entries = vec![
            Entry::Created { cause: Cause::diary(7) },
            Entry::Expect { recipient: 3, cause: Cause::diary(7), t_us: 1_500 },
            Entry::Observe {
                client: 3,
                client_user: 3,
                id: 90,
                recipient: 3,
                cause: Cause::diary(7),
                t_us: 9_100,
                event_id: Some(4),
            },
            Entry::Position { client: 3, event_id: 5 },
        ];
        let mut w = Writer::create(&dir).expect("created");
        for e in &entries {
            w.write(e).expect("written");
        }
        assert_eq!(w.finish().expect("flushed"), 4);
        let mut back = Vec::new();
        assert_eq!(read(&dir, |e| back.push(e)).expect("read"), 4);
        assert_eq!(back, entries);

        std::fs::write(dir.join(FILE), "{\"created\":{\"cause\":{\"kind\":\"diary\",\"id\":1}}}\n{\"expe").unwrap();
        let err = read(&dir, |_| {}).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("not a journal entry"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
