"""Prefect flows: orchestration only; the work is in ``components``.

Importing this package turns telemetry off and points Prefect and MLflow at the
project's state before Prefect reads its settings (they are read at import).
"""

from components.settings import configure_environment

SETTINGS = configure_environment()
