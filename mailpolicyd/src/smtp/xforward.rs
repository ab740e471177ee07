//! Postfix's `XFORWARD` extension (XFORWARD_README): the MTA in front of a
//! content filter tells it who the original client was — `NAME`, `ADDR`,
//! `PORT`, `PROTO`, `HELO`, `IDENT` (the MTA's queue ID) and `SOURCE`
//! (`LOCAL`/`REMOTE`) — in xtext-encoded `NAME=VALUE` attributes, before
//! `MAIL FROM`. Values `[UNAVAILABLE]` and `[TEMPUNAVAIL]` mean unknown.
//!
//! The filter reads them (so `client_ip` and `direction` are the original
//! client's, not Postfix's) and passes them on to `next_hop` when it offers
//! XFORWARD, so the re-injected copy is logged with the original client too.

use smtp_proto::request::parser::Rfc5321Parser;
use std::net::IpAddr;

/// The attributes the filter accepts and announces, in Postfix's order.
pub const ATTRIBUTES: [&str; 7] = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"];

/// The longest XFORWARD command Postfix sends and the filter emits (the
/// XFORWARD_README's limit), CRLF included.
pub const MAX_COMMAND: usize = 512;

/// The longest attribute value kept (amavisd-new's limit too).
pub const MAX_VALUE: usize = 255;

/// XFORWARD attributes of the transaction being prepared; `None` is unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Xforward {
    /// The original client's host name (`NAME`).
    pub name: Option<String>,
    /// The original client's address (`ADDR`; IPv6 with the `IPv6:` prefix).
    pub addr: Option<String>,
    /// The original client's port (`PORT`).
    pub port: Option<String>,
    /// The protocol the original client spoke (`PROTO`: `SMTP`, `ESMTP`, ...).
    pub proto: Option<String>,
    /// The original client's HELO name (`HELO`).
    pub helo: Option<String>,
    /// The MTA's queue ID of the message (`IDENT`).
    pub ident: Option<String>,
    /// `LOCAL` or `REMOTE` (`SOURCE`).
    pub source: Option<String>,
}

impl Xforward {
    /// Applies the attributes of one `XFORWARD` command (`args`: the line
    /// after the command word, CRLF included or not). On error nothing is
    /// changed and the text for a `501` is returned.
    pub fn apply(&mut self, args: &[u8]) -> Result<(), String> {
        let mut next = self.clone();
        let mut line = args.to_vec();
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        let mut iter = line.iter();
        let mut parser = Rfc5321Parser::new(&mut iter);
        let mut count = 0;
        loop {
            // The attribute name, up to `=` (spaces before it skipped).
            let name = match parser.seek_char(b'=') {
                Ok(n) => n.to_ascii_uppercase(),
                Err(e) => return Err(format!("bad XFORWARD attribute: {e}")),
            };
            if name.is_empty() && parser.stop_char != b'=' {
                break; // end of line
            }
            if parser.stop_char != b'=' {
                return Err(format!(
                    "bad XFORWARD attribute `{}`: expected NAME=VALUE",
                    crate::sanitize::log_text(&name)
                ));
            }
            let value = match parser.xtext() {
                Ok(v) => v.into_owned(),
                Err(e) => return Err(format!("bad XFORWARD attribute value: {e}")),
            };
            if value.len() > MAX_VALUE || value.chars().any(char::is_control) {
                return Err(format!(
                    "XFORWARD attribute {} is too long or has control characters",
                    crate::sanitize::log_text(&name)
                ));
            }
            let known = !matches!(
                value.to_ascii_uppercase().as_str(),
                "[UNAVAILABLE]" | "[TEMPUNAVAIL]"
            ) && !value.is_empty();
            let value = known.then_some(value);
            let slot = match name.as_str() {
                "NAME" => &mut next.name,
                "ADDR" => &mut next.addr,
                "PORT" => &mut next.port,
                "PROTO" => &mut next.proto,
                "HELO" => &mut next.helo,
                "IDENT" => &mut next.ident,
                "SOURCE" => &mut next.source,
                other => {
                    return Err(format!(
                        "unknown XFORWARD attribute {}",
                        crate::sanitize::log_text(other)
                    ))
                }
            };
            *slot = value;
            count += 1;
            if parser.stop_char == b'\n' {
                break;
            }
        }
        if count == 0 {
            return Err("XFORWARD needs at least one NAME=VALUE attribute".into());
        }
        *self = next;
        Ok(())
    }

    /// Whether any attribute was given.
    pub fn is_empty(&self) -> bool {
        *self == Xforward::default()
    }

    /// The original client's address (`ADDR`, with or without `IPv6:`).
    pub fn client_ip(&self) -> Option<IpAddr> {
        let a = self.addr.as_deref()?.trim();
        let a = a
            .strip_prefix("IPv6:")
            .or_else(|| a.strip_prefix("ipv6:"))
            .unwrap_or(a);
        a.trim_matches(['[', ']']).parse().ok()
    }

    /// Whether the original client authenticated: Postfix forwards no AUTH
    /// name, but its `PROTO` carries RFC 3848's `A` suffix (`ESMTPA`,
    /// `ESMTPSA`) when the client used SMTP AUTH.
    pub fn authenticated(&self) -> bool {
        self.proto.as_deref().is_some_and(|p| {
            let p = p.to_ascii_uppercase();
            matches!(
                p.as_str(),
                "ESMTPA" | "ESMTPSA" | "LMTPA" | "LMTPSA" | "UTF8SMTPA" | "UTF8SMTPSA"
            )
        })
    }

    /// The XFORWARD commands (CRLF-terminated, each at most
    /// [`MAX_COMMAND`] bytes) that pass the known attributes on to a server
    /// announcing `offered` (attribute names, upper case). Unknown values
    /// are sent as `[UNAVAILABLE]` so the next hop does not keep stale ones.
    pub fn commands(&self, offered: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let mut line = String::from("XFORWARD");
        for (name, value) in [
            ("NAME", &self.name),
            ("ADDR", &self.addr),
            ("PORT", &self.port),
            ("PROTO", &self.proto),
            ("HELO", &self.helo),
            ("IDENT", &self.ident),
            ("SOURCE", &self.source),
        ] {
            if !offered.iter().any(|o| o == name) {
                continue;
            }
            let value = value
                .as_deref()
                .map_or_else(|| "[UNAVAILABLE]".to_owned(), xtext_encode);
            let attribute = format!(" {name}={value}");
            if line.len() + attribute.len() + 2 > MAX_COMMAND && line.len() > "XFORWARD".len() {
                out.push(format!("{line}\r\n"));
                line = String::from("XFORWARD");
            }
            line.push_str(&attribute);
        }
        if line.len() > "XFORWARD".len() {
            out.push(format!("{line}\r\n"));
        }
        out
    }
}

/// RFC 3461 xtext: `+`, `=`, and everything outside `!`..`~` as `+XX`.
pub fn xtext_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The attribute names in an EHLO reply's `XFORWARD` line, upper case
/// (empty when the server does not offer XFORWARD).
pub fn offered(ehlo_lines: &str) -> Vec<String> {
    for line in ehlo_lines.lines() {
        let mut words = line.split_whitespace();
        if words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("XFORWARD"))
        {
            return words.map(str::to_ascii_uppercase).collect();
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_attributes() {
        let mut x = Xforward::default();
        x.apply(b" NAME=mx.outside.test ADDR=203.0.113.9 PORT=40001 PROTO=ESMTP HELO=mx.outside.test\r\n")
            .unwrap();
        x.apply(b" IDENT=4XyZ1ab SOURCE=REMOTE\r\n").unwrap();
        assert_eq!(x.client_ip(), Some("203.0.113.9".parse().unwrap()));
        assert_eq!(x.ident.as_deref(), Some("4XyZ1ab"));
        assert_eq!(x.helo.as_deref(), Some("mx.outside.test"));
        assert!(!x.authenticated());
        x.apply(b" ADDR=IPv6:2001:db8::1 PROTO=ESMTPSA NAME=[UNAVAILABLE]")
            .unwrap();
        assert_eq!(x.client_ip(), Some("2001:db8::1".parse().unwrap()));
        assert!(x.authenticated());
        assert_eq!(x.name, None);
    }

    #[test]
    fn xtext_round_trip() {
        let mut x = Xforward::default();
        x.apply(b" HELO=a+2Bb+3Dc+20d\r\n").unwrap();
        assert_eq!(x.helo.as_deref(), Some("a+b=c d"));
        assert_eq!(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
        let cmds = x.commands(&["HELO".into(), "ADDR".into()]);
        assert_eq!(
            cmds,
            vec!["XFORWARD ADDR=[UNAVAILABLE] HELO=a+2Bb+3Dc+20d\r\n"]
        );
    }

    #[test]
    fn bad_attributes_change_nothing() {
        let mut x = Xforward::default();
        assert!(x.apply(b" ADDR=192.0.2.1 FOO=bar\r\n").is_err());
        assert!(x.is_empty());
        assert!(x.apply(b" ADDR\r\n").is_err());
        assert!(x.apply(b"\r\n").is_err());
        assert!(x.apply(b" HELO=a+0Db\r\n").is_err(), "CR in a value");
        let long = format!(" NAME={}\r\n", "a".repeat(300));
        assert!(x.apply(long.as_bytes()).is_err());
        assert!(x.is_empty());
    }

    #[test]
    fn commands_split_at_the_limit() {
        let x = Xforward {
            name: Some("n".repeat(250)),
            helo: Some("h".repeat(250)),
            addr: Some("192.0.2.1".into()),
            ..Xforward::default()
        };
        let offered: Vec<String> = ATTRIBUTES.iter().map(|s| s.to_string()).collect();
        let cmds = x.commands(&offered);
        assert!(cmds.len() >= 2, "{cmds:?}");
        assert!(cmds.iter().all(|c| c.len() <= MAX_COMMAND), "{cmds:?}");
        assert_eq!(
            offered_of("250-x\n250-XFORWARD NAME addr\n250 SIZE"),
            vec!["NAME", "ADDR"]
        );
    }

    fn offered_of(s: &str) -> Vec<String> {
        offered(&s.replace("250-", "").replace("250 ", ""))
    }
}
