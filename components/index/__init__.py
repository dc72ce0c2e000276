"""The region index. faiss comes from the ``cpu`` or the ``gpu`` extra (pyproject.toml): say so
when neither is installed, instead of a bare ``No module named 'faiss'`` from deep in a stage."""

try:
    import faiss  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name != "faiss":
        raise
    raise ModuleNotFoundError(
        "faiss is not installed: install regionops with the `cpu` extra (pip install -e '.[cpu]') "
        "or, on a CUDA 12 machine, the `gpu` extra (never both)",
        name="faiss",
    ) from exc
