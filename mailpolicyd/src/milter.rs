//! The milter front end (before the queue): Postfix `smtpd_milters` /
//! Sendmail `INPUT_MAIL_FILTER`. The protocol is `miltr-server`'s; this
//! module collects one message per transaction (connect info, macros,
//! envelope, headers with their leading space, body), hands it to the
//! [`Filter`], and turns the [`Answer`] into milter replies.

use crate::config::SocketAddress;
use crate::filter::{Answer, Filter, Reply};
use crate::message::{Envelope, Message};
use crate::sanitize::strip_brackets;
use async_trait::async_trait;
use miltr_common::actions::{Action, Continue, Discard, Replycode};
use miltr_common::commands::{Body, Connect, Header, Helo, Macro, Mail, Recipient};
use miltr_common::modifications::headers::{AddHeader, ChangeHeader};
use miltr_common::modifications::recipients::DeleteRecipient;
use miltr_common::modifications::ModificationResponse;
use miltr_common::optneg::{Capability, MacroStage, OptNeg, Protocol};
use miltr_server::{Milter, Server};
use std::net::IpAddr;
use std::sync::Arc;

/// The largest message the milter buffers (bigger ones are answered with a
/// tempfail rather than growing without bound).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// One milter connection's state.
pub struct Session {
    filter: Arc<Filter>,
    client_ip: Option<IpAddr>,
    helo: Option<String>,
    authenticated: bool,
    queue_id: Option<String>,
    sender: Option<String>,
    /// Recipients as the MTA gave them (DELRCPT must name them so).
    recipients: Vec<String>,
    bytes: Vec<u8>,
    /// Index of the first Subject header, counting from 1 (for CHGHEADER).
    subject_seen: bool,
    too_big: bool,
}

impl Session {
    /// A session for one MTA connection.
    pub fn new(filter: Arc<Filter>) -> Session {
        Session {
            filter,
            client_ip: None,
            helo: None,
            authenticated: false,
            queue_id: None,
            sender: None,
            recipients: Vec::new(),
            bytes: Vec::new(),
            subject_seen: false,
            too_big: false,
        }
    }

    fn reset_message(&mut self) {
        self.queue_id = None;
        self.sender = None;
        self.recipients.clear();
        self.bytes = Vec::new();
        self.subject_seen = false;
        self.too_big = false;
        self.authenticated = false;
    }

    fn push(&mut self, data: &[u8]) {
        if self.bytes.len() + data.len() > MAX_MESSAGE_BYTES {
            self.too_big = true;
            return;
        }
        self.bytes.extend_from_slice(data);
    }
}

/// The milter's error: it ends the connection (Postfix then applies
/// `milter_default_action`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SessionError(String);

fn reply_action(reply: &Reply) -> Action {
    let digits = reply.code.to_string();
    let d = digits.as_bytes();
    let rcode = [d[0] - b'0', d[1] - b'0', d[2] - b'0'];
    let xcode = reply.enhanced.as_deref().and_then(|e| {
        let p: Vec<u16> = e.split('.').filter_map(|x| x.parse().ok()).collect();
        (p.len() == 3).then(|| [p[0], p[1], p[2]])
    });
    // Milter reply text: no `%` (sendmail expands it) and no line breaks.
    let text = reply.text.replace('%', "%%");
    match xcode {
        Some(x) => Replycode::new(rcode, x, &text).into(),
        None => Replycode::without_xcode(rcode, &text).into(),
    }
}

#[async_trait]
impl Milter for Session {
    type Error = SessionError;

    async fn option_negotiation(
        &mut self,
        theirs: OptNeg,
    ) -> Result<OptNeg, miltr_server::Error<Self::Error>> {
        let mut ours = OptNeg {
            capabilities: Capability::SMFIF_DELRCPT
                | Capability::SMFIF_CHGHDRS
                | Capability::SMFIF_ADDHDRS,
            // Header values exactly as received (leading space kept), so the
            // quarantine copy is the message byte for byte.
            protocol: Protocol::SMFIP_HDR_LEADSPC,
            ..OptNeg::default()
        };
        ours.macro_stages
            .with_stage(MacroStage::MailFrom, &["i", "{auth_authen}", "{auth_type}"]);
        ours.macro_stages.with_stage(MacroStage::EndOfBody, &["i"]);
        ours.version = theirs.version.min(ours.version);
        let merged = ours
            .merge_compatible(&theirs)
            .map_err(miltr_common::ProtocolError::CompatibilityError)?;
        Ok(merged)
    }

    async fn macro_(&mut self, m: Macro) -> Result<(), Self::Error> {
        for (name, value) in m.macros() {
            let value = String::from_utf8_lossy(value);
            match name {
                b"i" if !value.is_empty() => self.queue_id = Some(value.into_owned()),
                b"{auth_authen}" | b"{auth_type}" if !value.is_empty() => self.authenticated = true,
                _ => {}
            }
        }
        Ok(())
    }

    async fn connect(&mut self, c: Connect) -> Result<Action, Self::Error> {
        let address = c.address();
        let address = address
            .trim()
            .trim_start_matches("IPv6:")
            .trim_matches(['[', ']']);
        self.client_ip = address.parse().ok();
        Ok(Continue.into())
    }

    async fn helo(&mut self, h: Helo) -> Result<Action, Self::Error> {
        self.helo = Some(h.helo().trim_end_matches('\0').to_owned());
        Ok(Continue.into())
    }

    async fn mail(&mut self, m: Mail) -> Result<Action, Self::Error> {
        let queue_id = self.queue_id.take();
        let authenticated = self.authenticated;
        self.reset_message();
        self.queue_id = queue_id;
        self.authenticated = authenticated;
        self.sender = Some(strip_brackets(&m.sender()).to_owned());
        Ok(Continue.into())
    }

    async fn rcpt(&mut self, r: Recipient) -> Result<Action, Self::Error> {
        self.recipients.push(r.recipient().into_owned());
        Ok(Continue.into())
    }

    async fn header(&mut self, h: Header) -> Result<Action, Self::Error> {
        let name = h.name();
        let value = h.value();
        if name.eq_ignore_ascii_case("subject") {
            self.subject_seen = true;
        }
        let mut field = Vec::with_capacity(name.len() + value.len() + 3);
        field.extend_from_slice(name.as_bytes());
        field.push(b':');
        // Folded values come with bare LF between lines: restore CRLF.
        let v = value.as_bytes();
        for (i, &b) in v.iter().enumerate() {
            if b == b'\n' && (i == 0 || v[i - 1] != b'\r') {
                field.push(b'\r');
            }
            field.push(b);
        }
        field.extend_from_slice(b"\r\n");
        self.push(&field);
        Ok(Continue.into())
    }

    async fn end_of_header(&mut self) -> Result<Action, Self::Error> {
        self.push(b"\r\n");
        Ok(Continue.into())
    }

    async fn body(&mut self, b: Body) -> Result<Action, Self::Error> {
        let data = b.as_bytes().to_vec();
        self.push(&data);
        Ok(Continue.into())
    }

    async fn end_of_body(&mut self) -> Result<ModificationResponse, Self::Error> {
        if self.too_big {
            let reply = Reply::for_verdict(
                mailpolicy::Verdict::Tempfail,
                Some("452 4.3.4 message too big for the content filter"),
            );
            self.reset_message();
            return Ok(ModificationResponse::builder().build(reply_action(&reply)));
        }
        let message = Message {
            envelope: Envelope {
                queue_id: self.queue_id.clone(),
                client_ip: self.client_ip,
                helo: self.helo.clone(),
                authenticated: self.authenticated,
                sender: self.sender.clone().unwrap_or_default(),
                recipients: self
                    .recipients
                    .iter()
                    .map(|r| strip_brackets(r).to_owned())
                    .collect(),
            },
            bytes: std::mem::take(&mut self.bytes),
        };
        let outcome = self.filter.process(&message).await;
        let mut response = ModificationResponse::builder();
        let response = match outcome.answer {
            Answer::Accept {
                deliver,
                remove,
                tags,
            } => {
                if deliver.is_empty() {
                    response.build(Discard)
                } else {
                    for r in &remove {
                        // Name the recipient as the MTA gave it.
                        let given = self
                            .recipients
                            .iter()
                            .find(|g| strip_brackets(g) == r)
                            .cloned()
                            .unwrap_or_else(|| format!("<{r}>"));
                        response.push(DeleteRecipient::new(given.as_bytes()));
                    }
                    if let Some(value) =
                        crate::message::tagged_subject(message.raw_subject(), &tags)
                    {
                        let value = String::from_utf8_lossy(&value).into_owned();
                        if self.subject_seen && message.raw_subject().is_some() {
                            response.push(ChangeHeader::new(1, b"Subject", value.as_bytes()));
                        } else {
                            response.push(AddHeader::new(b"Subject", value.as_bytes()));
                        }
                    }
                    response.build(Continue)
                }
            }
            Answer::Discard => response.build(Discard),
            Answer::Reject(reply) | Answer::Tempfail(reply) => response.build(reply_action(&reply)),
        };
        Ok(response)
    }

    async fn abort(&mut self) -> Result<(), Self::Error> {
        self.reset_message();
        Ok(())
    }
}

/// Serves milter connections on `listen` until `shutdown` resolves; open
/// sessions are tracked in `tasks` so the caller can wait for them.
pub async fn serve(
    filter: Arc<Filter>,
    listen: &SocketAddress,
    tasks: tokio_util::task::TaskTracker,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use tokio_util::compat::TokioAsyncReadCompatExt;
    match listen {
        SocketAddress::Inet { host, port } => {
            let listener = tokio::net::TcpListener::bind((host.as_str(), *port)).await?;
            tracing::info!("milter listening on {listen}");
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    accepted = listener.accept() => {
                        let (socket, _) = match accepted {
                            Ok(a) => a,
                            Err(e) => { tracing::warn!("milter accept failed: {e}"); continue; }
                        };
                        let _ = socket.set_nodelay(true);
                        let filter = Arc::clone(&filter);
                        tasks.spawn(async move {
                            let mut session = Session::new(filter);
                            let mut server = Server::default_postfix(&mut session);
                            if let Err(e) = server.handle_connection(socket.compat()).await {
                                tracing::debug!("milter session ended: {e}");
                            }
                        });
                    }
                }
            }
        }
        SocketAddress::Unix(path) => {
            let _ = std::fs::remove_file(path);
            let listener = tokio::net::UnixListener::bind(path)?;
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666));
            }
            tracing::info!("milter listening on {listen}");
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        let _ = std::fs::remove_file(path);
                        return Ok(());
                    }
                    accepted = listener.accept() => {
                        let (socket, _) = match accepted {
                            Ok(a) => a,
                            Err(e) => { tracing::warn!("milter accept failed: {e}"); continue; }
                        };
                        let filter = Arc::clone(&filter);
                        tasks.spawn(async move {
                            let mut session = Session::new(filter);
                            let mut server = Server::default_postfix(&mut session);
                            if let Err(e) = server.handle_connection(socket.compat()).await {
                                tracing::debug!("milter session ended: {e}");
                            }
                        });
                    }
                }
            }
        }
    }
}
