"""`toolkit serve`'s settings, and how they reach each uvicorn worker process (environment)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from toolkit import defaults

ENV_PREFIX = "TOOLKIT_SERVE_"


@dataclass
class ServeSettings:
    """What every worker needs to build the app: the model and the request limits."""

    model: str
    providers: str = defaults.PROVIDERS
    max_body_bytes: int = defaults.SERVE_MAX_BODY_BYTES
    max_rows: int = defaults.SERVE_MAX_ROWS
    body_timeout: float = defaults.SERVE_BODY_TIMEOUT
    header_timeout: float = defaults.SERVE_HEADER_TIMEOUT
    max_concurrency: int = defaults.SERVE_MAX_CONCURRENCY

    def to_env(self) -> dict[str, str]:
        """How `toolkit serve` hands settings to each uvicorn worker process."""
        return {ENV_PREFIX + key.upper(): str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_env(cls) -> ServeSettings:
        env = os.environ
        return cls(
            model=env[ENV_PREFIX + "MODEL"],
            providers=env.get(ENV_PREFIX + "PROVIDERS", defaults.PROVIDERS),
            max_body_bytes=int(
                env.get(ENV_PREFIX + "MAX_BODY_BYTES", defaults.SERVE_MAX_BODY_BYTES)
            ),
            max_rows=int(env.get(ENV_PREFIX + "MAX_ROWS", defaults.SERVE_MAX_ROWS)),
            body_timeout=float(env.get(ENV_PREFIX + "BODY_TIMEOUT", defaults.SERVE_BODY_TIMEOUT)),
            header_timeout=header_timeout_from_env(),
            max_concurrency=int(
                env.get(ENV_PREFIX + "MAX_CONCURRENCY", defaults.SERVE_MAX_CONCURRENCY)
            ),
        )


def header_timeout_from_env() -> float:
    """--header-timeout as the HTTP protocol reads it, once per connection."""
    return float(os.environ.get(ENV_PREFIX + "HEADER_TIMEOUT", defaults.SERVE_HEADER_TIMEOUT))
