"""``python -m components.cli``: the same app as the ``regionops`` console script."""

from components.cli import app

app()
