//! A private clamd with a signature database the lab writes: EICAR plus invented families
//! matched by marker strings, so a test decides exactly what a message "carries".

use super::proc::{free_port, wait_until, Proc};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The EICAR test string (68 bytes).
pub const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/// A message containing this carries `Win.Worm.Sobig-F` (a sender-forging family).
pub const SOBIG_MARKER: &str = "SOBIG-F-LAB-MARKER-7f3a";
/// A message containing this carries `Email.Phishing.Test`.
pub const PHISH_MARKER: &str = "PHISH-LAB-MARKER-9c1e";
/// A message containing this carries `PUA.Win.Test`.
pub const PUA_MARKER: &str = "PUA-LAB-MARKER-2b7d";

/// The names clamd reports for the lab's signatures (custom databases add `.UNOFFICIAL`).
pub const EICAR_NAME: &str = "Eicar-Test-Signature.UNOFFICIAL";
pub const SOBIG_NAME: &str = "Win.Worm.Sobig-F.UNOFFICIAL";
pub const PHISH_NAME: &str = "Email.Phishing.Test.UNOFFICIAL";
pub const PUA_NAME: &str = "PUA.Win.Test.UNOFFICIAL";
/// What `AlertEncrypted yes` reports for a password-protected zip.
pub const ENCRYPTED_ZIP_NAME: &str = "Heuristics.Encrypted.Zip";

/// A signature: name and the bytes it matches anywhere (also inside decoded MIME parts).
pub fn signatures() -> Vec<(&'static str, &'static str)> {
    vec![
        ("Eicar-Test-Signature", EICAR),
        ("Win.Worm.Sobig-F", SOBIG_MARKER),
        ("Email.Phishing.Test", PHISH_MARKER),
        ("PUA.Win.Test", PUA_MARKER),
    ]
}

fn hex(s: &[u8]) -> String {
    s.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running clamd (Foreground, LocalSocket and TCP on 127.0.0.1).
pub struct Clamd {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub socket: PathBuf,
    pub tcp_port: u16,
    proc: Option<Proc>,
}

impl Clamd {
    /// Writes the config and the database under `dir` (extra `.ndb` lines may be added) and
    /// starts clamd; waits until it answers PING.
    pub fn start(dir: &Path, extra_ndb: &[(String, Vec<u8>)]) -> Clamd {
        let db = dir.join("clamdb");
        std::fs::create_dir_all(&db).expect("mkdir clamdb");
        let mut ndb = String::new();
        for (name, bytes) in signatures() {
            ndb.push_str(&format!("{name}:0:*:{}\n", hex(bytes.as_bytes())));
        }
        for (name, bytes) in extra_ndb {
            ndb.push_str(&format!("{name}:0:*:{}\n", hex(bytes)));
        }
        std::fs::write(db.join("lab.ndb"), ndb).expect("write lab.ndb");
        let socket = dir.join("clamd.sock");
        let tcp_port = free_port();
        let conf = dir.join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\n\
                 LocalSocket {sock}\n\
                 LocalSocketMode 666\n\
                 TCPSocket {tcp_port}\n\
                 TCPAddr 127.0.0.1\n\
                 DatabaseDirectory {db}\n\
                 TemporaryDirectory {dir}\n\
                 LogFile {dir}/clamd.log\n\
                 LogTime yes\n\
                 AlertEncrypted yes\n\
                 StreamMaxLength 40M\n\
                 MaxFileSize 40M\n\
                 MaxScanSize 100M\n\
                 MaxThreads 20\n\
                 SelfCheck 3600\n",
                sock = socket.display(),
                db = db.display(),
                dir = dir.display(),
            ),
        )
        .expect("write clamd.conf");
        let mut c = Clamd {
            dir: dir.to_path_buf(),
            conf,
            socket,
            tcp_port,
            proc: None,
        };
        c.restart();
        c
    }

    /// Starts clamd (again) with the same config; waits until it answers PING.
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "clamd already running");
        let mut cmd = Command::new("clamd");
        cmd.arg("-c").arg(&self.conf);
        let mut p = Proc::spawn("clamd", cmd, &self.dir.join("clamd.out"));
        let sock = self.socket.clone();
        let up = wait_until(Duration::from_secs(60), || ping(&sock) || !p.alive());
        if !up || !p.alive() {
            panic!(
                "clamd did not start:\n{}\n{}",
                p.log_tail(20),
                super::proc::tail(&self.dir.join("clamd.log"), 20)
            );
        }
        self.proc = Some(p);
    }

    /// Stops clamd (SIGTERM, it removes its socket) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    /// SIGSTOP / SIGCONT: a clamd that accepts connections but never answers (timeouts).
    pub fn freeze(&self, frozen: bool) {
        if let Some(p) = &self.proc {
            p.signal(if frozen { "STOP" } else { "CONT" });
        }
    }

    pub fn running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::alive)
    }

    pub fn pid(&self) -> u32 {
        self.proc.as_ref().map(Proc::pid).unwrap_or(0)
    }

    /// What clamd says about `bytes` over INSTREAM (first match only), e.g. `stream: OK`.
    pub fn instream(&self, bytes: &[u8]) -> String {
        let mut s = UnixStream::connect(&self.socket).expect("connect clamd");
        s.set_read_timeout(Some(Duration::from_secs(60))).ok();
        s.write_all(b"zINSTREAM\0").unwrap();
        for chunk in bytes.chunks(65536) {
            s.write_all(&(chunk.len() as u32).to_be_bytes()).unwrap();
            s.write_all(chunk).unwrap();
        }
        s.write_all(&0u32.to_be_bytes()).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8_lossy(&out)
            .trim_end_matches('\0')
            .to_string()
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// clamd answers `zPING` with `PONG` on the Unix socket.
pub fn ping(sock: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    if s.write_all(b"zPING\0").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    let mut got = Vec::new();
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.contains(&0) {
            break;
        }
    }
    got.starts_with(b"PONG")
}
