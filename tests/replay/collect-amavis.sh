#!/usr/bin/env bash
# Collects log lines written by a REAL amavisd-new (Debian's 2.13 package) for
# tests/replay/*.log: a private Postfix (ports 21025-21055, re-injection 21026)
# hands mail to amavisd-new (21024, 21027-21029: four policy banks), which scans
# with a private clamd (own signatures: EICAR, two worm markers).
#
#   sudo tests/replay/collect-amavis.sh [WORKDIR]      # needs root, postfix, clamd,
#                                                       # amavisd-new, swaks, zip
#
# Writes WORKDIR/amavis-file.log (amavisd's own log file, log level 1, per-recipient
# entries on) and WORKDIR/amavis-syslog.log (the same traffic logged over syslog,
# where amavisd splits lines past 980 characters; /dev/log is served by a small
# Python receiver while it runs). Everything listens on 127.0.0.1 only.
set -euo pipefail
D=${1:-/tmp/mailpolicy-amavis}
HERE=$(cd "$(dirname "$0")" && pwd)
pids=()
cleanup() {
    set +e
    postfix -c "$D/postfix" stop >/dev/null 2>&1
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    [ -f "$D/amavis/amavisd.pid" ] && kill "$(cat "$D/amavis/amavisd.pid")" 2>/dev/null
    sleep 1
}
trap cleanup EXIT
rm -rf "$D"
mkdir -p "$D"/{db,postfix,spool,data,mail,amavis/{tmp,db,var,quarantine},send}
chmod 755 "$D"
chown postfix "$D/data"

# --- clamd with its own signatures (no download) ---------------------------
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
EICAR='X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
SOBIG='SOBIG-F-MASS-MAILER-TEST-MARKER-7731'
MYDOOM='MYDOOM-A-MASS-MAILER-TEST-MARKER-4410'
{
    echo "Eicar-Test-Signature:0:*:$(hex "$EICAR")"
    echo "Worm.Sobig-F:0:*:$(hex "$SOBIG")"
    echo "Worm.Mydoom-A:0:*:$(hex "$MYDOOM")"
} >"$D/db/test.ndb"
cat >"$D/clamd.conf" <<CONF
Foreground yes
LocalSocket $D/clamd.sock
DatabaseDirectory $D/db
LogFile $D/clamd.log
User root
CONF
start_clamd() {
    clamd -c "$D/clamd.conf" &
    clamd_pid=$!
    pids+=("$clamd_pid")
    for _ in $(seq 50); do [ -S "$D/clamd.sock" ] && break; sleep 0.1; done
}
start_clamd

# --- Postfix ------------------------------------------------------------------
cat >"$D/postfix/main.cf" <<CONF
compatibility_level = 3.6
config_directory = $D/postfix
queue_directory = $D/spool
data_directory = $D/data
myhostname = mx.example.org
mydomain = example.org
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8 10.0.0.0/8
maillog_file = $D/postfix.log
maillog_file_prefixes = $D
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = example.org example.net example.com
virtual_mailbox_base = $D/mail
virtual_mailbox_maps = texthash:$D/postfix/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
default_transport = error:no outside mail in tests
smtp_dns_support_level = disabled
CONF
printf '@example.org example.org/\n@example.net example.net/\n@example.com example.com/\n' >"$D/postfix/vmailbox"
chown 65534:65534 "$D/mail"
filter() { echo "127.0.0.1:$1 inet n - n - - smtpd -o content_filter=smtp-amavis:[127.0.0.1]:$2"; }
{
    filter 21025 21024   # amavisd bank: discard viruses (the default)
    filter 21035 21027   # BOUNCER: D_BOUNCE, only Sobig fakes senders
    filter 21045 21028   # REJECTER: D_REJECT
    filter 21055 21029   # PASSER: D_PASS
    cat <<CONF
127.0.0.1:21026 inet n - n - - smtpd -o content_filter= -o smtpd_authorized_xforward_hosts=127.0.0.0/8
smtp-amavis unix - - n - 2 smtp -o smtp_send_xforward_command=yes -o max_use=20
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CONF
} >"$D/postfix/master.cf"
postfix -c "$D/postfix" start >/dev/null

# --- amavisd-new --------------------------------------------------------------
chown -R amavis:amavis "$D/amavis"
amavis_conf() {  # $1: 1 = log over syslog, 0 = to amavisd's own log file
    cat >"$D/amavisd.conf" <<CONF
use strict;
\$MYHOME = '$D/amavis';
\$TEMPBASE = "\$MYHOME/tmp";
\$db_home = "\$MYHOME/db";
\$helpers_home = "\$MYHOME/var";
\$lock_file = "\$MYHOME/amavisd.lock";
\$pid_file = "\$MYHOME/amavisd.pid";
\$QUARANTINEDIR = "\$MYHOME/quarantine";
\$daemon_user = 'amavis'; \$daemon_group = 'amavis';
\$mydomain = 'example.org'; \$myhostname = 'mx.example.org';
\$max_servers = 2;
\$enable_db = 0; \$enable_zmq = 0; \$nanny_details_level = 0;
\$enable_dkim_verification = 0; \$enable_dkim_signing = 0;
\$do_syslog = $1; \$syslog_ident = 'amavis'; \$syslog_facility = 'mail';
\$LOGFILE = "$D/amavis/amavis-file.log"; \$log_level = 1;
\$inet_socket_bind = '127.0.0.1';
\$inet_socket_port = [21024, 21027, 21028, 21029];
@inet_acl = qw(127.0.0.1);
\$forward_method = 'smtp:[127.0.0.1]:21026';
\$notify_method = \$forward_method;
@local_domains_acl = ( '.example.org' );
@mynetworks = qw( 127.0.0.0/8 10.0.0.0/8 );
@bypass_spam_checks_maps = (1);
\$ENV{PATH} = \$path = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/sbin:/usr/bin:/bin';
\$file = 'file';
\$policy_bank{'MYNETS'} = { originating => 1 };
\$final_virus_destiny = D_DISCARD;
\$final_banned_destiny = D_DISCARD;
\$virus_admin = undef;
\$banned_filename_re = new_RE( qr'.\\.(exe|scr|pif)\$'i );
@av_scanners = ( ['ClamAV-clamd', \\&ask_daemon, ["CONTSCAN {}\\n", "$D/clamd.sock"],
    qr/\\bOK\$/m, qr/\\bFOUND\$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND\$/m ] );
@av_scanners_backup = ();
\$interface_policy{'21027'} = 'BOUNCER';
\$policy_bank{'BOUNCER'} = { final_virus_destiny => D_BOUNCE,
    viruses_that_fake_sender_maps => [ new_RE( [qr'sobig'i => 1], [qr'.' => 0] ) ] };
\$interface_policy{'21028'} = 'REJECTER';
\$policy_bank{'REJECTER'} = { final_virus_destiny => D_REJECT };
\$interface_policy{'21029'} = 'PASSER';
\$policy_bank{'PASSER'} = { final_virus_destiny => D_PASS, final_banned_destiny => D_PASS,
    virus_scanners_failure_is_fatal => 0 };
1;
CONF
}
start_amavis() {
    amavis_conf "$1"
    amavisd -c "$D/amavisd.conf" foreground >"$D/amavisd.out" 2>&1 &
    amavis_pid=$!
    pids+=("$amavis_pid")
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/21029) 2>/dev/null && break
        sleep 0.2
    done
}
stop_amavis() {
    kill "$amavis_pid" 2>/dev/null || true
    wait "$amavis_pid" 2>/dev/null || true
    sleep 1
}

# --- the traffic ---------------------------------------------------------------
printf '%s\n' "$EICAR" >"$D/send/eicar.com.txt"
printf 'hello\n%s\n' "$SOBIG" >"$D/send/sobig.txt"
printf 'hello\n%s\n' "$MYDOOM" >"$D/send/mydoom.txt"
printf 'MZ not really a program\n' >"$D/send/setup.exe"
(cd "$D/send" && zip -q -P secret encrypted.zip eicar.com.txt)
OUT=203.0.113.9   # an outside client
IN=10.1.2.3       # one of ours (in mynetworks: amavisd calls it originating)
send() {  # PORT CLIENT FROM TO [swaks args...]
    local port=$1 client=$2 from=$3 to=$4
    shift 4
    swaks --silent 2 --server "127.0.0.1:$port" --xclient-addr "$client" \
        --from "$from" --to "$to" "$@" >>"$D/swaks.log" 2>&1 || true
}
wait_queue() {
    for _ in $(seq 120); do
        [ -z "$(postqueue -c "$D/postfix" -j 2>/dev/null)" ] && return 0
        sleep 0.5
    done
    echo "queue did not drain" >&2
}
traffic() {
    many=$(for i in $(seq 1 40); do printf 'user%02d.with.a.rather.long.mailbox.name@example.org,' "$i"; done)
    many=${many%,}
    # Directions, clean.
    send 21025 $OUT alice@example.com bob@example.org --header "Subject: clean inbound"
    send 21025 $IN bob@example.org carol@example.net --header "Subject: clean outbound"
    send 21025 $IN bob@example.org dave@example.org --header "Subject: clean internal"
    send 21025 $OUT alice@example.com erin@example.net --header "Subject: open relay"
    send 21025 $IN bob@example.org dave@example.org,carol@example.net --header "Subject: internal and outbound"
    # Viruses under each bank.
    send 21025 $OUT alice@example.com bob@example.org --attach @"$D/send/eicar.com.txt"
    send 21025 $IN bob@example.org carol@example.net --attach @"$D/send/sobig.txt"
    send 21025 $OUT '<>' bob@example.org --attach @"$D/send/mydoom.txt"
    send 21025 $OUT alice@example.com bob@example.org --attach @"$D/send/eicar.com.txt" --attach @"$D/send/sobig.txt"
    send 21035 $OUT alice@example.com bob@example.org --attach @"$D/send/eicar.com.txt"
    send 21035 $OUT alice@example.com bob@example.org --attach @"$D/send/sobig.txt"
    send 21045 $OUT alice@example.com bob@example.org --attach @"$D/send/eicar.com.txt"
    send 21055 $OUT alice@example.com bob@example.org,dave@example.org --attach @"$D/send/mydoom.txt"
    # Unscannable, banned, and many recipients (a main entry past 980 characters).
    send 21025 $OUT alice@example.com bob@example.org --attach @"$D/send/encrypted.zip"
    send 21025 $OUT alice@example.com bob@example.org --attach @"$D/send/setup.exe"
    send 21055 $OUT alice@example.com bob@example.org --attach @"$D/send/setup.exe"
    send 21025 $OUT alice@example.com "$many" --header "Subject: to many"
    send 21025 $OUT alice@example.com "$many" --attach @"$D/send/eicar.com.txt"
    wait_queue
    # The scanner down: amavisd cannot scan (the default bank tempfails, PASSER passes).
    kill "$clamd_pid"; wait "$clamd_pid" 2>/dev/null || true
    rm -f "$D/clamd.sock"
    local before
    before=$(grep -c 'TempFailed\|Passed UNCHECKED {' "$LOG" || true)
    send 21025 $OUT alice@example.com bob@example.org --header "Subject: while clamd is down"
    send 21055 $OUT alice@example.com bob@example.org --header "Subject: while clamd is down, passed"
    for _ in $(seq 120); do
        [ "$(grep -c 'TempFailed\|Passed UNCHECKED {' "$LOG" || true)" -ge $((before + 2)) ] && break
        sleep 0.5
    done
    start_clamd
    postqueue -c "$D/postfix" -f
    wait_queue
}

# Run 1: amavisd's own log file (program field with a path, no line splitting).
LOG="$D/amavis/amavis-file.log"
start_amavis 0
traffic
stop_amavis

# Run 2: over syslog, served by a receiver on /dev/log that writes an rsyslog-style file.
if [ -e /dev/log ]; then
    echo "/dev/log exists: skipping the syslog run" >&2
else
    LOG="$D/amavis-syslog.log"
    python3 "$HERE/syslog-receiver.py" /dev/log "$LOG" &
    pids+=("$!")
    sleep 0.5
    start_amavis 1
    traffic
    stop_amavis
    kill "${pids[-1]}" 2>/dev/null || true
    sleep 0.5
    rm -f /dev/log
fi
cp "$D/amavis/amavis-file.log" "$D/amavis-file.log"
echo "logs in $D: amavis-file.log amavis-syslog.log"
