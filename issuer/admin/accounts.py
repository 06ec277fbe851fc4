"""Admin accounts and roles: who may do what, and in which region.

Pure rules, no database: `Role`, `Permission`, the fixed role -> permission table, the
`AdminPrincipal` an authenticated request acts as, and `authorize`, which raises
`PermissionDeniedError` unless the principal's region is the serving issuer's region,
the target belongs to that same region, and one of the principal's roles grants the
permission. Every path that changes anything (console, JSON API, CLI) calls
`authorize` before it touches the service layer. Also here: argon2id password hashing
and the format of per-admin API tokens (stored hashed). Storage of accounts, sessions
and tokens lives in issuer.admin.accounts_db.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from issuer.errors import BadRequestError, PermissionDeniedError, UnauthorizedError

USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{2,31}$")
MIN_PASSWORD_CHARS = 12  # characters; long passphrases beat composition rules
MAX_PASSWORD_CHARS = 256  # characters; bounds the argon2 input
TOKEN_PREFIX = "hbadm"  # noqa: S105 - a public prefix; every admin API token reads hbadm_<token id>_<secret>
TOKEN_ID_BYTES = 6  # bytes of the public lookup id
TOKEN_SECRET_BYTES = 32  # bytes of secret randomness
TOKEN_RE = re.compile(r"^hbadm_([A-Za-z0-9_-]{8})_([A-Za-z0-9_-]{43})$")

# argon2id parameters, set explicitly (RFC 9106 §4 second recommended option, with a
# smaller memory cost so a 2-core box can verify a login in well under a second).
ARGON2_TIME_COST = 3
ARGON2_MEMORY_KIB = 64 * 1024  # KiB
ARGON2_PARALLELISM = 1
_HASHER = PasswordHasher(
    time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM
)


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    KEY_ADMIN = "key_admin"
    AUDITOR = "auditor"


class Permission(StrEnum):
    VIEW_CREDENTIALS = "view_credentials"
    VIEW_KEYS = "view_keys"
    VIEW_LEDGER = "view_ledger"
    REVOKE = "revoke"
    REINSTATE = "reinstate"
    BULK_REVOKE = "bulk_revoke"
    OVERRIDE_STATUS = "override_status"
    ROTATE_KEY = "rotate_key"
    REVOKE_KEY = "revoke_key"
    VIEW_AUDIT = "view_audit"
    EXPORT_AUDIT = "export_audit"


_READ = frozenset({Permission.VIEW_CREDENTIALS, Permission.VIEW_KEYS, Permission.VIEW_LEDGER})

# The whole permission model in one table. Every role reads; each acting role adds
# only its own operations. Nobody gets account management: that is the CLI's job,
# run by whoever holds the issuer's host.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _READ,
    Role.OPERATOR: _READ
    | {
        Permission.REVOKE,
        Permission.REINSTATE,
        Permission.BULK_REVOKE,
        Permission.OVERRIDE_STATUS,
    },
    Role.KEY_ADMIN: _READ | {Permission.ROTATE_KEY, Permission.REVOKE_KEY},
    Role.AUDITOR: _READ | {Permission.VIEW_AUDIT, Permission.EXPORT_AUDIT},
}


def parse_roles(text: str) -> frozenset[Role]:
    """Roles from a comma-separated list ("operator,auditor"); refuses unknown names."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BadRequestError("expected at least one role, found none")
    try:
        return frozenset(Role(n.replace("-", "_")) for n in names)
    except ValueError as e:
        valid = ", ".join(r.value for r in Role)
        raise BadRequestError(f"expected roles among {valid}, found {text!r}") from e


def render_roles(roles: frozenset[Role]) -> str:
    return ",".join(sorted(r.value for r in roles))


@dataclass(frozen=True)
class AdminPrincipal:
    """An authenticated admin as seen by a request: name, home region, roles."""

    username: str
    region: str
    roles: frozenset[Role]

    def __post_init__(self) -> None:
        if not self.roles:
            raise ValueError("an admin principal needs at least one role")

    def permissions(self) -> frozenset[Permission]:
        out: frozenset[Permission] = frozenset()
        for role in self.roles:
            out |= ROLE_PERMISSIONS[role]
        return out

    def may(self, permission: Permission) -> bool:
        """For display only (which buttons to show); actions call `authorize`."""
        return permission in self.permissions()


def authorize(
    principal: AdminPrincipal,
    permission: Permission,
    serving_region: str,
    target_region: str | None = None,
) -> None:
    """Raise PermissionDeniedError unless `principal` may do `permission` here.

    Three checks, in this order: the principal belongs to the issuer that serves the
    request (an MO account is worthless at GD's issuer); the target, when it names a
    region, is that same region; one of the principal's roles grants the permission.
    """
    if principal.region != serving_region:
        raise PermissionDeniedError(
            f"expected an admin of region {serving_region}, found one of {principal.region}"
        )
    if target_region is not None and target_region != principal.region:
        raise PermissionDeniedError(
            f"admins of {principal.region} act on {principal.region} only, "
            f"found a target in {target_region}"
        )
    if permission not in principal.permissions():
        roles = render_roles(principal.roles)
        raise PermissionDeniedError(f"role(s) {roles} do not grant {permission.value}")


def check_username(username: str) -> str:
    if not USERNAME_RE.fullmatch(username):
        raise BadRequestError(
            "expected a username of 3-32 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter"
        )
    return username


def check_password_policy(password: str) -> None:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise BadRequestError(
            f"expected a password of {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters, "
            f"found {len(password)}"
        )


def hash_password(password: str) -> str:
    check_password_policy(password)
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> None:
    """Raise UnauthorizedError unless `password` matches the argon2 hash."""
    if len(password) > MAX_PASSWORD_CHARS:
        raise UnauthorizedError("wrong username or password")
    try:
        _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError) as e:
        raise UnauthorizedError("wrong username or password") from e


def password_needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)


# A dummy hash verified when the username is unknown, so timing does not tell which
# usernames exist.
DUMMY_PASSWORD_HASH = _HASHER.hash("not-a-real-password-0000")


@dataclass(frozen=True)
class NewToken:
    token_id: str
    token: str  # shown once; only its hash is stored
    token_hash: bytes


def new_api_token() -> NewToken:
    token_id = secrets.token_urlsafe(TOKEN_ID_BYTES)
    secret = secrets.token_urlsafe(TOKEN_SECRET_BYTES)
    token = f"{TOKEN_PREFIX}_{token_id}_{secret}"
    return NewToken(token_id, token, token_hash(token))


def token_hash(token: str) -> bytes:
    # The token carries 256 bits of randomness, so a plain SHA-256 is enough: there is
    # nothing to brute-force that a slow hash would protect.
    return hashlib.sha256(token.encode("ascii")).digest()


def parse_api_token(token: str) -> str:
    """The lookup id of a well-formed token; UnauthorizedError otherwise."""
    m = TOKEN_RE.fullmatch(token.strip())
    if m is None:
        raise UnauthorizedError("expected an admin API token hbadm_<id>_<secret>")
    return m.group(1)


def token_matches(token: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(token_hash(token.strip()), stored_hash)
