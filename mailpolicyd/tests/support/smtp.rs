//! A small blocking SMTP client that keeps every reply: what a sending MTA would see.
//!
//! It speaks just enough ESMTP for the lab: EHLO, XCLIENT (Postfix's way to let a trusted
//! test client claim another address or a SASL login), MAIL FROM (also `<>`), several RCPT,
//! DATA with dot-stuffing, RSET, QUIT. Nothing is pipelined, so each reply belongs to one
//! command.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One SMTP reply: the code and its text lines (without the code and separator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The text of all lines joined with a space, e.g. `5.7.1 Virus found`.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    /// 4xx: the client keeps the message and retries.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    /// 5xx: the client owns the failure (bounces it to its own user).
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text())
    }
}

/// Who sends and to whom, and what the client claims via XCLIENT.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// The reverse path without angle brackets; `""` sends `MAIL FROM:<>`.
    pub from: String,
    pub rcpts: Vec<String>,
    /// `XCLIENT ADDR=...`: the client IP Postfix (and its milters) will see.
    pub client_addr: Option<String>,
    /// `XCLIENT LOGIN=...`: the SASL login Postfix will report (`{auth_authen}`).
    pub login: Option<String>,
    /// The EHLO name (default `client.lab.test`).
    pub helo: Option<String>,
}

impl Envelope {
    pub fn new(from: &str, rcpts: &[&str]) -> Self {
        Envelope {
            from: from.to_string(),
            rcpts: rcpts.iter().map(|r| r.to_string()).collect(),
            ..Envelope::default()
        }
    }
    /// The client IP the MTA should see (XCLIENT ADDR).
    pub fn client(mut self, ip: &str) -> Self {
        self.client_addr = Some(ip.to_string());
        self
    }
    /// An authenticated client (XCLIENT LOGIN).
    pub fn login(mut self, name: &str) -> Self {
        self.login = Some(name.to_string());
        self
    }
}

/// Every reply of one transaction. `final_reply` is the answer to the end of DATA (None when
/// the transaction stopped earlier: MAIL or every RCPT refused, or DATA not answered 354).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub greeting: Reply,
    pub xclient: Option<Reply>,
    pub mail: Reply,
    pub rcpts: Vec<Reply>,
    pub data: Option<Reply>,
    pub final_reply: Option<Reply>,
}

impl Outcome {
    /// The reply that decided the transaction: the end-of-DATA reply if there was one, else
    /// the DATA reply, else the last RCPT reply, else the MAIL reply.
    pub fn decisive(&self) -> &Reply {
        if let Some(r) = &self.final_reply {
            return r;
        }
        if let Some(r) = &self.data {
            return r;
        }
        if let Some(r) = self.rcpts.iter().find(|r| !r.is_positive()) {
            return r;
        }
        &self.mail
    }
    /// The message was taken (250 at end of DATA).
    pub fn accepted(&self) -> bool {
        self.final_reply.as_ref().is_some_and(|r| r.code == 250)
    }
}

/// One SMTP connection.
pub struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The transcript (C: / S: lines), for failure messages.
    pub transcript: Vec<String>,
}

impl Session {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> io::Result<(Session, Reply)> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(30))?;
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        stream.set_write_timeout(Some(Duration::from_secs(600)))?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        let mut s = Session {
            reader: BufReader::new(stream),
            writer,
            transcript: Vec::new(),
        };
        let greeting = s.read_reply()?;
        Ok((s, greeting))
    }

    /// Reads one (possibly multi-line) reply.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed; transcript: {:?}", self.transcript),
                ));
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            self.transcript.push(format!("S: {line}"));
            let bad = || {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad SMTP reply line {line:?}"),
                )
            };
            if line.len() < 3 {
                return Err(bad());
            }
            let code: u16 = line[..3].parse().map_err(|_| bad())?;
            let sep = line.as_bytes().get(3).copied().unwrap_or(b' ');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if sep != b'-' {
                return Ok(Reply { code, lines });
            }
        }
    }

    /// Sends one command line (CRLF added) and reads its reply.
    pub fn command(&mut self, line: &str) -> io::Result<Reply> {
        self.transcript.push(format!("C: {line}"));
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\r\n")?;
        self.writer.flush()?;
        self.read_reply()
    }

    pub fn ehlo(&mut self, name: &str) -> io::Result<Reply> {
        self.command(&format!("EHLO {name}"))
    }

    /// `XCLIENT ADDR=.. LOGIN=..` in one command (after the first XCLIENT the client is no
    /// longer the trusted 127.0.0.1). Postfix answers with a new greeting; EHLO again after it.
    pub fn xclient(&mut self, addr: Option<&str>, login: Option<&str>) -> io::Result<Reply> {
        let mut cmd = String::from("XCLIENT");
        if let Some(a) = addr {
            cmd.push_str(&format!(" ADDR={}", xtext(a)));
        }
        if let Some(l) = login {
            cmd.push_str(&format!(" LOGIN={}", xtext(l)));
        }
        self.command(&cmd)
    }

    pub fn mail_from(&mut self, from: &str) -> io::Result<Reply> {
        self.command(&format!("MAIL FROM:<{from}>"))
    }

    pub fn rcpt_to(&mut self, rcpt: &str) -> io::Result<Reply> {
        self.command(&format!("RCPT TO:<{rcpt}>"))
    }

    /// Sends `DATA`, returns the 354 (or refusal).
    pub fn data(&mut self) -> io::Result<Reply> {
        self.command("DATA")
    }

    /// Writes message bytes inside DATA (already CRLF and dot-stuffed: see [`wire_body`]).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// Ends DATA and reads the final reply.
    pub fn end_data(&mut self) -> io::Result<Reply> {
        self.transcript.push("C: <message> .".to_string());
        self.writer.write_all(b".\r\n")?;
        self.writer.flush()?;
        self.read_reply()
    }

    pub fn quit(mut self) {
        let _ = self.command("QUIT");
    }
}

/// xtext-encodes an XCLIENT value (RFC 1891 style: `+HH` for `+`, `=` and non-printables).
pub fn xtext(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The message as it goes on the wire inside DATA: every line ending CRLF (bare LF and bare
/// CR become CRLF), lines starting with `.` doubled, and a final CRLF if missing. The
/// terminating `.` is not included.
pub fn wire_body(msg: &[u8]) -> Vec<u8> {
    let canonical = crlf(msg);
    let mut out = Vec::with_capacity(canonical.len() + 64);
    let mut at_line_start = true;
    for &b in &canonical {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    out
}

/// The message with canonical CRLF line ends and a final CRLF: exactly the bytes an MTA
/// receives (after un-dot-stuffing) when [`wire_body`] is sent.
pub fn crlf(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 40 + 2);
    let mut i = 0;
    while i < msg.len() {
        match msg[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if msg.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One whole transaction on a new connection: greeting, EHLO, XCLIENT (+EHLO), MAIL, RCPT…,
/// DATA, the message, QUIT. Stops early (RSET/QUIT) when MAIL, every RCPT or DATA is refused.
pub fn send(addr: SocketAddr, env: &Envelope, msg: &[u8]) -> io::Result<Outcome> {
    let (mut s, greeting) = Session::connect(addr)?;
    let helo = env.helo.clone().unwrap_or_else(|| "client.lab.test".into());
    let ehlo = s.ehlo(&helo)?;
    if !ehlo.is_positive() {
        return Err(io::Error::other(format!("EHLO refused: {ehlo}")));
    }
    let mut xclient = None;
    if env.client_addr.is_some() || env.login.is_some() {
        let r = s.xclient(env.client_addr.as_deref(), env.login.as_deref())?;
        if r.code != 220 {
            return Err(io::Error::other(format!("XCLIENT refused: {r}")));
        }
        xclient = Some(r);
        let again = s.ehlo(&helo)?;
        if !again.is_positive() {
            return Err(io::Error::other(format!(
                "EHLO after XCLIENT refused: {again}"
            )));
        }
    }
    let mail = s.mail_from(&env.from)?;
    let mut out = Outcome {
        greeting,
        xclient,
        mail: mail.clone(),
        rcpts: Vec::new(),
        data: None,
        final_reply: None,
    };
    if !mail.is_positive() {
        s.quit();
        return Ok(out);
    }
    for r in &env.rcpts {
        out.rcpts.push(s.rcpt_to(r)?);
    }
    if !out.rcpts.iter().any(Reply::is_positive) {
        s.quit();
        return Ok(out);
    }
    let data = s.data()?;
    out.data = Some(data.clone());
    if data.code != 354 {
        s.quit();
        return Ok(out);
    }
    s.write_raw(&wire_body(msg))?;
    out.final_reply = Some(s.end_data()?);
    s.quit();
    Ok(out)
}
