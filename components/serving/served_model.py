"""The served model's code, logged with MLflow's models-from-code (``python_model=<this file>``).

MLflow copies this file into the model and runs it at load time, instead of unpickling a
cloudpickled object: what serves is the bundled ``components`` code (the model's ``code/``),
readable in the artifact, and loading a model never unpickles anything.
"""

from mlflow.models import set_model

from components.serving.checkpoint import RagCheckpoint

set_model(RagCheckpoint())
