"""Operator roles (viewer < operator < admin), who acted (an Actor), and the token entries of
ADMIN_TOKENS: `name:token` (an admin, as every token was before roles) or `name:role:token`."""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)  # least to most: each role may do what those below may
DEFAULT_ROLE: Role = "admin"


class Actor(msgspec.Struct, frozen=True):
    """Who did something: a token's name and role (the CLI acts as an admin named `cli`)."""

    name: str
    role: Role


class UnknownRole(ValueError):
    """A token entry names a role that is not viewer, operator or admin."""


def allows(held: Role, needed: Role) -> bool:
    """Whether a token of role `held` may do what needs `needed`."""
    return ROLES.index(held) >= ROLES.index(needed)


def as_role(text: str) -> Role | None:
    for role in ROLES:
        if role == text:
            return role
    return None


def parse_token_entries(spec: str) -> dict[str, Actor]:
    """token -> Actor of "name:token,name:role:token,…"; blank entries and entries without a
    name or a token are skipped. A middle part that is no role is refused (UnknownRole) rather
    than read as part of the token: a mistyped "viewr" must not make an admin."""
    tokens = {}
    for entry in spec.split(","):
        name, _, rest = entry.partition(":")
        middle, colon, last = rest.partition(":")
        if colon:
            role = as_role(middle.strip())
            if role is None:
                raise UnknownRole(
                    f"ADMIN_TOKENS: {name.strip()!r} names the role {middle.strip()!r};"
                    f" roles are {', '.join(ROLES)} (name:role:token)"
                )
            token = last
        else:
            role, token = DEFAULT_ROLE, rest
        if name.strip() and token.strip():
            tokens[token.strip()] = Actor(name.strip(), role)
    return tokens
