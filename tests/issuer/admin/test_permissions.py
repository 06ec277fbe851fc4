"""Every permission rule of the admin roles, region by region (issuer.admin.accounts)."""

from __future__ import annotations

import pytest

from issuer.admin.accounts import (
    ROLE_PERMISSIONS,
    AdminPrincipal,
    Permission,
    Role,
    authorize,
    new_api_token,
    parse_api_token,
    parse_roles,
    token_matches,
)
from issuer.errors import BadRequestError, PermissionDeniedError, UnauthorizedError

ACTING = {
    Role.VIEWER: set(),
    Role.OPERATOR: {
        Permission.REVOKE,
        Permission.REINSTATE,
        Permission.BULK_REVOKE,
        Permission.OVERRIDE_STATUS,
    },
    Role.KEY_ADMIN: {Permission.ROTATE_KEY, Permission.REVOKE_KEY},
    Role.AUDITOR: {Permission.VIEW_AUDIT, Permission.EXPORT_AUDIT},
}
READ = {Permission.VIEW_CREDENTIALS, Permission.VIEW_KEYS, Permission.VIEW_LEDGER}


def gd(*roles: Role) -> AdminPrincipal:
    return AdminPrincipal("alice", "GD", frozenset(roles))


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_each_role_grants_exactly_its_permissions(role: Role, permission: Permission) -> None:
    granted = READ | ACTING[role]
    if permission in granted:
        authorize(gd(role), permission, "GD", "GD")
    else:
        with pytest.raises(PermissionDeniedError, match=permission.value):
            authorize(gd(role), permission, "GD", "GD")


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_gd_admin_can_never_act_on_mo_targets(role: Role, permission: Permission) -> None:
    with pytest.raises(PermissionDeniedError, match="found a target in MO"):
        authorize(gd(*Role), permission, "GD", "MO")


@pytest.mark.parametrize("permission", list(Permission))
def test_gd_account_is_refused_at_the_mo_issuer(permission: Permission) -> None:
    with pytest.raises(PermissionDeniedError, match="expected an admin of region MO"):
        authorize(gd(*Role), permission, "MO")
    with pytest.raises(PermissionDeniedError):
        authorize(gd(*Role), permission, "MO", "MO")


def test_viewer_cannot_revoke() -> None:
    with pytest.raises(PermissionDeniedError, match="do not grant revoke"):
        authorize(gd(Role.VIEWER), Permission.REVOKE, "GD", "GD")


def test_operator_cannot_touch_keys_and_key_admin_cannot_revoke_credentials() -> None:
    for p in (Permission.ROTATE_KEY, Permission.REVOKE_KEY):
        with pytest.raises(PermissionDeniedError):
            authorize(gd(Role.OPERATOR), p, "GD")
    with pytest.raises(PermissionDeniedError):
        authorize(gd(Role.KEY_ADMIN), Permission.REVOKE, "GD", "GD")


def test_only_auditors_read_the_audit_log() -> None:
    for role in (Role.VIEWER, Role.OPERATOR, Role.KEY_ADMIN):
        with pytest.raises(PermissionDeniedError):
            authorize(gd(role), Permission.VIEW_AUDIT, "GD")
    authorize(gd(Role.AUDITOR), Permission.EXPORT_AUDIT, "GD")


def test_several_roles_add_up() -> None:
    both = gd(Role.OPERATOR, Role.AUDITOR)
    authorize(both, Permission.REVOKE, "GD", "GD")
    authorize(both, Permission.VIEW_AUDIT, "GD")
    assert not both.may(Permission.ROTATE_KEY)


def test_every_role_has_a_permission_row() -> None:
    assert set(ROLE_PERMISSIONS) == set(Role)


def test_principal_without_roles_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        AdminPrincipal("x", "GD", frozenset())


def test_role_names_parse_and_unknown_roles_are_refused() -> None:
    assert parse_roles("operator, key-admin") == {Role.OPERATOR, Role.KEY_ADMIN}
    with pytest.raises(BadRequestError, match="superuser"):
        parse_roles("superuser")
    with pytest.raises(BadRequestError):
        parse_roles(" , ")


def test_api_token_round_trip_and_tampering() -> None:
    new = new_api_token()
    assert parse_api_token(new.token) == new.token_id
    assert token_matches(new.token, new.token_hash)
    tampered = new.token[:-1] + ("A" if new.token[-1] != "A" else "B")
    assert not token_matches(tampered, new.token_hash)
    for bad in ("", "hbadm_x_y", "Bearer " + new.token, new.token + "x"):
        with pytest.raises(UnauthorizedError):
            parse_api_token(bad)
