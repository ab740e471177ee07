//! Text the filter writes into mail or logs, made harmless: nothing that
//! came from a message (virus names, addresses, subjects, rule texts) can
//! start a new header, a new SMTP command or a new log line.

/// Longest text put into one header value or log field (longer is cut and
/// marked with `...`).
pub const MAX_FIELD_CHARS: usize = 512;

/// Text for a header value or a mail body line: every control character
/// (CR, LF, NUL, TAB, DEL, C1) becomes a space, runs of spaces collapse,
/// and the result is cut at [`MAX_FIELD_CHARS`].
pub fn header_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_FIELD_CHARS));
    let mut count = 0;
    let mut last_space = false;
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        if count == MAX_FIELD_CHARS {
            out.push_str("...");
            break;
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
    }
    out.trim().to_owned()
}

/// Text for a log line: control characters are written as `\xNN` /
/// `\u{NNNN}` escapes, so one log entry is always one line and the escape
/// shows what was there. Cut at [`MAX_FIELD_CHARS`] characters.
pub fn log_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_FIELD_CHARS));
    for (count, c) in text.chars().enumerate() {
        if count == MAX_FIELD_CHARS {
            out.push_str("...");
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Whether `address` can go into an SMTP command or an address header as it
/// is: printable, no spaces, no `<>`, `,`, `;`, `"`, `\`, `(`, `)`, at
/// most 320 bytes. (Quoted local parts are refused rather than handled.)
pub fn is_plain_address(address: &str) -> bool {
    address.len() <= 320
        && address
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"<>,;\"\\()[]".contains(c))
}

/// An envelope address as the MTA gave it (`<a@b>`, `a@b`, `<>`), without
/// its angle brackets and surrounding space.
pub fn strip_brackets(address: &str) -> &str {
    let a = address.trim();
    a.strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(a)
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_line_breaks_survive() {
        let hostile = "Win.Test\r\nBcc: victim@example.com\r\n\r\nbody\x00\u{85}x";
        let h = header_text(hostile);
        assert!(!h.contains(['\r', '\n', '\0', '\u{85}']), "{h:?}");
        assert_eq!(h, "Win.Test Bcc: victim@example.com body x");
        let l = log_text(hostile);
        assert!(!l.contains(['\r', '\n', '\0', '\u{85}']), "{l:?}");
        assert!(l.starts_with("Win.Test\\x0d\\x0aBcc"), "{l}");
    }

    #[test]
    fn long_text_is_cut() {
        let long = "a".repeat(10_000);
        assert_eq!(header_text(&long).chars().count(), MAX_FIELD_CHARS + 3);
        assert_eq!(log_text(&long).chars().count(), MAX_FIELD_CHARS + 3);
    }

    #[test]
    fn addresses() {
        assert!(is_plain_address("alice@example.org"));
        assert!(!is_plain_address("a@b\r\nRCPT TO:<x@y>"));
        assert!(!is_plain_address("a b@c"));
        assert!(!is_plain_address("<a@b>"));
        assert_eq!(strip_brackets(" <a@b> "), "a@b");
        assert_eq!(strip_brackets("<>"), "");
        assert_eq!(strip_brackets("a@b"), "a@b");
    }
}
