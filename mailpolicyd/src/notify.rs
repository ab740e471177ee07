//! What the filter mails itself: clean DSNs (RFC 3464) for `bounce`,
//! notices for `alert`, and released quarantine copies — all submitted to
//! `[notify] submit`, an MTA port that does not filter again.
//!
//! Nothing here ever carries the original body: a DSN holds the original
//! header block as received (`text/rfc822-headers`) and nothing else of it;
//! a notice names the message. DSNs and notices go out with the null return
//! path, and a DSN is never sent to the null sender.

use crate::config::{NotifyConfig, SocketAddress};
use crate::sanitize::{header_text, is_plain_address};
use mail_builder::headers::address::Address;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;
use mail_send::smtp::AssertReply;
use std::time::Duration;

/// How long one submission may take.
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a DSN or notice says about the message it concerns.
#[derive(Debug, Clone, Default)]
pub struct About<'a> {
    /// The MTA's queue ID.
    pub queue_id: Option<&'a str>,
    /// Envelope sender (`""` for `<>`).
    pub sender: &'a str,
    /// The recipients concerned.
    pub recipients: &'a [String],
    /// The decoded Subject.
    pub subject: Option<&'a str>,
    /// The SMTP client.
    pub client_ip: Option<String>,
    /// Detection names.
    pub detections: &'a [String],
    /// The scanner fact (`infected`, `clean`, ...), if scanned.
    pub scanner: Option<&'a str>,
    /// The deciding rule (None: the default).
    pub rule: Option<&'a str>,
    /// The disposition taken.
    pub disposition: &'a str,
    /// The quarantine ID, if quarantined.
    pub quarantine_id: Option<&'a str>,
    /// The reply text of the deciding rule, if any.
    pub reply: Option<&'a str>,
}

/// Builds the filter's own clean DSN (`multipart/report;
/// report-type=delivery-status`) telling `about.sender` that
/// `about.recipients` did not get the message. `original_headers` is the
/// header block as received; `arrival` an RFC 5322 date.
pub fn build_dsn(
    config: &NotifyConfig,
    about: &About<'_>,
    original_headers: &[u8],
    arrival: &str,
) -> Vec<u8> {
    let detections = about
        .detections
        .iter()
        .map(|d| header_text(d))
        .collect::<Vec<_>>()
        .join(", ");
    let recipients: Vec<String> = about.recipients.iter().map(|r| header_text(r)).collect();
    let reason = match about.reply {
        Some(r) => header_text(r),
        None if !detections.is_empty() => {
            format!("554 5.7.1 message content rejected: {detections}")
        }
        None => "554 5.7.1 message content rejected by policy".into(),
    };
    let mut human = format!(
        "This is the mail system at host {host}.\r\n\r\n\
         Your message could not be delivered to the following recipient(s):\r\n\r\n",
        host = header_text(&config.hostname)
    );
    for r in &recipients {
        human.push_str(&format!("    <{r}>: {reason}\r\n"));
    }
    if !detections.is_empty() {
        human.push_str(&format!("\r\nThe message contained: {detections}\r\n"));
    }
    human.push_str(
        "\r\nThe message was not delivered and is not attached to this notice.\r\n\
         Its headers follow, for your reference.\r\n",
    );
    let mut status = format!(
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {host}\r\n",
        host = header_text(&config.hostname)
    );
    if let Some(q) = about.queue_id {
        status.push_str(&format!("X-Postfix-Queue-ID: {}\r\n", header_text(q)));
    }
    status.push_str(&format!("Arrival-Date: {arrival}\r\n"));
    let status_code = reply_status(&reason).unwrap_or("5.7.1");
    for r in &recipients {
        status.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: {status_code}\r\nDiagnostic-Code: smtp; {reason}\r\n"
        ));
    }
    let mut headers_part = b"Content-Type: text/rfc822-headers\r\n\r\n".to_vec();
    headers_part.extend_from_slice(original_headers);
    let report = MimePart::new(
        mail_builder::headers::content_type::ContentType::new("multipart/report")
            .attribute("report-type", "delivery-status"),
        vec![
            MimePart::new("text/plain", human),
            MimePart::raw(status.into_bytes()),
            MimePart::raw(headers_part),
        ],
    );
    let subject = match about.detections.is_empty() {
        true => "Undelivered Mail Returned to Sender".to_owned(),
        false => format!("Undelivered Mail Returned to Sender (virus found: {detections})"),
    };
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Mail Delivery System"),
            config.from.clone(),
        ))
        .to(Address::new_address(
            None::<&str>,
            header_text(about.sender),
        ))
        .subject(subject)
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .body(report)
        .write_to_vec()
        .unwrap_or_default()
}

/// Builds an alert notice to `to`: who sent what to whom, what was found,
/// which rule decided, where the copy is — never the message itself.
pub fn build_alert(config: &NotifyConfig, about: &About<'_>, to: &str) -> Vec<u8> {
    let detections = about
        .detections
        .iter()
        .map(|d| header_text(d))
        .collect::<Vec<_>>()
        .join(", ");
    let sender = if about.sender.is_empty() {
        "<>".to_owned()
    } else {
        header_text(about.sender)
    };
    let mut body = String::from("mailpolicyd handled a message:\r\n\r\n");
    let mut line = |k: &str, v: &str| body.push_str(&format!("{k:<14} {v}\r\n"));
    line("Sender:", &sender);
    line(
        "Recipients:",
        &about
            .recipients
            .iter()
            .map(|r| header_text(r))
            .collect::<Vec<_>>()
            .join(", "),
    );
    line(
        "Subject:",
        &about.subject.map(header_text).unwrap_or_default(),
    );
    line("Client:", about.client_ip.as_deref().unwrap_or("unknown"));
    line("Scanner:", about.scanner.unwrap_or("not scanned"));
    line(
        "Detections:",
        if detections.is_empty() {
            "none"
        } else {
            &detections
        },
    );
    line(
        "Rule:",
        &about.rule.map_or("(default)".to_owned(), |r| {
            format!("\"{}\"", header_text(r))
        }),
    );
    line("Decision:", about.disposition);
    line("Quarantine ID:", about.quarantine_id.unwrap_or("none"));
    line(
        "Queue ID:",
        &about
            .queue_id
            .map(header_text)
            .unwrap_or_else(|| "unknown".into()),
    );
    body.push_str("\r\nThe message itself is not attached.\r\n");
    let subject = match detections.is_empty() {
        true => format!("mailpolicyd: {} message from {sender}", about.disposition),
        false => format!("mailpolicyd: {detections} in mail from {sender}"),
    };
    MessageBuilder::new()
        .from(Address::new_address(
            Some("Content Filter"),
            config.from.clone(),
        ))
        .to(Address::new_address(None::<&str>, header_text(to)))
        .subject(subject)
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-generated"),
        )
        .text_body(body)
        .write_to_vec()
        .unwrap_or_default()
}

/// The enhanced status code (`5.7.1`) of an SMTP reply text, if it has one.
fn reply_status(reply: &str) -> Option<&str> {
    let mut words = reply.split_whitespace();
    let code = words.next()?;
    let status = words.next()?;
    let ok = code.len() == 3
        && code.bytes().all(|b| b.is_ascii_digit())
        && status.split('.').count() == 3
        && status
            .split('.')
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some(status)
}

/// Writes `message` as a DATA payload and its end marker, byte for byte:
/// dot-stuffed on every line (the first included — mail-send's transparency
/// starts after the first line end, so a message beginning with `.` would
/// otherwise end the data early and let the rest be read as commands), and
/// ended with `CRLF . CRLF` without adding an empty line (mail-send always
/// writes CRLF before the dot, so the message's own final CRLF is dropped).
pub async fn write_payload<T>(
    client: &mut mail_send::SmtpClient<T>,
    message: &[u8],
) -> std::io::Result<()>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    if message.first() == Some(&b'.') {
        client.stream.write_all(b".").await?;
    }
    match message.strip_suffix(b"\r\n") {
        Some(m) => client.write_message(m).await,
        None if message.is_empty() => {
            client.stream.write_all(b".\r\n").await?;
            client.stream.flush().await
        }
        // No final line end: the end marker's CRLF ends the last line.
        None => client.write_message(message).await,
    }
}

/// Submits mail to `[notify] submit`.
#[derive(Debug, Clone)]
pub struct Submitter {
    address: SocketAddress,
    helo: String,
}

impl Submitter {
    /// A submitter for `config`.
    pub fn new(config: &NotifyConfig) -> Submitter {
        Submitter {
            address: config.submit.clone(),
            helo: config.hostname.clone(),
        }
    }

    /// Sends `message` from `from` (`""`: the null return path) to `to`.
    /// Every address must be plain (no controls, spaces or brackets).
    pub async fn send(&self, from: &str, to: &[String], message: &[u8]) -> Result<(), String> {
        if !is_plain_address(from) {
            return Err(format!(
                "refusing to submit from {:?}",
                crate::sanitize::log_text(from)
            ));
        }
        if let Some(bad) = to.iter().find(|t| t.is_empty() || !is_plain_address(t)) {
            return Err(format!(
                "refusing to submit to {:?}",
                crate::sanitize::log_text(bad)
            ));
        }
        if to.is_empty() {
            return Ok(());
        }
        let SocketAddress::Inet { host, port } = &self.address else {
            return Err("[notify] submit must be an inet: address".into());
        };
        let builder = mail_send::SmtpClientBuilder::new(host.as_str(), *port)
            .map_err(|e| format!("submit {host}:{port}: {e}"))?
            .implicit_tls(false)
            .helo_host(self.helo.clone())
            .timeout(SUBMIT_TIMEOUT);
        let mut client = builder
            .connect_plain()
            .await
            .map_err(|e| format!("submit {host}:{port}: {e}"))?;
        let failed = |e: mail_send::Error| format!("submit {host}:{port}: {e}");
        let none = mail_send::smtp::message::Parameters::default();
        client.mail_from(from, &none).await.map_err(failed)?;
        for t in to {
            client.rcpt_to(t, &none).await.map_err(failed)?;
        }
        client
            .cmd(b"DATA\r\n")
            .await
            .and_then(|r| r.assert_code(354))
            .map_err(failed)?;
        write_payload(&mut client, message)
            .await
            .map_err(|e| format!("submit {host}:{port}: {e}"))?;
        client
            .read()
            .await
            .and_then(|r| r.assert_positive_completion())
            .map_err(failed)?;
        let _ = client.quit().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NotifyConfig {
        NotifyConfig {
            submit: SocketAddress::Inet {
                host: "127.0.0.1".into(),
                port: 10025,
            },
            from: "postmaster@example.org".into(),
            hostname: "mx.example.org".into(),
        }
    }

    #[test]
    fn dsn_is_a_clean_report() {
        let recipients = vec!["bob@example.org".to_owned()];
        let detections = vec!["Win.Test\r\nBcc: x@y".to_owned()];
        let about = About {
            sender: "alice@outside.test",
            recipients: &recipients,
            detections: &detections,
            disposition: "bounce",
            ..About::default()
        };
        let headers = b"From: alice@outside.test\r\nSubject: hi\r\n\r\n";
        let dsn = build_dsn(
            &config(),
            &about,
            headers,
            "Mon, 30 Nov 2026 06:00:00 +0000",
        );
        let text = String::from_utf8(dsn).unwrap();
        assert!(text.contains("multipart/report"), "{text}");
        assert!(
            text.contains("report-type=\"delivery-status\"")
                || text.contains("report-type=delivery-status"),
            "{text}"
        );
        assert!(
            text.contains(
                "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.7.1"
            ),
            "{text}"
        );
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nFrom: alice@outside.test\r\nSubject: hi\r\n"), "{text}");
        assert!(!text.contains("\r\nBcc:"), "header injection: {text}");
    }

    #[test]
    fn alert_names_the_message_only() {
        let recipients = vec!["bob@example.org".to_owned()];
        let detections = vec!["Eicar".to_owned()];
        let about = About {
            sender: "",
            recipients: &recipients,
            detections: &detections,
            subject: Some("hello\r\nBcc: x@y"),
            disposition: "discard",
            quarantine_id: Some("abc-1"),
            ..About::default()
        };
        let text = String::from_utf8(build_alert(&config(), &about, "admin@example.org")).unwrap();
        assert!(text.contains("Quarantine ID: abc-1"), "{text}");
        assert!(text.contains("Sender:        <>"), "{text}");
        assert!(!text.contains("\r\nBcc:"), "{text}");
    }

    /// What `write_payload` puts on the wire for `message`.
    fn wire(message: &[u8]) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            use tokio::io::AsyncReadExt;
            let (a, mut b) = tokio::io::duplex(1 << 16);
            let mut client = mail_send::SmtpClient {
                stream: a,
                timeout: Duration::from_secs(5),
            };
            write_payload(&mut client, message).await.unwrap();
            drop(client);
            let mut out = Vec::new();
            b.read_to_end(&mut out).await.unwrap();
            out
        })
    }

    #[test]
    fn payload_is_stuffed_and_ended_exactly() {
        assert_eq!(wire(b"A: b\r\n\r\nbody\r\n"), b"A: b\r\n\r\nbody\r\n.\r\n");
        // A first line starting with "." is stuffed too: no early end of data.
        assert_eq!(
            wire(b".\r\nMAIL FROM:<x@y>\r\n.x\r\n"),
            b"..\r\nMAIL FROM:<x@y>\r\n..x\r\n.\r\n"
        );
        assert_eq!(wire(b"no final line end"), b"no final line end\r\n.\r\n");
        assert_eq!(wire(b""), b".\r\n");
    }

    #[test]
    fn status_of_replies() {
        assert_eq!(reply_status("554 5.7.1 virus"), Some("5.7.1"));
        assert_eq!(reply_status("virus found"), None);
    }
}
