//! The decision log: one JSON object per message per line (`SPEC.md`,
//! "Decision log"), appended to `[log] decisions`; reopened on SIGHUP so
//! logrotate can move it.

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Mutex;

/// One message's entry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    /// RFC 3339 UTC.
    pub time: String,
    /// The MTA's queue ID as the filter received it.
    pub queue_id: Option<String>,
    /// The SMTP client's address.
    pub client_ip: Option<String>,
    /// Envelope sender; `""` for `<>`.
    pub sender: String,
    /// Bytes as received (CRLF line ends).
    pub size: usize,
    /// The scanner fact; null when the policy needed no scan.
    pub scanner: Option<String>,
    /// Every detection name.
    pub virus: Vec<String>,
    /// `accept|discard|reject|tempfail` (what the MTA was answered).
    pub verdict: String,
    /// The quarantine ID, if a copy was written.
    pub quarantine_id: Option<String>,
    /// Milliseconds from the end of the message to the answer.
    pub ms: u64,
    /// Per recipient.
    pub recipients: Vec<RecipientEntry>,
}

/// One recipient's decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecipientEntry {
    /// The recipient.
    pub recipient: String,
    /// `inbound|outbound|internal|open_relay`.
    pub direction: String,
    /// `pass|discard|bounce|reject|tempfail`.
    pub disposition: String,
    /// The quarantine bucket, if any.
    pub quarantine: Option<String>,
    /// `admin`, `sender`, `recipient` or an address.
    pub alerts: Vec<String>,
    /// Subject tags.
    pub tags: Vec<String>,
    /// The deciding rule; null for the default.
    pub rule: Option<String>,
}

/// The log file (or nowhere).
#[derive(Debug)]
pub struct DecisionLog {
    path: Option<PathBuf>,
    file: Mutex<Option<File>>,
}

impl DecisionLog {
    /// Opens (creating) `path` for appending; `None` logs nothing.
    pub fn open(path: Option<PathBuf>) -> io::Result<DecisionLog> {
        let file = match &path {
            Some(p) => Some(open_append(p)?),
            None => None,
        };
        Ok(DecisionLog {
            path,
            file: Mutex::new(file),
        })
    }

    /// Reopens the file (after logrotate moved it).
    pub fn reopen(&self) -> io::Result<()> {
        if let Some(p) = &self.path {
            let f = open_append(p)?;
            *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
        }
        Ok(())
    }

    /// Appends one entry as one line (a single write, so concurrent
    /// sessions never interleave within a line).
    pub fn append(&self, entry: &Entry) -> io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let Some(file) = guard.as_mut() else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        file.write_all(&line)
    }
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}
