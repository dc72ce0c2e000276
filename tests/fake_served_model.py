"""Models-from-code for tests: the real pyfunc (validation, output shaping) over the fake engine.

Registry tests point ``bundle.MODEL_CODE`` here; the serving process imports ``tests`` from the
repository (tests/serving.py puts it on PYTHONPATH)."""

from mlflow.models import set_model

from tests.registry_fakes import FakeRagCheckpoint

set_model(FakeRagCheckpoint())
