"""A throwaway PostgreSQL server for tests: initdb into a temporary folder, start it on a free local port, remove it.

The server binaries come from Debian's ``postgresql`` package (``apt-get install -y postgresql``). PostgreSQL
refuses to run as root, so under root the cluster is owned by, and run as, the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres", "createdb")


def postgres_bin_dir() -> Path | None:
    """Folder holding initdb, pg_ctl and postgres, newest Debian version first, then PATH; None when absent."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name), reverse=True)
    candidates += [Path(found).parent for found in [shutil.which("initdb")] if found]
    for folder in candidates:
        if all((folder / program).is_file() for program in SERVER_PROGRAMS):
            return folder
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def postgres_server(database: str = "optuna") -> Iterator[str]:
    """Start a PostgreSQL server with one empty database; yields its URL (user ``postgres``, no password)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found: apt-get install -y postgresql")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="sb3sym-pg-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    root.chmod(0o700)
    data, port = root / "data", free_port()

    def run(program: str, *args: str) -> None:
        subprocess.run([*run_as, str(bin_dir / program), *args], check=True, capture_output=True, timeout=120)

    try:
        run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        run("pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "-t", "60", "start")
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
        yield f"postgresql://postgres@127.0.0.1:{port}/{database}"
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
