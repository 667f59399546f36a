"""The conformance kit's side inside the lab network (stdlib; in the client image): the cases that
probe a server under test (``cases``), and the proving servers a client under test talks to
(``proving``). ``python3 -m labprobe`` runs them and prints one JSON line per case; the kit on the
host (``labcheck``) starts the containers, reads the lines, and writes the reports.
"""
