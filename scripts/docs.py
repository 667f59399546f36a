#!/usr/bin/env python3
"""`make docs`: write the documents generated from the code. The code is ``labtools.docs``;
``--help`` lists the options."""

from labtools.docs import main

if __name__ == "__main__":
    raise SystemExit(main())
