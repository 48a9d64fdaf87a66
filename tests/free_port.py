"""Prints a loopback TCP port that was free a moment ago, for shell tests whose peers (mosquitto)
cannot be told to bind port 0. Picked below the kernel's ephemeral range: the port is released
before the peer binds it, and one from that range can meanwhile become the local port of another
parallel test's outgoing connection (the C++ tests' PickFreePort does the same)."""
import random
import socket

with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
    low = int(f.read().split()[0])
for _ in range(200 if low > 2048 else 0):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(max(1024, low - 10000), low)))
        break
    except OSError:
        s.close()
else:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
