//! The TOML configuration (`SPEC.md`, "Config"): every key checked, unknown
//! keys refused with their line, values validated before the filter starts.

use ipnet::IpNet;
use mailpolicy::Limits;
use regex::Regex;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// amavisd-new 2.x's built-in `@viruses_that_fake_sender_maps`, in its
/// order (the first matching entry decides): the mass-mailer families, then
/// test patterns and jokes that forge nothing, then "every other virus forges"
/// — so by default only EICAR-style test names get a DSN or a sender notice.
pub const AMAVIS_FORGING_VIRUSES: &[(&str, bool)] = &[
    (
        r"(?i)nimda|hybris|klez|bugbear|yaha|braid|sobig|fizzer|palyh|peido|holar",
        true,
    ),
    (
        r"(?i)tanatos|lentin|bridex|mimail|trojan\.dropper|dumaru|parite|spaces",
        true,
    ),
    (
        r"(?i)dloader|galil|gibe|swen|netwatch|bics|sbrowse|sober|rox|val(hal)?la",
        true,
    ),
    (
        r"(?i)frethem|sircam|be?agle|tanx|mydoom|novarg|shimg|netsky|somefool|moodown",
        true,
    ),
    (r"@mm|@MM", true),
    (r"(?i)Worm", true),
    (r"(?i)^(EICAR|Joke\.|Junk\.)", false),
    (r"(?i)^(WM97|OF97|W95/CIH-|JS/Fort)", false),
    (r".*", true),
];

/// Where a socket lives: Postfix's `inet:HOST:PORT` / `unix:PATH` syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketAddress {
    /// A TCP address (host name or IP literal, and port).
    Inet {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// A Unix-domain socket path.
    Unix(PathBuf),
}

impl SocketAddress {
    /// Parses `inet:HOST:PORT`, `inet:[V6]:PORT`, `unix:PATH`, a bare
    /// `HOST:PORT`, or a bare absolute path.
    pub fn parse(text: &str) -> Result<SocketAddress, String> {
        if let Some(path) = text
            .strip_prefix("unix:")
            .or_else(|| text.strip_prefix("local:"))
        {
            if path.is_empty() {
                return Err("a unix: address needs a path".into());
            }
            return Ok(SocketAddress::Unix(PathBuf::from(path)));
        }
        if text.starts_with('/') {
            return Ok(SocketAddress::Unix(PathBuf::from(text)));
        }
        let rest = text.strip_prefix("inet:").unwrap_or(text);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{text}`: missing `]` after the IPv6 address"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("`{text}`: expected `:PORT` after `]`"))?;
            (host, port)
        } else {
            rest.rsplit_once(':')
                .ok_or_else(|| format!("`{text}`: expected inet:HOST:PORT or unix:PATH"))?
        };
        if host.is_empty() {
            return Err(format!("`{text}`: the host is empty"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{text}`: `{port}` is not a port number"))?;
        Ok(SocketAddress::Inet {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddress::Inet { host, port } if host.contains(':') => {
                write!(f, "inet:[{host}]:{port}")
            }
            SocketAddress::Inet { host, port } => write!(f, "inet:{host}:{port}"),
            SocketAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A configuration error, placed at its line and column in the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ConfigError {
    /// The config file.
    pub file: String,
    /// 1-based line (0 when the error has no place, e.g. an unreadable file).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, lowercase.
    pub message: String,
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// The policy file.
    pub policy: PathBuf,
    /// The milter front end, if configured.
    pub milter: Option<MilterConfig>,
    /// The after-queue SMTP front end, if configured.
    pub smtp: Option<SmtpConfig>,
    /// How to reach clamd.
    pub clamd: ClamdConfig,
    /// What is ours.
    pub site: SiteConfig,
    /// Where quarantined copies go.
    pub quarantine_dir: PathBuf,
    /// Notices, DSNs and releases.
    pub notify: NotifyConfig,
    /// Logs.
    pub log: LogConfig,
    /// `[limits]`: the limits the policy is parsed with (the library's
    /// defaults unless raised here).
    pub limits: Limits,
}

/// `[milter]`.
#[derive(Debug, Clone)]
pub struct MilterConfig {
    /// `listen`.
    pub listen: SocketAddress,
}

/// `[smtp]`: the after-queue content filter.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `listen` (host:port).
    pub listen: SocketAddress,
    /// `next_hop`: where passing mail is re-injected.
    pub next_hop: SocketAddress,
    /// `clients`: who may connect (default loopback only).
    pub clients: Vec<IpNet>,
    /// `authenticated_listen`: a second port (amavisd-new's `ORIGINATING`
    /// policy bank, usually 10026) for the submission service's
    /// `content_filter`: mail handed in there counts as `authenticated`
    /// (Postfix does not forward the SASL login through XFORWARD).
    pub authenticated_listen: Option<SocketAddress>,
}

/// `[clamd]`.
#[derive(Debug, Clone)]
pub struct ClamdConfig {
    /// `address`.
    pub address: SocketAddress,
    /// `timeout_ms`.
    pub timeout: Duration,
    /// `spool_dir`: private copies for `ALLMATCHSCAN` (None: `INSTREAM`,
    /// which reports the first match only).
    pub spool_dir: Option<PathBuf>,
}

/// `[site]`.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// `local_domains`: exact domains, or `*.domain` for its subdomains.
    pub local_domains: Vec<String>,
    /// `mynetworks`.
    pub mynetworks: Vec<IpNet>,
    /// `forging_viruses`, compiled: (regex, forges) pairs, the first match
    /// decides. A configured list is all `true` (a name matching none of
    /// them does not forge); the default is [`AMAVIS_FORGING_VIRUSES`].
    pub forging_viruses: Vec<(Regex, bool)>,
}

/// `[notify]`.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `submit`: an MTA port that does not filter again.
    pub submit: SocketAddress,
    /// `from`: the From: of notices and DSNs.
    pub from: String,
    /// `hostname`: the name this filter reports in DSNs (default: the host's).
    pub hostname: String,
}

/// How much the main log says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// One line per message (the default).
    #[default]
    Info,
    /// Plus a `TIMING` line per message.
    Debug,
}

/// `[log]`.
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    /// `level`: `error`, `warn`, `info` (default: one line per message) or
    /// `debug` (adds a `TIMING` line per message, as amavisd-new's log level 2).
    pub level: LogLevel,
    /// `file`: the main log (default stderr).
    pub file: Option<PathBuf>,
    /// `decisions`: the JSON-lines decision log.
    pub decisions: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    policy: Spanned<String>,
    milter: Option<RawMilter>,
    smtp: Option<RawSmtp>,
    clamd: Option<RawClamd>,
    site: Option<RawSite>,
    quarantine: Option<RawQuarantine>,
    notify: Option<RawNotify>,
    log: Option<RawLog>,
    limits: Option<RawLimits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMilter {
    listen: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    listen: Spanned<String>,
    next_hop: Spanned<String>,
    clients: Option<Vec<Spanned<String>>>,
    authenticated_listen: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClamd {
    address: Option<Spanned<String>>,
    timeout_ms: Option<Spanned<i64>>,
    spool_dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    local_domains: Option<Vec<Spanned<String>>>,
    mynetworks: Option<Vec<Spanned<String>>>,
    forging_viruses: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuarantine {
    dir: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    submit: Option<Spanned<String>>,
    from: Option<Spanned<String>>,
    hostname: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_eval_steps: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    file: Option<String>,
    decisions: Option<String>,
    level: Option<Spanned<String>>,
}

impl Config {
    /// Reads and validates a config file. Relative paths in it are taken
    /// relative to the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the config: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base)
    }

    /// Parses config text; `file` names it in errors, `base` anchors relative paths.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let place = |span: Option<std::ops::Range<usize>>, message: String| {
            let (line, column) = span.map_or((0, 0), |s| line_column(text, s.start));
            ConfigError {
                file: file.to_owned(),
                line,
                column,
                message,
            }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            // toml's message repeats the place and the source line; keep its first line.
            let message = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_owned();
            place(e.span(), message)
        })?;
        let at = |s: &Spanned<String>, message: String| place(Some(s.span()), message);
        let socket = |s: &Spanned<String>| SocketAddress::parse(s.get_ref()).map_err(|m| at(s, m));
        let path_of = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };

        let milter = match &raw.milter {
            Some(m) => Some(MilterConfig {
                listen: socket(&m.listen)?,
            }),
            None => None,
        };
        let smtp = match &raw.smtp {
            Some(s) => {
                let listen = socket(&s.listen)?;
                if matches!(listen, SocketAddress::Unix(_)) {
                    return Err(at(
                        &s.listen,
                        "the smtp front end listens on HOST:PORT".into(),
                    ));
                }
                let mut clients = Vec::new();
                for c in s.clients.iter().flatten() {
                    clients.push(parse_net(c.get_ref()).map_err(|m| at(c, m))?);
                }
                if s.clients.is_none() {
                    clients = vec![
                        "127.0.0.0/8".parse().expect("literal"),
                        "::1/128".parse().expect("literal"),
                    ];
                }
                let authenticated_listen = match &s.authenticated_listen {
                    Some(a) => match socket(a)? {
                        SocketAddress::Unix(_) => {
                            return Err(at(a, "the smtp front end listens on HOST:PORT".into()))
                        }
                        inet => Some(inet),
                    },
                    None => None,
                };
                Some(SmtpConfig {
                    authenticated_listen,
                    listen,
                    next_hop: socket(&s.next_hop)?,
                    clients,
                })
            }
            None => None,
        };
        if milter.is_none() && smtp.is_none() {
            return Err(place(
                None,
                "neither [milter] nor [smtp] is configured: nothing to listen on".into(),
            ));
        }

        let clamd = {
            let c = raw.clamd.as_ref();
            let address = match c.and_then(|c| c.address.as_ref()) {
                Some(a) => socket(a)?,
                None => SocketAddress::Unix(PathBuf::from("/run/clamav/clamd.ctl")),
            };
            let timeout = match c.and_then(|c| c.timeout_ms.as_ref()) {
                Some(t) if *t.get_ref() > 0 && *t.get_ref() <= 3_600_000 => {
                    Duration::from_millis(*t.get_ref() as u64)
                }
                Some(t) => {
                    return Err(place(
                        Some(t.span()),
                        "timeout_ms must be between 1 and 3600000".into(),
                    ))
                }
                None => Duration::from_secs(30),
            };
            ClamdConfig {
                address,
                timeout,
                spool_dir: c.and_then(|c| c.spool_dir.as_deref()).map(path_of),
            }
        };

        let site = {
            let s = raw.site.as_ref();
            let mut local_domains = Vec::new();
            for d in s
                .and_then(|s| s.local_domains.as_ref())
                .into_iter()
                .flatten()
            {
                let name = d.get_ref().trim().to_ascii_lowercase();
                let bare = name.strip_prefix("*.").unwrap_or(&name);
                if bare.is_empty() || bare.contains(['@', ' ', '*']) {
                    return Err(at(
                        d,
                        format!(
                            "`{}` is not a domain (write example.org or *.example.org)",
                            d.get_ref()
                        ),
                    ));
                }
                local_domains.push(name);
            }
            let mut mynetworks = Vec::new();
            match s.and_then(|s| s.mynetworks.as_ref()) {
                Some(nets) => {
                    for n in nets {
                        mynetworks.push(parse_net(n.get_ref()).map_err(|m| at(n, m))?);
                    }
                }
                None => {
                    mynetworks = vec![
                        "127.0.0.0/8".parse().expect("literal"),
                        "::1/128".parse().expect("literal"),
                    ];
                }
            }
            let mut forging_viruses = Vec::new();
            match s.and_then(|s| s.forging_viruses.as_ref()) {
                Some(list) => {
                    for r in list {
                        let re = regex::RegexBuilder::new(r.get_ref())
                            .size_limit(1 << 20)
                            .build()
                            .map_err(|e| {
                                at(r, format!("invalid regex: {}", first_line(&e.to_string())))
                            })?;
                        forging_viruses.push((re, true));
                    }
                }
                None => {
                    for (r, forges) in AMAVIS_FORGING_VIRUSES {
                        forging_viruses.push((Regex::new(r).expect("literal regex"), *forges));
                    }
                }
            }
            SiteConfig {
                local_domains,
                mynetworks,
                forging_viruses,
            }
        };

        let quarantine_dir = raw
            .quarantine
            .as_ref()
            .map(|q| path_of(&q.dir))
            .unwrap_or_else(|| PathBuf::from("/var/lib/mailpolicyd/quarantine"));

        let notify = {
            let n = raw.notify.as_ref();
            let submit = match n.and_then(|n| n.submit.as_ref()) {
                Some(a) => socket(a)?,
                None => SocketAddress::Inet {
                    host: "127.0.0.1".into(),
                    port: 10025,
                },
            };
            let hostname = match n.and_then(|n| n.hostname.as_ref()) {
                Some(h) => h.get_ref().clone(),
                None => system_hostname(),
            };
            let from = match n.and_then(|n| n.from.as_ref()) {
                Some(f) => {
                    if !crate::sanitize::is_plain_address(f.get_ref()) || f.get_ref().is_empty() {
                        return Err(at(
                            f,
                            format!("`{}` is not a plain mail address", f.get_ref()),
                        ));
                    }
                    f.get_ref().clone()
                }
                None => format!("postmaster@{hostname}"),
            };
            NotifyConfig {
                submit,
                from,
                hostname,
            }
        };

        let mut log = LogConfig::default();
        if let Some(l) = raw.log.as_ref() {
            log.file = l.file.as_deref().map(path_of);
            log.decisions = l.decisions.as_deref().map(path_of);
            if let Some(level) = &l.level {
                log.level = match level.get_ref().as_str() {
                    "error" => LogLevel::Error,
                    "warn" => LogLevel::Warn,
                    "info" => LogLevel::Info,
                    "debug" => LogLevel::Debug,
                    other => {
                        return Err(at(
                            level,
                            format!("unknown log level `{other}` (error, warn, info or debug)"),
                        ))
                    }
                };
            }
        }

        let mut limits = Limits::default();
        if let Some(steps) = raw.limits.as_ref().and_then(|l| l.max_eval_steps.as_ref()) {
            limits.max_eval_steps = match u64::try_from(*steps.get_ref()) {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(place(
                        Some(steps.span()),
                        "max_eval_steps must be at least 1".into(),
                    ))
                }
            };
        }

        Ok(Config {
            policy: path_of(raw.policy.get_ref()),
            milter,
            smtp,
            clamd,
            site,
            quarantine_dir,
            notify,
            log,
            limits,
        })
    }
}

impl SiteConfig {
    /// Whether `ip` is one of ours (`mynetworks`; an IPv4-mapped IPv6
    /// address counts as its IPv4 address).
    pub fn in_mynetworks(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.mynetworks.iter().any(|n| n.contains(&ip))
    }

    /// Whether the recipient's domain is local (`local_domains`).
    pub fn is_local_recipient(&self, recipient: &str) -> bool {
        let Some((_, domain)) = recipient.rsplit_once('@') else {
            // A bare local part (`postmaster`) is ours.
            return !recipient.is_empty();
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.local_domains
            .iter()
            .any(|d| match d.strip_prefix("*.") {
                Some(parent) => {
                    domain.len() > parent.len() + 1
                        && domain.ends_with(parent)
                        && domain.as_bytes()[domain.len() - parent.len() - 1] == b'.'
                }
                None => *d == domain,
            })
    }

    /// `forges_sender` for a set of detection names: true when any matches
    /// `forging_viruses`, false otherwise; `None` when nothing was found.
    pub fn forges_sender(&self, names: &[String]) -> Option<bool> {
        if names.is_empty() {
            return None;
        }
        Some(names.iter().any(|n| {
            self.forging_viruses
                .iter()
                .find(|(r, _)| r.is_match(n))
                .is_some_and(|(_, forges)| *forges)
        }))
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; anything else unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(format!(
                "`{text}` has host bits set (did you mean {}?)",
                net.trunc()
            ));
        }
        return Ok(net);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("`{text}` is not an IP address or CIDR network"))
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty() && crate::sanitize::is_plain_address(h))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "t.toml", Path::new("/etc/mailpolicyd"))
    }

    #[test]
    fn unknown_key_is_placed_at_its_line() {
        let e = parse("policy = \"p\"\n[milter]\nlisten = \"inet:127.0.0.1:1\"\nlisen = 3\n")
            .unwrap_err();
        assert_eq!((e.line, e.column), (4, 1), "{e}");
        assert!(e.message.contains("lisen"), "{e}");
    }

    #[test]
    fn smtp_front_end() {
        let c = parse("policy = \"p\"\n[smtp]\nlisten = \"127.0.0.1:10024\"\nnext_hop = \"127.0.0.1:10025\"\n")
            .unwrap();
        let s = c.smtp.unwrap();
        assert_eq!(s.authenticated_listen, None);
        assert_eq!(s.clients.len(), 2, "loopback by default");
        let c = parse("policy = \"p\"\n[smtp]\nlisten = \"127.0.0.1:10024\"\nnext_hop = \"127.0.0.1:10025\"\nauthenticated_listen = \"127.0.0.1:10026\"\n")
            .unwrap();
        assert_eq!(
            c.smtp.unwrap().authenticated_listen,
            Some(SocketAddress::Inet {
                host: "127.0.0.1".into(),
                port: 10026
            })
        );
        let e = parse("policy = \"p\"\n[smtp]\nlisten = \"127.0.0.1:10024\"\nnext_hop = \"127.0.0.1:10025\"\nauthenticated_listen = \"unix:/x\"\n")
            .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
    }

    #[test]
    fn addresses_in_postfix_syntax() {
        assert_eq!(
            SocketAddress::parse("inet:[::1]:7358").unwrap(),
            SocketAddress::Inet {
                host: "::1".into(),
                port: 7358
            }
        );
        assert_eq!(
            SocketAddress::parse("unix:/run/m.sock").unwrap(),
            SocketAddress::Unix("/run/m.sock".into())
        );
        assert_eq!(
            SocketAddress::parse("127.0.0.1:10024").unwrap(),
            SocketAddress::Inet {
                host: "127.0.0.1".into(),
                port: 10024
            }
        );
        assert!(SocketAddress::parse("inet:127.0.0.1").is_err());
        assert!(SocketAddress::parse("inet:127.0.0.1:99999").is_err());
    }

    #[test]
    fn bad_values_are_placed() {
        let e = parse("policy = \"p\"\n[milter]\nlisten = \"unix:/x\"\n[site]\nmynetworks = [\"10.1.2.3/8\"]\n")
            .unwrap_err();
        assert_eq!(e.line, 5);
        assert!(e.message.contains("10.0.0.0/8"), "{e}");
        let e = parse(
            "policy = \"p\"\n[milter]\nlisten = \"unix:/x\"\n[site]\nforging_viruses = [\"(\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 5);
        assert!(e.message.starts_with("invalid regex"), "{e}");
    }

    #[test]
    fn limits_raise_the_evaluation_steps() {
        let base = "policy = \"p\"\n[milter]\nlisten = \"unix:m\"\n";
        let d = parse(base).unwrap();
        assert_eq!(d.limits, Limits::default());
        let c = parse(&format!("{base}[limits]\nmax_eval_steps = 100000\n")).unwrap();
        assert_eq!(c.limits.max_eval_steps, 100_000);
        // Only that limit changes.
        assert_eq!(
            c.limits,
            Limits {
                max_eval_steps: 100_000,
                ..Limits::default()
            }
        );
        for bad in ["0", "-5"] {
            let e = parse(&format!("{base}[limits]\nmax_eval_steps = {bad}\n")).unwrap_err();
            assert_eq!((e.line, e.column), (5, 18), "{e}");
            assert_eq!(e.message, "max_eval_steps must be at least 1");
        }
        let e = parse(&format!("{base}[limits]\nmax_eval_steps = \"lots\"\n")).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        let e = parse(&format!("{base}[limits]\nmax_rules = 5\n")).unwrap_err();
        assert_eq!((e.line, e.column), (5, 1), "{e}");
        assert!(e.message.contains("max_rules"), "{e}");
    }

    #[test]
    fn site_facts() {
        let c = parse(
            "policy = \"p.policy\"\n[milter]\nlisten = \"unix:m\"\n[site]\nlocal_domains = [\"example.org\", \"*.example.net\"]\nmynetworks = [\"10.0.0.0/8\"]\nforging_viruses = [\"(?i)sobig\"]\n",
        )
        .unwrap();
        assert_eq!(c.policy, PathBuf::from("/etc/mailpolicyd/p.policy"));
        assert!(c.site.is_local_recipient("a@Example.ORG"));
        assert!(c.site.is_local_recipient("a@mx.example.net"));
        assert!(!c.site.is_local_recipient("a@example.net"));
        assert!(!c.site.is_local_recipient("a@badexample.org"));
        assert!(c.site.in_mynetworks("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.site.in_mynetworks("192.0.2.1".parse().unwrap()));
        assert_eq!(c.site.forges_sender(&[]), None);
        assert_eq!(
            c.site.forges_sender(&["Win.Worm.Sobig-F".into()]),
            Some(true)
        );
        assert_eq!(
            c.site.forges_sender(&["Eicar-Test-Signature".into()]),
            Some(false)
        );
        let d = parse("policy = \"p\"\n[milter]\nlisten = \"unix:m\"\n").unwrap();
        assert_eq!(
            d.site
                .forges_sender(&["Eicar-Test-Signature.UNOFFICIAL".into()]),
            Some(false)
        );
        assert_eq!(
            d.site.forges_sender(&["Win.Trojan.Agent-1".into()]),
            Some(true)
        );
        assert_eq!(d.site.forges_sender(&["Joke.Worm.X".into()]), Some(true));
        assert_eq!(
            d.site
                .forges_sender(&["Eicar-Test-Signature".into(), "W32/Sobig.F@MM".into()]),
            Some(true)
        );
    }
}
