"""The lab's commands that run on the host and drive stacks: the benchmark (``make bench``), the
capture (``make capture``) and the three-host demo (``make cluster``). ``scripts/`` holds their
entry points; the tests import them from here."""
