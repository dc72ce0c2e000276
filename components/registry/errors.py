"""The registry's own error, shared by the bundle check, the promotion and the rollback."""


class RegistryError(RuntimeError):
    """A registry operation cannot proceed (e.g. nothing to roll back to, a bundle that cannot answer)."""
