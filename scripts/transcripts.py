#!/usr/bin/env python3
"""`make transcripts`: run the commands quoted in the documents again and write in what they
print, dated. The code is ``labtools.transcripts``; ``--help`` lists the options."""

from labtools.transcripts import main

if __name__ == "__main__":
    raise SystemExit(main())
