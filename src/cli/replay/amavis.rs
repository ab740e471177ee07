//! amavisd-new 2.x main log lines (the `$log_short_templ` entry at log level 0).
//!
//! A syslog line is `TIMESTAMP HOST PROGRAM[PID]: (LOGID) MESSAGE`. Only a
//! program field named `amavis` or `amavisd` (possibly with a path, as
//! amavisd's own log file writes `/usr/sbin/amavisd[PID]:`) is trusted: text
//! later on a line (a Postfix line quoting a HELO name, a subject) can never
//! make a message up. The main entry reads
//!
//! ```text
//! Passed CLEAN {RelayedInbound}, [192.0.2.7]:41234 [192.0.2.7] <a@example.net> -> <b@example.org>,<c@example.org>, Queue-ID: 4Xq, Message-ID: <m@x>, mail_id: ab, Hits: 2.1, size: 1234, queued_as: 4Xr, 312 ms
//! Blocked INFECTED (Eicar-Signature, Win.Test.X) {DiscardedInbound,Quarantined}, LOCAL [10.0.0.5]:40112 <a@example.org> -> <b@example.net>, quarantine: virus-x, ..., Hits: -, size: 812, 41 ms
//! ```
//!
//! Over syslog amavisd cuts lines longer than `$logline_maxlen` (980): the
//! first part ends with `...`, the next ones start with `(LOGID) ...`; the
//! caller joins them. The per-recipient entries of `$log_recip_templ`
//! (`Passed CLEAN, <s> -> <r>, Hits: -, tag=0, ...`: no `{actions}`) are
//! recognised and skipped. Parsing borrows from the line: no allocation.

use mailpolicy::{Direction, Disposition, Scanner};
use memchr::{memchr, memmem};
use std::net::IpAddr;

/// What a physical log line is to the replay.
#[derive(Debug, PartialEq)]
pub enum Line<'a> {
    /// Another program's line: ignored.
    Other,
    /// An amavis line that is no main log entry (debug output, a per-recipient
    /// entry, a continuation of something else): ignored.
    Skip,
    /// A main entry, whole: the text after `(LOGID) `.
    Entry { logid: &'a [u8], text: &'a [u8] },
    /// The first part of a main entry amavisd split (ends with `...`, kept).
    SplitStart { logid: &'a [u8], text: &'a [u8] },
    /// A later part of a split line: the text after `(LOGID) ...`.
    Continuation { logid: &'a [u8], text: &'a [u8] },
    /// No syslog program field at all.
    NoProgram,
}

/// Classifies a physical syslog line.
pub fn classify(line: &[u8]) -> Line<'_> {
    let Some((name, msg)) = program_field(line) else {
        return Line::NoProgram;
    };
    let base = match name.iter().rposition(|&b| b == b'/') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    if base != b"amavis" && base != b"amavisd" {
        return Line::Other;
    }
    let Some(rest) = msg.strip_prefix(b"(") else {
        return Line::Skip;
    };
    let Some(close) = memchr(b')', rest) else {
        return Line::Skip;
    };
    let logid = &rest[..close];
    let Some(text) = rest[close + 1..].strip_prefix(b" ") else {
        return Line::Skip;
    };
    if let Some(cont) = text.strip_prefix(b"...") {
        return Line::Continuation { logid, text: cont };
    }
    if text.starts_with(b"Passed ") || text.starts_with(b"Blocked ") {
        if text.ends_with(b"...") {
            return Line::SplitStart { logid, text };
        }
        return Line::Entry { logid, text };
    }
    Line::Skip
}

/// The program name (before `[PID]`) and the message after `]: `, if the line
/// has a syslog program field within its first tokens (timestamp of up to
/// three tokens, an optional host, then `NAME[PID]:`).
fn program_field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut at = 0;
    for _ in 0..6 {
        while line.get(at) == Some(&b' ') {
            at += 1;
        }
        if at >= line.len() {
            return None;
        }
        let end = memchr(b' ', &line[at..]).map_or(line.len(), |i| at + i);
        let token = &line[at..end];
        if let Some(head) = token.strip_suffix(b":") {
            // `NAME[PID]:` — the first token ending in a colon decides.
            let head = head.strip_suffix(b"]")?;
            let open = memchr(b'[', head)?;
            let pid = &head[open + 1..];
            if open == 0 || pid.is_empty() || !pid.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let msg = line.get(end + 1..).unwrap_or(&[]);
            return Some((&head[..open], msg));
        }
        at = end;
    }
    None
}

/// Whether a main entry passed its recipients or blocked them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Passed`: the listed recipients got the message.
    Passed,
    /// `Blocked`: the listed recipients did not.
    Blocked,
}

/// amavisd-new's contents category (the major one; `BAD-HEADER-N` as `BAD-HEADER`).
pub const CATEGORIES: [&str; 11] = [
    "CLEAN",
    "INFECTED",
    "UNCHECKED-ENCRYPTED",
    "UNCHECKED",
    "BANNED",
    "SPAM",
    "SPAMMY",
    "BAD-HEADER",
    "OVERSIZED",
    "MTA-BLOCKED",
    "OTHER",
];

/// The category name as amavisd writes it, normalised, or `None`.
fn category(word: &[u8]) -> Option<&'static str> {
    if word.starts_with(b"BAD-HEADER") {
        return Some("BAD-HEADER");
    }
    CATEGORIES.iter().copied().find(|c| c.as_bytes() == word)
}

/// The scanner result a category stands for (SPEC: INFECTED → infected,
/// UNCHECKED-ENCRYPTED → encrypted, UNCHECKED → error, else clean).
pub fn scanner_of(category: &str) -> Scanner {
    match category {
        "INFECTED" => Scanner::Infected,
        "UNCHECKED-ENCRYPTED" => Scanner::Encrypted,
        "UNCHECKED" => Scanner::Error,
        _ => Scanner::Clean,
    }
}

/// A parsed main entry, borrowing from its line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    /// Passed or Blocked.
    pub kind: Kind,
    /// The contents category.
    pub category: &'static str,
    /// `INFECTED (A, B)`: the names as written (`A, B`); empty otherwise.
    pub names: &'a [u8],
    /// The recipients' direction, when the action words name one.
    pub direction: Option<Direction>,
    /// What amavisd did for the listed recipients.
    pub old: Disposition,
    /// Whether it quarantined the message.
    pub quarantined: bool,
    /// The SMTP client, from `[IP]:PORT`.
    pub client_ip: Option<IpAddr>,
    /// The envelope sender (`""` for `<>`), as written inside the brackets.
    pub sender: &'a [u8],
    /// The recipient list as written: `<a>,<b>` (see [`recipients`]).
    pub recipients: &'a [u8],
    /// `Hits:` (`-` and ranges are unknown).
    pub spam_score: Option<f64>,
    /// `size:` in bytes.
    pub size: Option<i64>,
}

/// Why a line that looks like a main entry could not be read.
pub type Unreadable = &'static str;

/// Parses the text of a main entry (after `(LOGID) `). `Ok(None)` for the
/// per-recipient entries, which are skipped.
pub fn parse_entry(text: &[u8]) -> Result<Option<Entry<'_>>, Unreadable> {
    let (kind, rest) = if let Some(r) = text.strip_prefix(b"Passed ") {
        (Kind::Passed, r)
    } else if let Some(r) = text.strip_prefix(b"Blocked ") {
        (Kind::Blocked, r)
    } else {
        return Err("neither `Passed` nor `Blocked`");
    };
    let word_end = rest
        .iter()
        .position(|&b| b == b' ' || b == b',')
        .ok_or("no contents category")?;
    let category = category(&rest[..word_end]).ok_or("unknown contents category")?;
    let mut rest = &rest[word_end..];
    let mut names: &[u8] = &[];
    if let Some(r) = rest.strip_prefix(b" (") {
        // `INFECTED (A, B) {` or, in a per-recipient entry, `INFECTED (A, B), <`.
        if let Some(i) = memmem::find(r, b") {") {
            names = &r[..i];
            rest = &r[i + 1..];
        } else if memmem::find(r, b"), <").is_some() {
            return Ok(None);
        } else {
            return Err("unterminated `(names)`");
        }
    }
    if rest.starts_with(b",") {
        return Ok(None); // a per-recipient entry: `Passed CLEAN, <s> -> <r>, ...`
    }
    let r = rest
        .strip_prefix(b" {")
        .ok_or("no `{actions}` after the category")?;
    let close = memchr(b'}', r).ok_or("unterminated `{actions}`")?;
    let (direction, old, quarantined) = actions(kind, &r[..close])?;
    let r = r[close + 1..]
        .strip_prefix(b",")
        .ok_or("no `,` after `{actions}`")?;
    // Client part: policy bank names, `LOCAL`, `[IP]:PORT`, `[IP]`, up to `<sender>`.
    let lt = memchr(b'<', r).ok_or("no `<sender>`")?;
    let client_ip = client(&r[..lt]);
    let r = &r[lt..];
    let send_end = addr_end(r).ok_or("unterminated `<sender>`")?;
    let sender = &r[1..send_end];
    let r = r[send_end + 1..]
        .strip_prefix(b" -> ")
        .ok_or("no ` -> ` after the sender")?;
    let mut at = 0;
    loop {
        if r.get(at) != Some(&b'<') {
            return Err("no `<recipient>` after ` -> `");
        }
        let end = at + addr_end(&r[at..]).ok_or("unterminated `<recipient>`")?;
        at = end + 1;
        if r.get(at) == Some(&b',') && r.get(at + 1) == Some(&b'<') {
            at += 1;
            continue;
        }
        break;
    }
    let recipients = &r[..at];
    let tail = &r[at..];
    // `Hits:` and `size:` come after the (sender-controlled) Message-ID: the
    // last occurrence is amavisd's own.
    let mut spam_score = None;
    let mut size_from = tail;
    if let Some(h) = memmem::rfind(tail, b", Hits: ") {
        let v = &tail[h + 8..];
        let v = &v[..memchr(b',', v).unwrap_or(v.len())];
        spam_score = std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite());
        size_from = &tail[h..];
    }
    let size = memmem::find(size_from, b", size: ").and_then(|s| {
        let v = &size_from[s + 8..];
        let n = v.iter().take_while(|b| b.is_ascii_digit()).count();
        std::str::from_utf8(&v[..n]).ok()?.parse::<i64>().ok()
    });
    Ok(Some(Entry {
        kind,
        category,
        names,
        direction,
        old,
        quarantined,
        client_ip,
        sender,
        recipients,
        spam_score,
        size,
    }))
}

/// The index of the `>` closing the address that starts at `s[0] == b'<'`
/// (a quoted local part may hold `>` or `,`).
fn addr_end(s: &[u8]) -> Option<usize> {
    let mut quoted = false;
    let mut i = 1;
    while let Some(&b) = s.get(i) {
        match b {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The recipients of a list as written (`<a>,<b>`), without brackets.
pub fn recipients(list: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let s = list.get(at..)?;
        if s.first() != Some(&b'<') {
            return None;
        }
        let end = addr_end(s)?;
        at += end + 2; // past `>` and `,`
        Some(&s[1..end])
    })
}

/// The client address: the first `[IP]:PORT` token, else a lone `[IP]`.
fn client(part: &[u8]) -> Option<IpAddr> {
    let mut lone = None;
    for token in part.split(|&b| b == b' ') {
        let Some(t) = token.strip_prefix(b"[") else {
            continue;
        };
        let Some(close) = memchr(b']', t) else {
            continue;
        };
        let ip = parse_ip(&t[..close]);
        let after = &t[close + 1..];
        if after.first() == Some(&b':') {
            return ip;
        }
        if after.is_empty() && lone.is_none() {
            lone = ip;
        }
    }
    lone
}

fn parse_ip(s: &[u8]) -> Option<IpAddr> {
    let s = s.strip_prefix(b"IPv6:").unwrap_or(s);
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Direction, disposition and quarantine from `{RelayedInbound,Quarantined}`.
fn actions(kind: Kind, list: &[u8]) -> Result<(Option<Direction>, Disposition, bool), Unreadable> {
    let mut quarantined = false;
    // Directions seen on the words that fit this entry, and on all words.
    let (mut fit_dirs, mut all_dirs) = (0u8, 0u8);
    // Dispositions of a `Blocked` entry, as a bit set (index: severity order).
    let mut blocked = 0u8;
    for word in list.split(|&b| b == b',') {
        let word = word.strip_prefix(b" ").unwrap_or(word);
        match word {
            b"Quarantined" => {
                quarantined = true;
                continue;
            }
            b"Archived" | b"" => continue,
            _ => {}
        }
        let (verb, dir) = split_direction(word);
        let d = match verb {
            b"Relayed" | b"RelayedTagged" | b"RelayedUntagged" | b"Passed" => {
                Some(Disposition::Pass)
            }
            b"Discarded" | b"NoBounce" => Some(Disposition::Discard),
            b"Bounced" => Some(Disposition::Bounce),
            b"Rejected" => Some(Disposition::Reject),
            b"TempFailed" => Some(Disposition::Tempfail),
            _ => None,
        };
        let dir_bit = dir.map_or(0, |d| 1u8 << (d as u8));
        all_dirs |= dir_bit;
        match (kind, d) {
            (Kind::Passed, Some(Disposition::Pass)) => fit_dirs |= dir_bit,
            (Kind::Blocked, Some(d)) if d != Disposition::Pass => {
                blocked |= 1 << severity(d);
                fit_dirs |= dir_bit;
            }
            _ => {}
        }
    }
    let dirs = if fit_dirs != 0 { fit_dirs } else { all_dirs };
    let direction = (dirs.count_ones() == 1)
        .then(|| Direction::ALL.get(dirs.trailing_zeros() as usize).copied())
        .flatten();
    let old = match kind {
        // `Passed` lists the recipients that got the mail.
        Kind::Passed => Disposition::Pass,
        Kind::Blocked => {
            // Several dispositions on one entry cannot be told apart per
            // recipient: take the most severe (tempfail > reject > bounce > discard).
            if blocked == 0 {
                return Err("a `Blocked` entry without a disposition in `{actions}`");
            }
            BY_SEVERITY[7 - blocked.leading_zeros() as usize]
        }
    };
    Ok((direction, old, quarantined))
}

const BY_SEVERITY: [Disposition; 4] = [
    Disposition::Discard,
    Disposition::Bounce,
    Disposition::Reject,
    Disposition::Tempfail,
];

fn severity(d: Disposition) -> u8 {
    match d {
        Disposition::Pass | Disposition::Discard => 0,
        Disposition::Bounce => 1,
        Disposition::Reject => 2,
        Disposition::Tempfail => 3,
    }
}

/// `DiscardedInbound` → (`Discarded`, inbound).
fn split_direction(word: &[u8]) -> (&[u8], Option<Direction>) {
    const SUFFIXES: [(&[u8], Option<Direction>); 5] = [
        (b"Inbound", Some(Direction::Inbound)),
        (b"Outbound", Some(Direction::Outbound)),
        (b"Internal", Some(Direction::Internal)),
        (b"OpenRelay", Some(Direction::OpenRelay)),
        (b"Originating", None),
    ];
    for (suffix, dir) in SUFFIXES {
        if let Some(verb) = word.strip_suffix(suffix) {
            return (verb, dir);
        }
    }
    (word, None)
}

/// The virus names of `INFECTED (A, B)`.
pub fn names(list: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    list.split(|&b| b == b',')
        .map(|n| n.strip_prefix(b" ").unwrap_or(n))
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &str) -> Entry<'_> {
        match classify(line.as_bytes()) {
            Line::Entry { text, .. } => parse_entry(text).unwrap().unwrap(),
            other => panic!("not an entry: {other:?}"),
        }
    }

    #[test]
    fn a_passed_entry() {
        let e = entry("Jan 10 12:00:01 mx amavis[4242]: (04242-01) Passed CLEAN {RelayedInbound}, [192.0.2.7]:41234 [192.0.2.7] <a@example.net> -> <b@example.org>,<c@example.org>, Queue-ID: 4Xq, Message-ID: <m@x>, mail_id: ab, Hits: 2.1, size: 1234, queued_as: 4Xr, 312 ms");
        assert_eq!(e.kind, Kind::Passed);
        assert_eq!(e.category, "CLEAN");
        assert_eq!(e.direction, Some(Direction::Inbound));
        assert_eq!(e.old, Disposition::Pass);
        assert!(!e.quarantined);
        assert_eq!(e.client_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(e.sender, b"a@example.net");
        let r: Vec<&[u8]> = recipients(e.recipients).collect();
        assert_eq!(r, [&b"b@example.org"[..], b"c@example.org"]);
        assert_eq!(e.spam_score, Some(2.1));
        assert_eq!(e.size, Some(1234));
    }

    #[test]
    fn a_blocked_entry_from_the_log_file_with_a_path() {
        let e = entry("Jan 10 12:00:01 mx /usr/sbin/amavisd[4242]: (04242-02) Blocked INFECTED (Eicar-Signature, Win.Test.X) {DiscardedOutbound,Quarantined}, ORIGINATING LOCAL [10.0.0.5]:40112 <> -> <\"odd, >name\"@example.net>, quarantine: virus-x, Queue-ID: 4Xq, Message-ID: <a, Hits: 99, size: 5@evil>, mail_id: ab, Hits: -, size: 812, 41 ms");
        assert_eq!(e.kind, Kind::Blocked);
        assert_eq!(e.category, "INFECTED");
        let n: Vec<&[u8]> = names(e.names).collect();
        assert_eq!(n, [&b"Eicar-Signature"[..], b"Win.Test.X"]);
        assert_eq!(e.direction, Some(Direction::Outbound));
        assert_eq!(e.old, Disposition::Discard);
        assert!(e.quarantined);
        assert_eq!(e.client_ip, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(e.sender, b"");
        let r: Vec<&[u8]> = recipients(e.recipients).collect();
        assert_eq!(r, [&b"\"odd, >name\"@example.net"[..]]);
        assert_eq!(e.spam_score, None);
        assert_eq!(e.size, Some(812));
    }

    #[test]
    fn only_the_program_field_is_trusted() {
        let forged = "Jan 10 12:00:01 mx postfix/smtpd[77]: NOQUEUE: amavis[1]: (1-01) Passed CLEAN {RelayedInbound}, <a@b> -> <c@d>, Hits: -, size: 1, 1 ms";
        assert_eq!(classify(forged.as_bytes()), Line::Other);
        assert_eq!(classify(b"garbage without a program"), Line::NoProgram);
        assert_eq!(
            classify(b"Jan 10 12:00:01 mx amavis[4242]: (04242-01) Checking: abc"),
            Line::Skip
        );
        assert_eq!(
            classify(b"Jan 10 12:00:01 mx amavisd-new[4242]: (04242-01) Passed CLEAN {RelayedInbound}, <a@b> -> <c@d>, Hits: -, size: 1, 1 ms"),
            Line::Other
        );
        let iso = "2024-01-10T12:00:01.123456+01:00 mx amavis[9]: (00009-01) Passed CLEAN {RelayedOpenRelay}, <a@b> -> <c@d>, Hits: -, size: 1, 1 ms";
        assert_eq!(entry(iso).direction, Some(Direction::OpenRelay));
    }

    #[test]
    fn per_recipient_entries_are_skipped() {
        for text in [
            "Passed CLEAN, <a@b> -> <c@d>, Hits: -, tag=0, tag2=5, kill=6.9, 0/0/0/0",
            "Blocked INFECTED (Eicar-Signature), <a@b> -> <c@d>, Hits: -, tag=0, tag2=5, kill=6.9, 0/0/0/0",
        ] {
            assert_eq!(parse_entry(text.as_bytes()), Ok(None), "{text}");
        }
    }

    #[test]
    fn mixed_directions_are_unknown_and_blocked_takes_the_most_severe() {
        let (d, old, q) = actions(Kind::Passed, b"RelayedInternal,RelayedOutbound").unwrap();
        assert_eq!((d, old, q), (None, Disposition::Pass, false));
        let (d, old, _) = actions(Kind::Blocked, b"DiscardedInbound,RelayedInternal").unwrap();
        assert_eq!((d, old), (Some(Direction::Inbound), Disposition::Discard));
        let (_, old, _) = actions(Kind::Blocked, b"BouncedInbound,TempFailedInbound").unwrap();
        assert_eq!(old, Disposition::Tempfail);
        let (_, old, _) = actions(Kind::Blocked, b"NoBounceInbound,Quarantined").unwrap();
        assert_eq!(old, Disposition::Discard);
        assert!(actions(Kind::Blocked, b"Quarantined").is_err());
    }

    #[test]
    fn broken_entries_are_unreadable() {
        for text in [
            "Passed",
            "Passed WEIRD {RelayedInbound}, <a@b> -> <c@d>",
            "Passed CLEAN {RelayedInbound",
            "Passed CLEAN {RelayedInbound}, [1.2.3.4]:5 no sender",
            "Passed CLEAN {RelayedInbound}, <a@b -> <c@d>",
            "Passed CLEAN {RelayedInbound}, <a@b> <c@d>",
            "Passed CLEAN {RelayedInbound}, <a@b> -> nobody",
            "Blocked INFECTED (Eicar {DiscardedInbound}, <a@b> -> <c@d>",
        ] {
            assert!(parse_entry(text.as_bytes()).is_err(), "{text}");
        }
    }

    #[test]
    fn split_lines_are_recognised() {
        assert!(matches!(
            classify(b"Jan 1 00:00:00 h amavis[1]: (00001-01) Passed CLEAN {RelayedInbound}, <a@b> -> <c@d>,<e..."),
            Line::SplitStart { .. }
        ));
        assert_eq!(
            classify(b"Jan 1 00:00:00 h amavis[1]: (00001-01) ...@f>, Hits: -, size: 1, 1 ms"),
            Line::Continuation {
                logid: b"00001-01",
                text: b"@f>, Hits: -, size: 1, 1 ms"
            }
        );
    }
}
