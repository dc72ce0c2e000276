"""Does a version logged before the pyfunc moved to components/serving/ still load and answer?

Logs a RAG checkpoint with the code of an older checkout (``--old-repo``, whose served_model.py
imports ``components.registry.checkpoint``) into a scratch sqlite store, then loads it from this
checkout twice: in a fresh process (MLflow puts the model's bundled ``code/`` first) and in a
process that imported this checkout's ``components`` first (the old import then resolves to the
re-export shim at ``components/registry/checkpoint.py``). Both must answer a question.

    python scripts/experiments/old_checkpoint_loads.py --old-repo /work/main \
        --model /work/main/data/model --index /work/main/data/index --work .regionops/old-checkpoint
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

LOG_WITH_OLD_CODE = """
import json, sys, tempfile
from pathlib import Path
import mlflow
from components.config import load_params
from components.registry import checkpoint, promote
uri, model, index, artifacts_root = sys.argv[1:5]
mlflow.set_tracking_uri(uri)
# Artifacts under the scratch folder, never under the old checkout (the default is ./mlruns of the cwd).
if mlflow.get_experiment_by_name("old-checkpoint") is None:
    mlflow.create_experiment("old-checkpoint", artifact_location=Path(artifacts_root).resolve().as_uri())
mlflow.set_experiment("old-checkpoint")
params = load_params("params.yaml")
with tempfile.TemporaryDirectory() as tmp:
    artifacts = promote._stage_artifacts(params, Path(model), Path(index), Path(tmp))
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="rag_checkpoint", python_model=str(promote.MODEL_CODE),
                                       artifacts=artifacts, code_paths=[str(promote.REPO / "components")],
                                       signature=checkpoint.signature(), pip_requirements=promote.pip_requirements())
print(json.dumps({"model_uri": info.model_uri, "served_model": str(promote.MODEL_CODE)}))
"""

LOAD_WITH_NEW_CODE = """
import json, sys
import mlflow, pandas as pd
uri, model_uri, first = sys.argv[1:4]
if first == "components":
    import components.serving.checkpoint  # this checkout's components, imported before the model loads
mlflow.set_tracking_uri(uri)
loaded = mlflow.pyfunc.load_model(model_uri)
out = loaded.predict(pd.DataFrame([{"question": "What is the total in the table?", "k": 3}]))
old = sys.modules.get("components.registry.checkpoint")
print(json.dumps({"page_id": out.loc[0, "page_id"], "boxes": len(out.loc[0, "boxes"]),
                  "components.registry.checkpoint": getattr(old, "__file__", None),
                  "RagCheckpoint": type(loaded.unwrap_python_model()).__module__}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old-repo", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=REPO / ".regionops" / "old-checkpoint")
    args = parser.parse_args()
    args.work = (
        args.work.resolve()
    )  # the logging subprocess runs in the old checkout: no relative paths
    args.work.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{(args.work / 'mlflow.db').resolve()}"
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "REGIONOPS_HOME": str(args.work.resolve()),
    }
    logged = subprocess.run(
        [
            sys.executable,
            "-c",
            LOG_WITH_OLD_CODE,
            uri,
            str(args.model.resolve()),
            str(args.index.resolve()),
            str(args.work / "artifacts"),
        ],
        cwd=args.old_repo,
        env={**env, "PYTHONPATH": str(args.old_repo)},
        capture_output=True,
        text=True,
        check=True,
    )
    record = json.loads(logged.stdout.strip().splitlines()[-1])
    print("logged with", args.old_repo, record)
    for first in ("nothing", "components"):
        loaded = subprocess.run(
            [sys.executable, "-c", LOAD_WITH_NEW_CODE, uri, record["model_uri"], first],
            cwd=REPO,
            env={**env, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            check=False,
        )
        if loaded.returncode != 0:
            print(f"import {first} first: FAILED\n{loaded.stderr[-3000:]}")
            sys.exit(1)
        print(f"import {first} first:", loaded.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
