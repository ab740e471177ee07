//! A private Postfix instance: its own config, queue and data directories, log file, and
//! virtual mailboxes (Maildir) for the local domain and a captured "outside" domain.
//!
//! It runs as `postfix -c DIR start-fg`, as our child. Where `unshare` works it runs in its own
//! PID namespace, so that when it stops every process of it is reaped (on these machines PID 1
//! does not reap orphans). In that case the pid file holds the namespace's PID: never run
//! `postfix -c DIR stop|reload` on a lab instance by hand; drop the `Postfix` instead.

use super::proc::{free_port, port_open, signal_pid, wait_until, Proc};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The local domain (its mailboxes: alice, bob, postmaster).
pub const LOCAL_DOMAIN: &str = "example.org";
/// A captured "outside" domain: every address there lands in one catch-all mailbox, so
/// DSNs and alerts sent to forged or external senders can be inspected.
pub const OUTSIDE_DOMAIN: &str = "outside.test";
/// The local mailboxes.
pub const LOCAL_USERS: [&str; 3] = ["alice", "bob", "postmaster"];

/// Where the filter sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `smtpd_milters = inet:127.0.0.1:FILTER_PORT` on the main smtpd port.
    BeforeQueue,
    /// `smtpd_milters = unix:LABDIR/milter.sock` (the milter on a Unix socket).
    BeforeQueueUnix,
    /// `content_filter = smtp:[127.0.0.1]:FILTER_PORT`; re-injection on the unfiltered port
    /// (`-o content_filter= -o smtpd_milters=`), `smtp_send_xforward_command = yes`.
    AfterQueue,
}

/// Ports of one Postfix instance (all on 127.0.0.1).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The smtpd clients talk to (milter or content_filter applied).
    pub smtp: u16,
    /// An smtpd that does not filter again: `[notify] submit`, and the re-injection port
    /// (`next_hop`) in the after-queue layout.
    pub unfiltered: u16,
    /// Where Postfix expects the filter: the milter socket or the content filter's port.
    pub filter: u16,
}

/// A running private Postfix.
pub struct Postfix {
    pub dir: PathBuf,
    pub etc: PathBuf,
    pub layout: Layout,
    pub ports: Ports,
    proc: Option<Proc>,
    namespaced: bool,
}

const DAEMON_DIR: &str = "/usr/lib/postfix/sbin";

/// `unshare --pid --fork --kill-child` works here (checked once).
fn can_unshare() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let ok = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "lab: unshare --pid is not available; Postfix runs without its own PID \
                 namespace (its processes may be left as zombies after it stops)"
            );
        }
        ok
    })
}

impl Postfix {
    /// Writes the instance under `dir/postfix` and starts it. `extra_main` lines are
    /// appended to main.cf (later settings win).
    pub fn start(dir: &Path, layout: Layout, extra_main: &str) -> Postfix {
        let root = dir.join("postfix");
        let etc = root.join("etc");
        for d in ["etc", "queue", "data"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir postfix dirs");
        }
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).expect("mkdir mail");
        chown(&mail, "65534:65534");
        chown(&root.join("data"), "postfix");
        let ports = Ports {
            smtp: free_port(),
            unfiltered: free_port(),
            filter: free_port(),
        };
        let r = root.display();
        let filter_lines = match layout {
            Layout::BeforeQueue => format!(
                "smtpd_milters = inet:127.0.0.1:{}\n\
                 milter_default_action = tempfail\n",
                ports.filter
            ),
            Layout::BeforeQueueUnix => format!(
                "smtpd_milters = unix:{}\n\
                 milter_default_action = tempfail\n",
                milter_socket(dir).display()
            ),
            Layout::AfterQueue => format!(
                "content_filter = smtp:[127.0.0.1]:{}\n\
                 smtp_send_xforward_command = yes\n\
                 smtpd_milters =\n",
                ports.filter
            ),
        };
        // inet_protocols has ipv6 so that XCLIENT may claim an IPv6 client (ADDR=IPV6:...);
        // every listener stays on 127.0.0.1.
        let main_cf = format!(
            "compatibility_level = 3.6\n\
             config_directory = {r}/etc\n\
             queue_directory = {r}/queue\n\
             data_directory = {r}/data\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = mx.{LOCAL_DOMAIN}\n\
             mydomain = {LOCAL_DOMAIN}\n\
             myorigin = {LOCAL_DOMAIN}\n\
             mydestination =\n\
             local_recipient_maps =\n\
             alias_maps =\n\
             alias_database =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4, ipv6\n\
             mynetworks = 127.0.0.0/8\n\
             maillog_file = {r}/postfix.log\n\
             maillog_file_prefixes = {r}\n\
             virtual_mailbox_domains = {LOCAL_DOMAIN}, {OUTSIDE_DOMAIN}\n\
             virtual_mailbox_base = {mail}\n\
             virtual_mailbox_maps = texthash:{r}/etc/vmailbox\n\
             virtual_uid_maps = static:65534\n\
             virtual_gid_maps = static:65534\n\
             virtual_mailbox_limit = 0\n\
             message_size_limit = 52428800\n\
             default_transport = error:no delivery outside the lab\n\
             relay_transport = error:no relay outside the lab\n\
             smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n\
             smtpd_authorized_xclient_hosts = 127.0.0.0/8\n\
             smtpd_authorized_xforward_hosts = 127.0.0.0/8\n\
             smtpd_peername_lookup = no\n\
             smtpd_client_connection_count_limit = 0\n\
             smtpd_client_connection_rate_limit = 0\n\
             smtpd_error_sleep_time = 0\n\
             smtpd_soft_error_limit = 1000\n\
             smtpd_hard_error_limit = 1000\n\
             smtpd_junk_command_limit = 1000\n\
             in_flow_delay = 0\n\
             default_process_limit = 200\n\
             queue_run_delay = 2s\n\
             minimal_backoff_time = 2s\n\
             maximal_backoff_time = 4s\n\
             delay_warning_time = 0\n\
             smtputf8_enable = no\n\
             biff = no\n\
             {filter_lines}\
             {extra_main}\n",
            mail = mail.display(),
        );
        std::fs::write(etc.join("main.cf"), main_cf).expect("write main.cf");
        let mut vmailbox = String::new();
        for u in LOCAL_USERS {
            vmailbox.push_str(&format!("{u}@{LOCAL_DOMAIN} {LOCAL_DOMAIN}/{u}/\n"));
        }
        vmailbox.push_str(&format!("@{OUTSIDE_DOMAIN} {OUTSIDE_DOMAIN}/catchall/\n"));
        std::fs::write(etc.join("vmailbox"), vmailbox).expect("write vmailbox");
        let n = "n";
        let master_cf = format!(
            "127.0.0.1:{smtp} inet n - {n} - - smtpd\n\
             127.0.0.1:{unf} inet n - {n} - - smtpd -o content_filter= -o smtpd_milters= \
             -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters\n\
             pickup    unix  n - {n} 60 1 pickup\n\
             cleanup   unix  n - {n} - 0 cleanup\n\
             qmgr      unix  n - {n} 300 1 qmgr\n\
             tlsmgr    unix  - - {n} 1000? 1 tlsmgr\n\
             rewrite   unix  - - {n} - - trivial-rewrite\n\
             bounce    unix  - - {n} - 0 bounce\n\
             defer     unix  - - {n} - 0 bounce\n\
             trace     unix  - - {n} - 0 bounce\n\
             verify    unix  - - {n} - 1 verify\n\
             flush     unix  n - {n} 1000? 0 flush\n\
             proxymap  unix  - - {n} - - proxymap\n\
             proxywrite unix - - {n} - 1 proxymap\n\
             smtp      unix  - - {n} - - smtp\n\
             relay     unix  - - {n} - - smtp\n\
             showq     unix  n - {n} - - showq\n\
             error     unix  - - {n} - - error\n\
             retry     unix  - - {n} - - error\n\
             discard   unix  - - {n} - - discard\n\
             local     unix  - n {n} - - local\n\
             virtual   unix  - n {n} - - virtual\n\
             lmtp      unix  - - {n} - - lmtp\n\
             anvil     unix  - - {n} - 1 anvil\n\
             scache    unix  - - {n} - 1 scache\n\
             postlog   unix-dgram n - {n} - 1 postlogd\n",
            smtp = ports.smtp,
            unf = ports.unfiltered,
        );
        std::fs::write(etc.join("master.cf"), master_cf).expect("write master.cf");
        let mut pf = Postfix {
            dir: root,
            etc,
            layout,
            ports,
            proc: None,
            namespaced: can_unshare(),
        };
        pf.run();
        pf
    }

    fn run(&mut self) {
        let mut cmd;
        if self.namespaced {
            cmd = Command::new("unshare");
            cmd.args(["--pid", "--fork", "--kill-child", "postfix", "-c"]);
        } else {
            cmd = Command::new("postfix");
            cmd.arg("-c");
        }
        cmd.arg(&self.etc).arg("start-fg");
        let mut p = Proc::spawn("postfix", cmd, &self.dir.join("start-fg.out"));
        let smtp = self.addr();
        let unf = self.unfiltered_addr();
        let up = wait_until(Duration::from_secs(60), || {
            (port_open(smtp) && port_open(unf)) || !p.alive()
        });
        if !up || !p.alive() {
            panic!(
                "postfix did not start:\n{}\n{}",
                p.log_tail(20),
                super::proc::tail(&self.log_path(), 30)
            );
        }
        self.proc = Some(p);
    }

    /// The filtered smtpd (where clients send).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.smtp))
    }

    /// The smtpd that does not filter (notify submit, after-queue next hop).
    pub fn unfiltered_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports.unfiltered))
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postfix.log")
    }

    /// The whole maillog so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// `postqueue -j`: one JSON object per queued message.
    pub fn queue(&self) -> Vec<serde_json::Value> {
        let out = Command::new("postqueue")
            .arg("-c")
            .arg(&self.etc)
            .arg("-j")
            .output()
            .expect("run postqueue");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("postqueue -j line is JSON"))
            .collect()
    }

    /// `postqueue -f`: attempt delivery of everything queued now.
    pub fn flush(&self) {
        let _ = Command::new("postqueue")
            .arg("-c")
            .arg(&self.etc)
            .arg("-f")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Stops the instance and waits until its master has gone.
    pub fn stop(&mut self) {
        let Some(mut p) = self.proc.take() else {
            return;
        };
        if self.namespaced {
            // Signal the namespace's init (master) by its PID out here: SIGTERM, then
            // SIGKILL. When it exits the kernel kills everything else in the namespace and
            // reaps it, and unshare (our child, which ignores SIGTERM while it waits) reaps
            // master and exits. Killing unshare first would orphan master instead.
            for master in child_pids(p.pid()) {
                signal_pid(master, "TERM");
                if !wait_until(Duration::from_secs(5), || !p.alive()) {
                    signal_pid(master, "KILL");
                }
            }
            p.stop_with("KILL", Duration::from_secs(5));
        } else {
            let _ = Command::new("postfix")
                .arg("-c")
                .arg(&self.etc)
                .arg("stop")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            p.stop_with("TERM", Duration::from_secs(10));
        }
        if self.namespaced {
            // The pid file names the namespace's PID 1 (`master -t` cannot tell); wait until
            // the listeners are gone instead, and remove the misleading pid file.
            let (a, b) = (self.addr(), self.unfiltered_addr());
            wait_until(Duration::from_secs(10), || !port_open(a) && !port_open(b));
            let _ = std::fs::remove_file(self.dir.join("queue/pid/master.pid"));
            return;
        }
        // `master -t` exits 0 once no master holds the instance's lock.
        let etc = self.etc.clone();
        wait_until(Duration::from_secs(10), || {
            Command::new(format!("{DAEMON_DIR}/master"))
                .arg("-c")
                .arg(&etc)
                .arg("-t")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    }

    pub fn pid(&self) -> u32 {
        self.proc.as_ref().map(Proc::pid).unwrap_or(0)
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

fn chown(path: &Path, owner: &str) {
    let st = Command::new("chown")
        .arg(owner)
        .arg(path)
        .status()
        .expect("run chown");
    assert!(st.success(), "chown {owner} {}", path.display());
}

/// The PIDs whose parent is `pid` (from /proc).
fn child_pids(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// The milter's Unix socket in the `BeforeQueueUnix` layout.
pub fn milter_socket(lab_dir: &Path) -> PathBuf {
    lab_dir.join("milter.sock")
}
