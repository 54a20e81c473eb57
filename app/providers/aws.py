"""What the AWS adapters share: boto3 (an optional extra), clients, and one error translation.

boto3 is installed with `pip install 'prod-access[aws]'`; a policy that names an AWS provider
without it stops start-up saying so. Credentials come from boto3's usual chain (environment,
shared config, instance or task role): nothing AWS-specific is read from the policy but the
region and the resources. Errors become `ProviderError`s that name the call: throttling, 5xx,
timeouts and unreachable endpoints are retryable; refusals (no such user, access denied) are not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.providers.base import ProviderConfigError, ProviderError
from app.text import short

RETRYABLE_CODES = frozenset(
    {
        "ConflictException",  # another change to the same assignment is in flight
        "InternalFailure",
        "InternalServerException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)


class AwsConfig(BaseModel):
    """Settings every AWS adapter has."""

    model_config = ConfigDict(extra="forbid")
    region: str = Field(min_length=1, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    timeout: float = Field(default=10.0, gt=0, le=120)
    max_attempts: int = Field(default=3, ge=1, le=10)


def make_client(provider: str, service: str, config: AwsConfig) -> Any:
    """A boto3 client with bounded timeouts and retries (created now; no call is made yet)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ProviderConfigError(
            f"the {provider} provider needs boto3, which is not installed: "
            "pip install 'prod-access[aws]'"
        ) from None
    return boto3.client(
        service,
        region_name=config.region,
        config=Config(
            connect_timeout=config.timeout,
            read_timeout=config.timeout,
            retries={"mode": "standard", "total_max_attempts": config.max_attempts},
        ),
    )


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError ("NoSuchEntity" …), else None."""
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn botocore's exceptions raised inside into a `ProviderError` about `what`."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        yield
    except ClientError as exc:
        code = error_code(exc) or "Error"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        retryable = code in RETRYABLE_CODES or status >= 500
        raise ProviderError(f"{what}: {code}: {short(message)}", retryable=retryable) from None
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise ProviderError(f"{what}: no usable AWS credentials ({exc})", retryable=False) from None
    except (ConnectionError, HTTPClientError) as exc:  # timeouts, unreachable, cut connections
        raise ProviderError(f"{what}: AWS did not answer: {short(exc)}") from None
    except BotoCoreError as exc:
        raise ProviderError(f"{what}: {short(exc)}") from None
