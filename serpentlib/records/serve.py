"""`serpent explore`: explore.ipynb live, in JupyterLab or as a Voila dashboard, from the
project's own environment (its Python, its `serpentlib` kernel), bound to 127.0.0.1 with a token."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import SerpentError
from ..paths import DATA_HOME, NOTEBOOKS, db_path

NOTEBOOK = "explore.ipynb"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workspace() -> Path:
    """A fresh copy of explore.ipynb for the server: what JupyterLab saves (outputs and all) goes
    there, never into the project's notebooks/."""
    place = DATA_HOME / "explore" / "notebook"
    place.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(NOTEBOOKS / NOTEBOOK, place / NOTEBOOK)
    return place


def command(dashboard: bool, port: int, token: str, place: Path) -> tuple[list[str], str]:
    """The server's command line and the URL that opens the notebook on it."""
    if dashboard:
        argv = [sys.executable, "-m", "voila", str(place / NOTEBOOK), "--no-browser", f"--port={port}",
                "--Voila.ip=127.0.0.1", f"--token={token}", "--show_tracebacks=True"]
        return argv, f"http://127.0.0.1:{port}/?token={token}"
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={place}", "--ServerApp.port_retries=0",
            "--ServerApp.terminals_enabled=False", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]  # it asks nobody elsewhere
    if os.geteuid() == 0:
        argv.append("--allow-root")  # bound to 127.0.0.1, behind a token
    return argv, f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}"


def start(db: str | None = None, dashboard: bool = False, port: int = 0,
          token: str | None = None) -> tuple[subprocess.Popen, str]:
    """Start the server on the metrics database `db` (default: as `serpent ingest`); returns it and
    the URL to open. The notebook reads the database from SERPENT_METRICS_DB."""
    token = token or secrets.token_hex(16)
    port = port or free_port()
    place = workspace()
    argv, url = command(dashboard, port, token, place)
    # JupyterLab's own settings for this server: it does not ask to fetch news from elsewhere.
    settings = place.parent / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text('{"fetchNews": "false", "checkForUpdates": false}\n')
    env = {**os.environ, "SERPENT_METRICS_DB": str(db_path(db)), "JUPYTERLAB_SETTINGS_DIR": str(place.parent / "settings")}
    proc = subprocess.Popen(argv, env=env, cwd=place)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until it answers, or says why not
            if proc.poll() is not None:
                raise SerpentError(f"the {'Voila' if dashboard else 'JupyterLab'} server exited at once "
                                   f"(exit {proc.returncode})", "its own messages above say why; `make setup` "
                                   "installs it into the project's environment")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return proc, url
            time.sleep(0.2)
        raise SerpentError(f"the server did not answer on 127.0.0.1:{port} within 90 s", "try again, or another --port")
    except BaseException:  # ^C while it starts, or it never answered: it does not outlive this
        stop(proc)
        raise


def stop(proc: subprocess.Popen) -> int:
    """Stop the server: politely, then for good."""
    proc.terminate()
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def serve(db: str | None = None, dashboard: bool = False, port: int = 0) -> int:
    """Run the server until ^C; print the URL first."""
    proc, url = start(db, dashboard, port)
    print(f"explore.ipynb {'as a dashboard ' if dashboard else ''}on {db_path(db)}:\n  {url}\n(^C stops it)", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return stop(proc)


__all__ = ["NOTEBOOK", "command", "serve", "start"]
