"""Run a command with a private PostgreSQL server on 127.0.0.1 (the test suite's hpsearch.testing.pg):
the server's URL of a fresh database is in $HPSEARCH_BENCH_PG; the server is removed after.

    python scripts/bench/with_postgres.py -- python storage_overhead.py
"""

from __future__ import annotations

import os
import subprocess
import sys

from hpsearch.testing import pg


def main() -> int:
    command = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    if pg.find_bindir() is None:
        print("PostgreSQL server binaries not found (install Debian's postgresql)", file=sys.stderr)
        return 2
    server = pg.start_server()
    try:
        env = {**os.environ, "HPSEARCH_BENCH_PG": server.admin_url(server.new_database())}
        return subprocess.run(command, env=env).returncode
    finally:
        pg.remove_server(server)


if __name__ == "__main__":
    sys.exit(main())
