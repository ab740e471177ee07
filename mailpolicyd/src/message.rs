//! One message as a front end received it: the envelope and the bytes
//! (CRLF line ends), with the little header work the filter does itself —
//! finding the header block, the Subject, and tagging it.

use std::net::IpAddr;

/// The envelope and connection facts of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The MTA's queue ID (milter `{i}`, XFORWARD `IDENT`).
    pub queue_id: Option<String>,
    /// The SMTP client's address (the original client after the queue).
    pub client_ip: Option<IpAddr>,
    /// The client's HELO name.
    pub helo: Option<String>,
    /// Whether the client used SMTP AUTH.
    pub authenticated: bool,
    /// The envelope sender without brackets; `""` is the null sender `<>`.
    pub sender: String,
    /// The envelope recipients without brackets, in order.
    pub recipients: Vec<String>,
}

/// A message: envelope plus the bytes as received.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// Envelope and connection facts.
    pub envelope: Envelope,
    /// Header block, empty line, body; CRLF line ends.
    pub bytes: Vec<u8>,
}

impl Message {
    /// The header block including its final empty line (or the whole
    /// message when it has no body separator).
    pub fn header_block(&self) -> &[u8] {
        &self.bytes[..header_end(&self.bytes)]
    }

    /// The Subject, decoded (RFC 2047) and unfolded, if there is one.
    pub fn subject(&self) -> Option<String> {
        let headers = mail_parser::MessageParser::new().parse_headers(self.header_block())?;
        headers.subject().map(str::to_owned)
    }

    /// The raw value of the first Subject header (after the colon, folding
    /// kept), if there is one.
    pub fn raw_subject(&self) -> Option<&[u8]> {
        raw_header(self.header_block(), b"subject").map(|(_, v)| v)
    }

    /// The message with `tags` put at the start of the Subject (see
    /// [`tagged_subject`]); unchanged when there is nothing to add.
    pub fn with_tags(&self, tags: &[String]) -> Option<Vec<u8>> {
        let raw = self.raw_subject();
        let value = tagged_subject(raw, tags)?;
        let block = self.header_block();
        let mut out = Vec::with_capacity(self.bytes.len() + value.len());
        match raw_header(block, b"subject") {
            Some((range, _)) => {
                out.extend_from_slice(&self.bytes[..range.start]);
                out.extend_from_slice(b"Subject:");
                out.extend_from_slice(&value);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&self.bytes[range.end..]);
            }
            None => {
                out.extend_from_slice(b"Subject:");
                out.extend_from_slice(&value);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&self.bytes);
            }
        }
        Some(out)
    }
}

/// Where the header block ends: just after the first empty line.
pub fn header_end(bytes: &[u8]) -> usize {
    let mut line_start = 0;
    while line_start < bytes.len() {
        let line_end = bytes[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |p| line_start + p + 1);
        let line = &bytes[line_start..line_end];
        if line == b"\r\n" || line == b"\n" {
            return line_end;
        }
        line_start = line_end;
    }
    bytes.len()
}

/// The first header named `name` (lowercase) in a header block: the byte
/// range of the whole field (continuation lines and final line end
/// included) and its raw value (after the colon, without the final line end).
pub fn raw_header<'a>(block: &'a [u8], name: &[u8]) -> Option<(std::ops::Range<usize>, &'a [u8])> {
    let mut pos = 0;
    while pos < block.len() {
        let field_start = pos;
        // The field runs to the first line end not followed by a space or tab.
        let mut end = pos;
        loop {
            match block[end..].iter().position(|&b| b == b'\n') {
                Some(p) => {
                    end += p + 1;
                    if end < block.len() && (block[end] == b' ' || block[end] == b'\t') {
                        continue;
                    }
                }
                None => end = block.len(),
            }
            break;
        }
        pos = end;
        let field = &block[field_start..end];
        if let Some(colon) = field.iter().position(|&b| b == b':') {
            if field[..colon].trim_ascii().eq_ignore_ascii_case(name) {
                let mut value = &field[colon + 1..];
                if let Some(v) = value.strip_suffix(b"\n") {
                    value = v.strip_suffix(b"\r").unwrap_or(v);
                }
                return Some((field_start..end, value));
            }
        }
    }
    None
}

/// The new raw Subject value with `tags` in front (each followed by a
/// space, in order), leaving out every tag the subject already starts
/// with; `None` when nothing is added. Tags are made header-safe.
pub fn tagged_subject(raw_subject: Option<&[u8]>, tags: &[String]) -> Option<Vec<u8>> {
    let current = raw_subject.unwrap_or(b"");
    let trimmed = current.trim_ascii_start();
    let mut prefix = String::new();
    for tag in tags {
        let tag = crate::sanitize::header_text(tag);
        if tag.is_empty() || trimmed.starts_with(tag.as_bytes()) || prefix.contains(&tag) {
            continue;
        }
        prefix.push_str(&tag);
        prefix.push(' ');
    }
    if prefix.is_empty() {
        return None;
    }
    let mut value = Vec::with_capacity(1 + prefix.len() + trimmed.len());
    value.push(b' ');
    value.extend_from_slice(prefix.as_bytes());
    value.extend_from_slice(trimmed);
    if trimmed.is_empty() {
        value.pop();
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(bytes: &[u8]) -> Message {
        Message {
            envelope: Envelope::default(),
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn subject_found_and_tagged_once() {
        let m = msg(
            b"From: a@b\r\nSubject: Hello\r\n world\r\nTo: c@d\r\n\r\nSubject: not a header\r\n",
        );
        assert_eq!(m.raw_subject(), Some(&b" Hello\r\n world"[..]));
        assert_eq!(m.subject().as_deref(), Some("Hello world"));
        let tagged = m.with_tags(&["***UNCHECKED***".into()]).unwrap();
        assert_eq!(
            tagged,
            b"From: a@b\r\nSubject: ***UNCHECKED*** Hello\r\n world\r\nTo: c@d\r\n\r\nSubject: not a header\r\n"
        );
        let again = msg(&tagged);
        assert_eq!(again.with_tags(&["***UNCHECKED***".into()]), None);
    }

    #[test]
    fn missing_subject_is_added() {
        let m = msg(b"From: a@b\r\n\r\nbody\r\n");
        assert_eq!(
            m.with_tags(&["[X]".into()]).unwrap(),
            b"Subject: [X]\r\nFrom: a@b\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn tags_keep_order_and_stay_single_line() {
        let v = tagged_subject(
            Some(b" S"),
            &["A".into(), "B\r\nBcc: x@y".into(), "A".into()],
        )
        .unwrap();
        assert_eq!(v, b" A B Bcc: x@y S");
    }
}
