"""API keys and request signatures of the telematics ingestion API.

Keys look like ``cas_<prefix>_<secret>``: the prefix finds the source without
scanning, only a SHA-256 of the whole key is stored (keys are 256-bit random,
so a fast hash is enough), and comparisons are constant-time.
"""

import hashlib
import hmac
import secrets

KEY_SCHEME = "cas"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """The request's signature headers are missing, stale or wrong."""


def generate_api_key():
    """Return ``(key, prefix, key_hash)`` for a new source key."""
    prefix = secrets.token_hex(4)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_api_key(key)


def hash_api_key(key):
    return hashlib.sha256(_bytes(key)).hexdigest()


def key_prefix(key):
    """The lookup prefix of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != 8 or not parts[2]:
        return None
    return parts[1]


def bearer_token(authorization_header):
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization_header:
        return None
    scheme, _, token = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def key_matches(key, stored_hash):
    return bool(stored_hash) and hmac.compare_digest(hash_api_key(key), stored_hash)


def _bytes(text):
    # compare_digest refuses str with non-ASCII characters; headers may hold any.
    return text.encode("utf-8", "surrogateescape")


def sign(secret, timestamp, body):
    """The ``X-Telematics-Signature`` value for ``body`` sent at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def verify_signature(
    secrets_in_use,
    timestamp_header,
    signature_header,
    body,
    now,
    tolerance=DEFAULT_TOLERANCE_SECONDS,
):
    """Check a signed request against every active secret.

    Two secrets may be active while a sender rotates; the header may carry one
    or several comma-separated ``v1=<hex>`` values.

    :param now: current unix time in seconds
    :raises SignatureError: with a reason safe to return to the sender
    """
    if not timestamp_header:
        raise SignatureError("X-Telematics-Timestamp header is missing")
    if not signature_header:
        raise SignatureError("X-Telematics-Signature header is missing")
    try:
        timestamp = int(timestamp_header.strip())
    except ValueError:
        raise SignatureError("X-Telematics-Timestamp must be unix seconds") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"X-Telematics-Timestamp is more than {tolerance} s away")
    offered = [_bytes(part.strip()) for part in signature_header.split(",") if part.strip()]
    matched = False
    for secret in secrets_in_use:
        if not secret:
            continue
        expected = _bytes(sign(secret, timestamp, body))
        for candidate in offered:
            # Evaluate every pair so timing does not tell which secret matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("X-Telematics-Signature does not match the body")
