//! mailpolicyd's decision log: one JSON object per message per line
//! (`{"time","queue_id","client_ip","sender","size","scanner","virus":[...],
//! "verdict","quarantine_id","ms","recipients":[{"recipient","direction",
//! "disposition","quarantine","alerts","tags","rule"}]}`).

use serde::Deserialize;
use std::borrow::Cow;

/// One logged message. Unknown keys are ignored; `null` and absent are unknown.
#[derive(Debug, Deserialize)]
pub struct Logged<'a> {
    /// The SMTP client.
    #[serde(borrow, default)]
    pub client_ip: Option<Cow<'a, str>>,
    /// The envelope sender (`""` for `<>`).
    #[serde(borrow, default)]
    pub sender: Option<Cow<'a, str>>,
    /// Bytes as received.
    #[serde(default)]
    pub size: Option<i64>,
    /// `clean`, `infected`, `encrypted`, `error`, `timeout`.
    #[serde(borrow, default)]
    pub scanner: Option<Cow<'a, str>>,
    /// Every detection name (a lone string is one name).
    #[serde(borrow, default)]
    pub virus: Option<Names<'a>>,
    /// Not in the documented shape, read when a filter logs it.
    #[serde(default)]
    pub spam_score: Option<f64>,
    /// Not in the documented shape, read when a filter logs it.
    #[serde(default)]
    pub authenticated: Option<bool>,
    /// One decision per recipient.
    #[serde(borrow)]
    pub recipients: Vec<LoggedRecipient<'a>>,
}

/// `"virus": ["A", "B"]` or `"virus": "A"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Names<'a> {
    /// Several names.
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
    /// One name.
    One(#[serde(borrow)] Cow<'a, str>),
}

impl Names<'_> {
    /// The names in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (many, one): (&[Cow<'_, str>], Option<&str>) = match self {
            Names::Many(v) => (v, None),
            Names::One(s) => (&[], Some(s)),
        };
        many.iter().map(|s| s.as_ref()).chain(one)
    }
}

/// One recipient's logged decision.
#[derive(Debug, Deserialize)]
pub struct LoggedRecipient<'a> {
    /// The envelope recipient.
    #[serde(borrow)]
    pub recipient: Cow<'a, str>,
    /// `inbound`, `outbound`, `internal`, `open_relay`.
    #[serde(borrow, default)]
    pub direction: Option<Cow<'a, str>>,
    /// `pass`, `discard`, `bounce`, `reject`, `tempfail`.
    #[serde(borrow)]
    pub disposition: Cow<'a, str>,
    /// The quarantine bucket, when quarantined.
    #[serde(borrow, default)]
    pub quarantine: Option<Cow<'a, str>>,
}

/// Parses one decision-log line.
pub fn parse(line: &[u8]) -> Result<Logged<'_>, String> {
    serde_json::from_slice(line).map_err(|e| format!("not a decision-log object: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_shape() {
        let line = br#"{"time":"2026-01-10T12:00:00Z","queue_id":"4Xq","client_ip":"203.0.113.9","sender":"","size":812,"scanner":"infected","virus":["Win.Test.EICAR_HDB-1","Eicar-Signature"],"verdict":"discard","quarantine_id":"q1","ms":41,"recipients":[{"recipient":"b@example.org","direction":"inbound","disposition":"discard","quarantine":"default","alerts":["admin"],"tags":[],"rule":"viruses"}]}"#;
        let l = parse(line).unwrap();
        assert_eq!(l.client_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(l.sender.as_deref(), Some(""));
        assert_eq!(l.size, Some(812));
        let names: Vec<&str> = l.virus.as_ref().unwrap().iter().collect();
        assert_eq!(names, ["Win.Test.EICAR_HDB-1", "Eicar-Signature"]);
        assert_eq!(l.recipients.len(), 1);
        assert_eq!(l.recipients[0].disposition, "discard");
        assert_eq!(l.recipients[0].quarantine.as_deref(), Some("default"));
    }

    #[test]
    fn nulls_are_unknown_and_garbage_is_an_error() {
        let l = parse(br#"{"client_ip":null,"scanner":null,"virus":null,"recipients":[{"recipient":"a@b","direction":null,"disposition":"pass","quarantine":null}]}"#).unwrap();
        assert!(l.client_ip.is_none() && l.scanner.is_none() && l.virus.is_none());
        assert!(parse(b"{\"recipients\":").is_err());
        assert!(parse(b"{}").is_err());
    }
}
