"""Well-known ports of the lab, shared by server and client so they cannot drift apart."""

ECHO_PORT = 65432  # TCP echo
UDP_PORT = 65432  # UDP echo (same number, other protocol)
APP_PORT = 65433  # framed application protocol
GREET_PORT = 65434  # greeting line, for nc / telnet

# LAB_SERVER chooses the server program; what each serves (the client's demo and the health check
# ask only for that). The tutorial's steps (services/server/tutorial) serve TCP echo only.
SERVERS = {
    "lab": ("tcp-echo", "udp-echo", "greeting", "app"),
    "blocking": ("tcp-echo",),
    "threaded": ("tcp-echo",),
    "multiconn": ("tcp-echo",),
}
