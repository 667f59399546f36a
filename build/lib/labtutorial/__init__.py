"""The tutorial's servers, step by step, each a short program written to be read.

    blocking    socket, bind, listen, accept: one client at a time
    threaded    a thread per client
    multiconn   the tutorial's selectors loop, as a learner writes it

Each serves TCP echo only, on the lab's echo port; ``LAB_SERVER`` chooses one (``lab``, the
default, is the lab's own server). ``python3 -m labserver`` starts it, and ``--healthcheck``
probes only what it serves.
"""
