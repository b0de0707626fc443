"""One module per CLI command (``HELP``, ``add_arguments``, ``run``); shared helpers in ``common``."""
