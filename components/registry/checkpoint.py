"""Re-export of ``components.serving.checkpoint``, kept for models registered before the move.

A version logged before the pyfunc moved to ``components/serving/`` carries its own copy of
``served_model.py``, which runs ``from components.registry.checkpoint import RagCheckpoint`` at
load time. When the loading process has already imported this repository's ``components``
(a notebook, the re-score of a champion, the test suite), that import resolves here, not to the
model's bundled code, so this path must keep answering. New code imports ``components.serving``.
"""

from components.serving.checkpoint import *
from components.serving.checkpoint import RagCheckpoint  # noqa: F401  (what old served_model.py imports)
