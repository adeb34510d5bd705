"""``gitstate serve``: the local, read-only web view of a repository."""

from __future__ import annotations

import webbrowser

import click

from .context import Settings, pass_settings
from .output import echo


@click.command(short_help="Browse the repository in a local, read-only web view.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; one that is not loopback needs --allow-remote.")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=8470, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option("--allow-remote", is_flag=True,
              help="Allow a --host other machines can reach; every request then needs the random "
                   "access token of the printed URL.")
@click.option("--token", is_flag=True,
              help="Require the random access token on loopback too (other users of this machine).")
@pass_settings
def serve(settings: Settings, host: str, port: int, open_browser: bool, allow_remote: bool,
          token: bool) -> None:
    """Serve a web view of the repository: agents, timelines, checkpoints, diffs, forks.

    Read-only (no request writes) and local: it listens on 127.0.0.1 unless
    --host and --allow-remote say otherwise. Stop it with Ctrl-C.

    \b
    $ gitstate serve --open
    Serving /home/me/project/.gitstate at http://127.0.0.1:8470/ (Ctrl-C stops)
    """
    from gitstate.web import make_server  # here: only this command needs it

    server = make_server(settings.open(), host, port, allow_remote=allow_remote, token=token or None)
    echo(f"Serving {server.app.repo.path} at {server.url} (Ctrl-C stops)")
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
