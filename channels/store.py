"""Where objects live: URLs, endpoints and the fsspec filesystem for them.

Every layer that needs to reach a store asks this module, so that the endpoint
rules (``--endpoint-url``, then ``AWS_ENDPOINT_URL_S3``, then
``AWS_ENDPOINT_URL``) are written once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, urlsplit

from channels import _redact
from channels.sigv4 import StaticCredentials

if TYPE_CHECKING:
    import fsspec

# Every path to a store goes through this module: keep credentials out of the
# debug logs of the libraries that reach it (botocore, aiobotocore, s3fs).
_redact.install()

S3_SCHEMES = ("s3", "s3a", "s3n")


def endpoint_from_env(explicit: str | None = None) -> str | None:
    """The S3 endpoint URL to use: explicit, else the standard AWS variables."""
    return explicit or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@dataclass(frozen=True)
class Store:
    """How to reach objects: the endpoint and extra fsspec options.

    Attributes:
        endpoint_url: S3 endpoint (None: the AWS default or the environment).
        options: extra keyword arguments for the fsspec filesystem.
    """

    endpoint_url: str | None = None
    options: tuple[tuple[str, object], ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls, endpoint_url: str | None = None, **options: object) -> "Store":
        return cls(endpoint_from_env(endpoint_url), tuple(sorted(options.items())))

    def filesystem(self, url: str) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem that serves ``url`` (one per process: s3fs's event loop
        does not survive a fork, so a forked DataLoader worker gets its own)."""
        return _filesystem(protocol_of(url), self.endpoint_url, self.options, os.getpid())


@lru_cache(maxsize=32)
def _filesystem(protocol: str, endpoint_url: str | None, options: tuple, pid: int = 0) -> fsspec.AbstractFileSystem:
    import fsspec  # on first use: the S3 fast paths (transport, the S3 listing) never need it

    kwargs = dict(options)
    if protocol in S3_SCHEMES:
        client_kwargs = dict(kwargs.pop("client_kwargs", {}) or {})
        if endpoint_url:
            client_kwargs.setdefault("endpoint_url", endpoint_url)
        kwargs["client_kwargs"] = client_kwargs
        kwargs.setdefault("config_kwargs", {"max_pool_connections": 64})
        # One listing call per prefix: never reuse a stale listing cache.
        kwargs.setdefault("use_listings_cache", False)
        return fsspec.filesystem("s3", **kwargs)
    return fsspec.filesystem(protocol, **kwargs)


def aws_identity(options: dict, region: str | None = None) -> tuple[object | None, str]:
    """``(credentials, region)`` for S3 requests signed with a store's options, as botocore resolves them.

    Credentials: none with ``anon``; ``key``/``secret``/``token`` when given (s3fs's names);
    else botocore's chain. Region: ``region`` when given, else ``client_kwargs["region_name"]``,
    ``AWS_REGION``, botocore's ``region`` setting, ``us-east-1``. The S3 listing and the
    transport both sign with these (:mod:`channels.sigv4`).

    botocore's chain starts with the environment's credentials unless a profile is named, and
    its region setting reads ``AWS_DEFAULT_REGION`` before any config file. When the options or
    the environment settle both, botocore is not imported at all (importing its credentials
    module costs about 15 ms at every start of ``channels download``, making a Session about
    60 ms more); anything else (a profile, expiring environment credentials, an instance role,
    a region only in a config file) goes to botocore as before.
    """
    profile = options.get("profile")
    session = None

    def botocore_session():
        nonlocal session
        if session is None:
            import botocore.session

            session = botocore.session.Session(profile=profile)
        return session

    client_kwargs = dict(options.get("client_kwargs") or {})
    region = (region or client_kwargs.get("region_name") or os.environ.get("AWS_REGION")
              or os.environ.get("AWS_DEFAULT_REGION") or botocore_session().get_config_variable("region")
              or "us-east-1")
    if options.get("anon"):
        return None, region
    if options.get("key") and options.get("secret"):
        return StaticCredentials(options["key"], options["secret"], options.get("token") or None), region
    if profile:
        return botocore_session().get_credentials(), region
    static = _environment_credentials()
    if static is not None:
        return static, region
    from botocore.credentials import EnvProvider

    creds = EnvProvider().load()
    return (creds if creds is not None else botocore_session().get_credentials()), region


def _environment_credentials() -> StaticCredentials | None:
    """The environment's credentials where botocore's EnvProvider would read them as fixed ones, else None.

    That is: both ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` set and not empty, and no
    ``AWS_CREDENTIAL_EXPIRATION`` (which makes them refreshable); the token is
    ``AWS_SECURITY_TOKEN``, else ``AWS_SESSION_TOKEN``, as botocore looks for them. Any other
    case is left to botocore, which also raises its own error for a key without a secret.
    """
    env = os.environ
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret or env.get("AWS_CREDENTIAL_EXPIRATION"):
        return None
    return StaticCredentials(key, secret, env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN") or None)


#: Bucket names AWS serves virtual-hosted over https (DNS-safe, no dots: a dot breaks the certificate's wildcard).
_VIRTUAL_HOSTED = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


def bucket_location(bucket: str, region: str, endpoint: SplitResult | None) -> tuple[str, str, str]:
    """``(scheme, netloc, path)`` of a bucket's root as S3 requests address it; ``path`` has no trailing "/".

    Under a custom endpoint, path-style below the endpoint's own path; on AWS,
    virtual-hosted (path ``""``) where the name allows, else path-style, at
    the region's host (``.cn`` for the China regions).
    """
    if endpoint is not None:
        return endpoint.scheme, endpoint.netloc, f"{endpoint.path.rstrip('/')}/{bucket}"
    host = f"s3.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")
    if _VIRTUAL_HOSTED.fullmatch(bucket):
        return "https", f"{bucket}.{host}", ""
    return "https", host, f"/{bucket}"


def protocol_of(url: str) -> str:
    """``s3``, ``file``, ``memory``...; plain paths are ``file``."""
    scheme = urlsplit(url).scheme
    if not scheme or len(scheme) == 1:  # "C:" on Windows, or a plain path
        return "file"
    return "s3" if scheme in S3_SCHEMES else scheme


def split_url(url: str) -> tuple[str, str, str]:
    """``(protocol, bucket_or_root, key)`` of a URL.

    For ``s3://b/k/x`` that is ``("s3", "b", "k/x")``; for file URLs and plain
    paths the bucket is empty and the key is the absolute path.
    """
    protocol = protocol_of(url)
    if protocol == "s3":
        parts = urlsplit(url)
        return protocol, parts.netloc, parts.path.lstrip("/")
    if protocol == "file":
        path = urlsplit(url).path if "://" in url else url
        return protocol, "", os.path.abspath(path)
    parts = urlsplit(url)
    return protocol, parts.netloc, parts.path.lstrip("/")


def strip_protocol(url: str) -> str:
    """The path fsspec uses for ``url`` (``bucket/key`` for S3)."""
    protocol, bucket, key = split_url(url)
    if protocol == "file":
        return key
    return f"{bucket}/{key}" if bucket else key


def join_url(protocol: str, path: str) -> str:
    """Inverse of :func:`strip_protocol`."""
    if protocol == "file":
        return "file://" + path
    return f"{protocol}://{path}"
