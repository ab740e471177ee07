#!/usr/bin/env python3
"""A minimal syslog receiver for collect-amavis.sh: binds a Unix datagram socket
(/dev/log) and appends each message as rsyslog's traditional file format writes
it: `Mmm dd hh:mm:ss HOST TAG[PID]: MESSAGE`."""
import os, re, socket, sys

path, out = sys.argv[1], sys.argv[2]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)
with open(out, "ab", buffering=0) as f:
    while True:
        data = sock.recv(65536)
        # glibc sends "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG"
        m = re.match(rb"<\d+>(\w{3} [ \d]\d \d\d:\d\d:\d\d) (.*)", data, re.S)
        if m:
            f.write(m.group(1) + b" mx " + m.group(2).rstrip(b"\n") + b"\n")
