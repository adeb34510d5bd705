"""The web view: ``gitstate serve``, a local, read-only web application over a repository.

Pages (agents, an agent's timeline, a checkpoint, a diff, the fork graph) are one
hand-written page and script in ``static/`` (no build step, nothing fetched from
elsewhere) over a JSON API under ``/api/`` that mirrors the library; see docs/web.md.
It needs only the standard library (``pip install gitstate[web]`` names it).
"""

from .app import WebApp
from .server import WebServer, make_server

__all__ = ["WebApp", "WebServer", "make_server"]
