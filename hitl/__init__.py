"""The HITL server. `__version__` is the one release number: the distribution's (pyproject reads it),
`hitl --version`'s and `GET /api/v1/version/`'s; CHANGELOG.md says what each one changed."""

__version__ = "0.2.0"
