//! Test messages and what arrives in the lab's Maildirs.

use std::path::Path;
use std::process::Command;

/// Builds an RFC 5322 message with a unique `X-Lab-Id` (to find it again anywhere) and
/// optional base64 attachments.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    pub id: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub attachments: Vec<(String, String, Vec<u8>)>,
}

/// A message identified by `id` (put in `X-Lab-Id` and the Message-ID).
pub fn message(id: &str) -> MessageBuilder {
    MessageBuilder {
        id: id.to_string(),
        from: "sender@outside.test".into(),
        to: vec!["alice@example.org".into()],
        subject: format!("lab message {id}"),
        headers: Vec::new(),
        body: format!("Hello, this is lab message {id}.\n"),
        attachments: Vec::new(),
    }
}

impl MessageBuilder {
    pub fn from(mut self, f: &str) -> Self {
        self.from = f.into();
        self
    }
    pub fn to(mut self, t: &[&str]) -> Self {
        self.to = t.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn subject(mut self, s: &str) -> Self {
        self.subject = s.into();
        self
    }
    /// An extra header line, written as given (`name: value`, value may hold folds).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, b: &str) -> Self {
        self.body = b.into();
        self
    }
    /// Appends text to the body (e.g. a signature marker).
    pub fn with_text(mut self, t: &str) -> Self {
        self.body.push_str(t);
        self.body.push('\n');
        self
    }
    /// Adds a base64-encoded attachment.
    pub fn attach(mut self, name: &str, content_type: &str, bytes: &[u8]) -> Self {
        self.attachments
            .push((name.into(), content_type.into(), bytes.to_vec()));
        self
    }

    /// The message, CRLF line ends.
    pub fn build(&self) -> Vec<u8> {
        let mut m = String::new();
        m.push_str(&format!("From: <{}>\r\n", self.from));
        m.push_str(&format!("To: {}\r\n", self.to.join(", ")));
        m.push_str(&format!("Subject: {}\r\n", self.subject));
        m.push_str(&format!("Message-ID: <{}@lab.test>\r\n", self.id));
        m.push_str("Date: Mon, 30 Nov 2026 06:00:00 +0000\r\n");
        m.push_str(&format!("X-Lab-Id: {}\r\n", self.id));
        for (n, v) in &self.headers {
            m.push_str(&format!("{n}: {v}\r\n"));
        }
        m.push_str("MIME-Version: 1.0\r\n");
        if self.attachments.is_empty() {
            m.push_str("Content-Type: text/plain; charset=us-ascii\r\n\r\n");
            m.push_str(&self.body.replace("\r\n", "\n").replace('\n', "\r\n"));
        } else {
            let b = format!("lab-boundary-{}", self.id);
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n\
                 This is a multi-part message in MIME format.\r\n\
                 --{b}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            ));
            m.push_str(&self.body.replace("\r\n", "\n").replace('\n', "\r\n"));
            for (name, ct, bytes) in &self.attachments {
                m.push_str(&format!(
                    "\r\n--{b}\r\nContent-Type: {ct}; name=\"{name}\"\r\n\
                     Content-Transfer-Encoding: base64\r\n\
                     Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n"
                ));
                m.push_str(&base64_lines(bytes));
            }
            m.push_str(&format!("\r\n--{b}--\r\n"));
        }
        if !m.ends_with("\r\n") {
            m.push_str("\r\n");
        }
        m.into_bytes()
    }
}

/// Base64 in 76-character lines, CRLF line ends.
pub fn base64_lines(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut raw = String::with_capacity(bytes.len() * 4 / 3 + 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        raw.push(A[(n >> 18) as usize & 63] as char);
        raw.push(A[(n >> 12) as usize & 63] as char);
        raw.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        raw.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    let mut out = String::with_capacity(raw.len() + raw.len() / 76 * 2 + 2);
    for line in raw.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// A password-protected zip (made by Info-ZIP's `zip -P`) holding one file.
pub fn encrypted_zip(workdir: &Path, inner_name: &str, content: &[u8]) -> Vec<u8> {
    let d = workdir.join(super::proc::unique_name("zip"));
    std::fs::create_dir_all(&d).expect("mkdir zip dir");
    std::fs::write(d.join(inner_name), content).expect("write zip member");
    let st = Command::new("zip")
        .current_dir(&d)
        .args(["-q", "-P", "lab-secret", "out.zip", inner_name])
        .status()
        .expect("run zip (Debian package `zip`)");
    assert!(st.success(), "zip -P failed");
    std::fs::read(d.join("out.zip")).expect("read out.zip")
}

/// Every message in a Maildir (new/ and cur/), sorted by file name (delivery order).
pub fn maildir_messages(dir: &Path) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            for e in rd.flatten() {
                files.push(e.path());
            }
        }
    }
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// How many times `needle` occurs in `hay` (non-overlapping).
pub fn count(hay: &[u8], needle: &[u8]) -> usize {
    if needle.is_empty() {
        return 0;
    }
    let mut n = 0;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if &hay[i..i + needle.len()] == needle {
            n += 1;
            i += needle.len();
        } else {
            i += 1;
        }
    }
    n
}

/// The header block of a message (up to the first empty line), unfolded, as (name, value).
pub fn headers(msg: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(msg);
    let head = match text.find("\r\n\r\n").or_else(|| text.find("\n\n")) {
        Some(i) => &text[..i],
        None => &text[..],
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.to_string(), v.trim().to_string()));
        }
    }
    out
}

/// The first header named `name` (case-insensitive), unfolded.
pub fn header(msg: &[u8], name: &str) -> Option<String> {
    headers(msg)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}
