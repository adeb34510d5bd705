"""The ``gitstate`` command line (installed as the ``gitstate_cli`` package)."""
