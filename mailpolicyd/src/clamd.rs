//! The clamd client: every detection of a message, or why there is none.
//!
//! With a `spool_dir`, the message is written to a private file there and
//! scanned with `ALLMATCHSCAN`, which reports every match (clamd's
//! `INSTREAM` stops at the first). Without one, `INSTREAM` is used and only
//! the first detection is known. Replies are read with the `z` (NUL-ended)
//! framing; their parsing is [`parse_reply`], a pure function the fuzz
//! target drives.

use crate::config::{ClamdConfig, SocketAddress};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most reply bytes read from clamd for one scan (a reply is a line per
/// detection; anything longer is an error, not an allocation).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// What clamd said about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanResult {
    /// Nothing found.
    Clean,
    /// One or more detections, as reported, duplicates removed, in order.
    Found(Vec<String>),
    /// clamd could not be reached, refused, or reported an error.
    Error(String),
    /// clamd did not answer within `timeout_ms`.
    Timeout,
}

impl ScanResult {
    /// The `scanner` fact: `encrypted` only when every detection is
    /// `Heuristics.Encrypted.*`; a real detection next to one is `infected`.
    pub fn scanner(&self) -> mailpolicy::Scanner {
        use mailpolicy::Scanner;
        match self {
            ScanResult::Clean => Scanner::Clean,
            ScanResult::Found(names) if names.iter().all(|n| is_encrypted_detection(n)) => {
                Scanner::Encrypted
            }
            ScanResult::Found(_) => Scanner::Infected,
            ScanResult::Error(_) => Scanner::Error,
            ScanResult::Timeout => Scanner::Timeout,
        }
    }

    /// The detection names (empty unless something was found).
    pub fn names(&self) -> &[String] {
        match self {
            ScanResult::Found(names) => names,
            _ => &[],
        }
    }
}

/// Whether a detection name is clamd's "encrypted, could not look inside".
pub fn is_encrypted_detection(name: &str) -> bool {
    name.starts_with("Heuristics.Encrypted.")
}

/// Whether a detection name is clamd's "file exceeds a scan limit"
/// (reported with `AlertExceedsMax yes`; without it clamd says `OK`).
pub fn is_limit_detection(name: &str) -> bool {
    name.starts_with("Heuristics.Limits.Exceeded")
}

/// Parses clamd's reply to a `SCAN`/`ALLMATCHSCAN`/`INSTREAM` command:
/// NUL- or newline-separated `SUBJECT: NAME FOUND`, `SUBJECT: OK` or
/// `SUBJECT: MESSAGE ERROR` lines. Any `FOUND` wins over errors (a
/// detection is a fact even if the scan failed later); otherwise any error
/// or an unrecognised reply is an error. A reply whose only detections are
/// `Heuristics.Limits.Exceeded.*` is an error: the message was not scanned
/// whole.
pub fn parse_reply(reply: &[u8]) -> ScanResult {
    let text = String::from_utf8_lossy(reply);
    let mut found: Vec<String> = Vec::new();
    let mut error: Option<String> = None;
    let mut ok = false;
    for line in text
        .split(['\0', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        // The subject (a path or `stream`) ends at the last ": " before the verdict.
        let (verdict_part, subject_known) = match line.rfind(": ") {
            Some(p) => (&line[p + 2..], true),
            None => (line, false),
        };
        if let Some(name) = verdict_part
            .strip_suffix(" FOUND")
            .filter(|_| subject_known)
        {
            let name = name.trim();
            if !name.is_empty() && !found.iter().any(|f| f == name) {
                found.push(name.to_owned());
            }
        } else if verdict_part == "OK" && subject_known {
            ok = true;
        } else if error.is_none() {
            let message = line.strip_suffix(" ERROR").unwrap_or(line);
            error = Some(crate::sanitize::log_text(message));
        }
    }
    if !found.is_empty() && found.iter().all(|n| is_limit_detection(n)) {
        // `AlertExceedsMax yes`: clamd did not look at all of it. Not a
        // clean result — the scan failed.
        ScanResult::Error(format!(
            "over clamd's scan limits ({})",
            crate::sanitize::log_text(&found.join(","))
        ))
    } else if !found.is_empty() {
        ScanResult::Found(found)
    } else if let Some(e) = error {
        ScanResult::Error(e)
    } else if ok {
        ScanResult::Clean
    } else {
        ScanResult::Error("empty reply from clamd".into())
    }
}

/// A clamd client for one configuration.
#[derive(Debug)]
pub struct Clamd {
    config: ClamdConfig,
    counter: AtomicU64,
}

impl Clamd {
    /// A client for `config`.
    pub fn new(config: ClamdConfig) -> Clamd {
        Clamd {
            config,
            counter: AtomicU64::new(0),
        }
    }

    /// Scans `message`, within the configured timeout.
    pub async fn scan(&self, message: &[u8]) -> ScanResult {
        match tokio::time::timeout(self.config.timeout, self.scan_unbounded(message)).await {
            Ok(result) => result,
            Err(_) => ScanResult::Timeout,
        }
    }

    async fn scan_unbounded(&self, message: &[u8]) -> ScanResult {
        match &self.config.spool_dir {
            Some(dir) => {
                let path = self.spool_path(dir);
                let result = match write_spool_file(&path, message).await {
                    Ok(()) => {
                        let mut command = b"zALLMATCHSCAN ".to_vec();
                        command.extend_from_slice(path.as_os_str().as_encoded_bytes());
                        command.push(0);
                        self.round_trip(&command, None).await
                    }
                    Err(e) => ScanResult::Error(format!(
                        "cannot write the spool file {}: {e}",
                        path.display()
                    )),
                };
                let _ = tokio::fs::remove_file(&path).await;
                result
            }
            None => self.round_trip(b"zINSTREAM\0", Some(message)).await,
        }
    }

    fn spool_path(&self, dir: &Path) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        dir.join(format!("scan-{}-{n}.eml", std::process::id()))
    }

    async fn round_trip(&self, command: &[u8], stream: Option<&[u8]>) -> ScanResult {
        let outcome = match &self.config.address {
            SocketAddress::Unix(path) => match tokio::net::UnixStream::connect(path).await {
                Ok(s) => exchange(s, command, stream).await,
                Err(e) => Err(format!(
                    "cannot connect to clamd at {}: {e}",
                    path.display()
                )),
            },
            SocketAddress::Inet { host, port } => {
                match tokio::net::TcpStream::connect((host.as_str(), *port)).await {
                    Ok(s) => exchange(s, command, stream).await,
                    Err(e) => Err(format!("cannot connect to clamd at {host}:{port}: {e}")),
                }
            }
        };
        match outcome {
            Ok(reply) => parse_reply(&reply),
            Err(e) => ScanResult::Error(e),
        }
    }

    /// Whether clamd answers `PING` within a second (for `mailpolicyd check`).
    pub async fn ping(&self) -> Result<(), String> {
        let fut = async {
            let reply = match &self.config.address {
                SocketAddress::Unix(path) => {
                    let s = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(|e| e.to_string())?;
                    exchange(s, b"zPING\0", None).await?
                }
                SocketAddress::Inet { host, port } => {
                    let s = tokio::net::TcpStream::connect((host.as_str(), *port))
                        .await
                        .map_err(|e| e.to_string())?;
                    exchange(s, b"zPING\0", None).await?
                }
            };
            if reply.starts_with(b"PONG") {
                Ok(())
            } else {
                Err(format!(
                    "unexpected reply {:?}",
                    String::from_utf8_lossy(&reply)
                ))
            }
        };
        tokio::time::timeout(Duration::from_secs(1), fut)
            .await
            .unwrap_or_else(|_| Err("no answer within 1 s".into()))
    }
}

async fn write_spool_file(path: &Path, message: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    // Readable by clamd's user: the directory's permissions keep it private.
    options.write(true).create_new(true).mode(0o644);
    let file = tokio::fs::OpenOptions::from(options).open(path).await?;
    let mut file = tokio::io::BufWriter::new(file);
    file.write_all(message).await?;
    file.flush().await
}

/// Sends `command` (and `stream` as INSTREAM chunks), reads the reply to EOF
/// or its final NUL.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: S,
    command: &[u8],
    stream: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("clamd connection failed: {e}");
    socket.write_all(command).await.map_err(io)?;
    if let Some(data) = stream {
        for chunk in data.chunks(64 * 1024) {
            // chunks() never yields more than 64 KiB, so the length fits in u32.
            let len = chunk.len() as u32;
            socket.write_all(&len.to_be_bytes()).await.map_err(io)?;
            socket.write_all(chunk).await.map_err(io)?;
        }
        socket.write_all(&0u32.to_be_bytes()).await.map_err(io)?;
    }
    socket.flush().await.map_err(io)?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.len() > MAX_REPLY_BYTES {
            return Err(format!(
                "clamd's reply is longer than {MAX_REPLY_BYTES} bytes"
            ));
        }
        // INSTREAM and PING answer once; ALLMATCHSCAN closes after its last line.
        if (stream.is_some() || command.starts_with(b"zPING")) && reply.last() == Some(&0) {
            break;
        }
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailpolicy::Scanner;

    #[test]
    fn replies() {
        assert_eq!(parse_reply(b"stream: OK\0"), ScanResult::Clean);
        assert_eq!(
            parse_reply(b"/s/x.eml: Eicar-Test-Signature.UNOFFICIAL FOUND\0/s/x.eml: Win.Worm.Sobig-F.UNOFFICIAL FOUND\0/s/x.eml: Eicar-Test-Signature.UNOFFICIAL FOUND\0"),
            ScanResult::Found(vec!["Eicar-Test-Signature.UNOFFICIAL".into(), "Win.Worm.Sobig-F.UNOFFICIAL".into()])
        );
        assert!(
            matches!(parse_reply(b"INSTREAM size limit exceeded. ERROR\0"), ScanResult::Error(e) if e.contains("size limit"))
        );
        assert!(matches!(parse_reply(b""), ScanResult::Error(_)));
        assert!(matches!(
            parse_reply(b"/s/x: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0"),
            ScanResult::Error(e) if e.contains("limits")
        ));
        assert_eq!(
            parse_reply(
                b"/s/x: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0/s/x: Win.Test FOUND\0"
            ),
            ScanResult::Found(vec![
                "Heuristics.Limits.Exceeded.MaxFileSize".into(),
                "Win.Test".into()
            ])
        );
        assert!(matches!(parse_reply(b"garbage"), ScanResult::Error(_)));
        assert!(matches!(parse_reply(b"FOUND"), ScanResult::Error(_)));
        // A path with ": " in it still yields the name.
        assert_eq!(
            parse_reply(b"/a: b/x: W32.Test FOUND\0"),
            ScanResult::Found(vec!["W32.Test".into()])
        );
    }

    #[test]
    fn scanner_fact() {
        let enc = ScanResult::Found(vec!["Heuristics.Encrypted.Zip".into()]);
        assert_eq!(enc.scanner(), Scanner::Encrypted);
        let mixed = ScanResult::Found(vec!["Heuristics.Encrypted.Zip".into(), "Win.Test".into()]);
        assert_eq!(mixed.scanner(), Scanner::Infected);
        assert_eq!(ScanResult::Timeout.scanner(), Scanner::Timeout);
        assert_eq!(ScanResult::Error("x".into()).scanner(), Scanner::Error);
    }
}
