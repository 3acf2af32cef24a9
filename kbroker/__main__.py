"""`python -m kbroker`, and the `kbroker` console script (pyproject.toml points it here).

The cyclic garbage collector is off from here until the broker has started: start-up makes
objects that live as long as the process (modules, classes, settings, compiled codecs), and the
collections they would trigger cost about 10 ms of a start on a 2-core machine (measured A/B).
`run_broker` turns it back on once the broker listens, after freezing what start-up made.
"""

import gc

gc.disable()

from kbroker.cli import main  # noqa: E402  (after gc.disable: this import is the start-up's bulk)

if __name__ == "__main__":
    raise SystemExit(main())
