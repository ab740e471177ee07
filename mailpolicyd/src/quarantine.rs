//! The quarantine: `DIR/BUCKET/ID.eml` (the message exactly as received)
//! and `DIR/BUCKET/ID.json` (envelope, client, facts, decisions, rule,
//! time), each written to a temporary name, fsync'd, renamed, and the
//! bucket directory fsync'd — all before the filter answers the MTA.
//! Copies are never deleted by the filter; a release only marks them.

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What is stored next to a quarantined copy (`ID.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The quarantine ID (one per message, shared by its buckets).
    pub id: String,
    /// The bucket (directory name).
    pub bucket: String,
    /// When it was quarantined (RFC 3339, UTC).
    pub time: String,
    /// The MTA's queue ID, if known.
    pub queue_id: Option<String>,
    /// The SMTP client's address.
    pub client_ip: Option<String>,
    /// The client's HELO name.
    pub helo: Option<String>,
    /// Whether the client used SMTP AUTH.
    pub authenticated: bool,
    /// The envelope sender (`""` for `<>`).
    pub sender: String,
    /// The recipients whose decision put the message in this bucket
    /// (a release goes to them).
    pub recipients: Vec<String>,
    /// Every envelope recipient of the message.
    pub envelope_recipients: Vec<String>,
    /// The `scanner` fact.
    pub scanner: Option<String>,
    /// Every detection name.
    pub virus: Vec<String>,
    /// The deciding rule of the first recipient in this bucket (null: default).
    pub rule: Option<String>,
    /// Size in bytes as received.
    pub size: usize,
    /// Each recipient's facts and decision, as the decision log shows them.
    pub decisions: Vec<serde_json::Value>,
    /// The message's facts as the policy saw them (recipient-independent part).
    pub facts: serde_json::Value,
    /// Whether the copy was released.
    #[serde(default)]
    pub released: bool,
    /// When it was released.
    #[serde(default)]
    pub released_at: Option<String>,
    /// Who it was released to.
    #[serde(default)]
    pub released_to: Vec<String>,
}

/// The line `quarantine list --format json` prints per copy.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    /// ID.
    pub id: &'a str,
    /// Bucket.
    pub bucket: &'a str,
    /// Time.
    pub time: &'a str,
    /// Sender.
    pub sender: &'a str,
    /// Recipients of this copy.
    pub recipients: &'a [String],
    /// Detections.
    pub virus: &'a [String],
    /// Deciding rule.
    pub rule: Option<&'a str>,
    /// Released?
    pub released: bool,
}

impl Record {
    /// The list view of this record.
    pub fn summary(&self) -> Summary<'_> {
        Summary {
            id: &self.id,
            bucket: &self.bucket,
            time: &self.time,
            sender: &self.sender,
            recipients: &self.recipients,
            virus: &self.virus,
            rule: self.rule.as_deref(),
            released: self.released,
        }
    }
}

/// The quarantine directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// A store rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    /// The root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new quarantine ID: time, process and a per-process counter mixed
    /// with the process's random hash key — unique, and safe as a file name.
    pub fn new_id() -> String {
        use std::hash::{BuildHasher, Hasher};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(now.as_nanos());
        h.write_u32(std::process::id());
        h.write_u64(n);
        format!("{:x}-{:012x}", now.as_secs(), h.finish() & 0xffff_ffff_ffff)
    }

    /// Writes one copy of `message` per record (each record names its
    /// bucket), durably. Returns only when every file and directory entry
    /// is on disk.
    pub fn write(&self, records: &[Record], message: &[u8]) -> io::Result<()> {
        for record in records {
            let bucket = self.dir.join(bucket_dir_name(&record.bucket));
            fs::create_dir_all(&bucket)?;
            let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
            write_durably(&bucket, &format!("{}.eml", record.id), message)?;
            write_durably(&bucket, &format!("{}.json", record.id), &json)?;
            File::open(&bucket)?.sync_all()?;
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Every record, oldest first.
    pub fn list(&self) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        let buckets = match fs::read_dir(&self.dir) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for bucket in buckets {
            let bucket = bucket?;
            if !bucket.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(bucket.path())? {
                let path = entry?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("json") {
                    continue;
                }
                let record: Record = serde_json::from_slice(&fs::read(&path)?)
                    .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
                out.push(record);
            }
        }
        out.sort_by(|a, b| (&a.time, &a.id, &a.bucket).cmp(&(&b.time, &b.id, &b.bucket)));
        Ok(out)
    }

    /// Every copy with this ID (one per bucket): its record and the path of
    /// its `.eml`.
    pub fn find(&self, id: &str) -> io::Result<Vec<(Record, PathBuf)>> {
        if !is_valid_id(id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{id}` is not a quarantine ID"),
            ));
        }
        let mut out = Vec::new();
        for record in self.list()? {
            if record.id == id {
                let eml = self
                    .dir
                    .join(bucket_dir_name(&record.bucket))
                    .join(format!("{id}.eml"));
                out.push((record, eml));
            }
        }
        Ok(out)
    }

    /// Marks every copy of `id` released to `to`, durably.
    pub fn mark_released(&self, id: &str, to: &[String], time: &str) -> io::Result<()> {
        for (mut record, _) in self.find(id)? {
            record.released = true;
            record.released_at = Some(time.to_owned());
            for t in to {
                if !record.released_to.contains(t) {
                    record.released_to.push(t.clone());
                }
            }
            let bucket = self.dir.join(bucket_dir_name(&record.bucket));
            let json = serde_json::to_vec_pretty(&record).map_err(io::Error::other)?;
            write_durably(&bucket, &format!("{id}.json"), &json)?;
            File::open(&bucket)?.sync_all()?;
        }
        Ok(())
    }
}

/// Whether `id` looks like an ID this store made (no path tricks).
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A bucket name as a safe directory name: `[A-Za-z0-9._-]` kept, anything
/// else `_`, no leading dot, at most 64 bytes, empty → `default`.
pub fn bucket_dir_name(bucket: &str) -> String {
    let mut name: String = bucket
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with('.') {
        name.replace_range(..1, "_");
    }
    if name.is_empty() {
        name.push_str("default");
    }
    name
}

fn write_durably(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, bucket: &str) -> Record {
        Record {
            id: id.into(),
            bucket: bucket.into(),
            time: "2026-11-30T06:00:00Z".into(),
            queue_id: Some("4ABC".into()),
            client_ip: Some("192.0.2.1".into()),
            helo: None,
            authenticated: false,
            sender: "s@x".into(),
            recipients: vec!["r@y".into()],
            envelope_recipients: vec!["r@y".into()],
            scanner: Some("infected".into()),
            virus: vec!["Eicar".into()],
            rule: Some("r".into()),
            size: 3,
            decisions: vec![],
            facts: serde_json::json!({}),
            released: false,
            released_at: None,
            released_to: vec![],
        }
    }

    #[test]
    fn write_list_find_release() {
        let dir = std::env::temp_dir().join(format!("mpq-{}", Store::new_id()));
        let store = Store::new(&dir);
        let id = Store::new_id();
        store
            .write(&[record(&id, "default"), record(&id, "../../etc")], b"abc")
            .unwrap();
        assert_eq!(
            fs::read(dir.join("default").join(format!("{id}.eml"))).unwrap(),
            b"abc"
        );
        assert_eq!(bucket_dir_name("../../etc"), "_._.._etc");
        assert!(dir.join("_._.._etc").join(format!("{id}.eml")).exists());
        assert_eq!(store.list().unwrap().len(), 2);
        assert_eq!(store.find(&id).unwrap().len(), 2);
        assert!(store.find("../x").is_err());
        store.mark_released(&id, &["r@y".into()], "t").unwrap();
        assert!(store
            .list()
            .unwrap()
            .iter()
            .all(|r| r.released && r.released_to == ["r@y"]));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bucket_names_are_safe() {
        assert_eq!(bucket_dir_name("outbound"), "outbound");
        assert_eq!(bucket_dir_name("../etc"), "_._etc");
        assert_eq!(bucket_dir_name(""), "default");
        assert_eq!(bucket_dir_name("a/b c"), "a_b_c");
        assert!(Store::new_id() != Store::new_id());
        assert!(is_valid_id(&Store::new_id()));
    }
}
