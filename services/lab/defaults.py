"""Well-known ports of the lab, shared by server and client so they cannot drift apart."""

ECHO_PORT = 65432  # TCP echo
UDP_PORT = 65432  # UDP echo (same number, other protocol)
APP_PORT = 65433  # framed application protocol
GREET_PORT = 65434  # greeting line, for nc / telnet
