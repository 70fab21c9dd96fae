"""Who may command SOMAS: a person's repository role against `security.allowed_roles`.

Pure decisions; the role itself comes from GitHub's collaborator-permission API
(`GET /repos/{owner}/{repo}/collaborators/{user}/permission`), which answers two fields:
`role_name` (the assigned role, custom roles included) and `permission` (the legacy base role:
`admin`, `write`, `read` or `none`, where `maintain` reads `write` and `triage` reads `read`).
A trigger is allowed when either names an allowed role, so a custom role based on write counts
as write, while `security.allowed_roles: [admin, maintain]` still refuses plain writers (their
`permission` and `role_name` are both `write`).

The API cannot tell a stranger from a read collaborator on a public repository (everyone may
read it), so both are *outsiders*: SOMAS answers them with one neutral reaction at most.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from somas_action.core import untrusted

BUILT_IN_ROLES = frozenset({"admin", "maintain", "write", "triage", "read", "none"})
# Roles that never command SOMAS, whatever the config says (the schema refuses them too).
NEVER_ALLOWED = frozenset({"none", "read"})
# A workflow_dispatch made with a workflow's own GITHUB_TOKEN has this sender. GitHub accepts a
# dispatch only from a token with `actions: write` on the repository, and only the repository's
# own workflows hold this one: SOMAS's continuations and `/somas agent` runs are dispatched so.
ACTIONS_BOT = "github-actions[bot]"
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")


@dataclass(frozen=True)
class Access:
    """What GitHub says one account may do on the repository."""

    login: str
    role_name: str
    permission: str
    # Set only by `trusted_dispatcher`: the repository's own workflow token, not a person.
    trusted: bool = False

    @classmethod
    def none(cls, login: str) -> Access:
        """An account GitHub does not know on this repository (a 404 from the API)."""
        return cls(login, "none", "none")

    @property
    def outsider(self) -> bool:
        """No role above read: a stranger, or someone we cannot tell from one."""
        return self.role_name in NEVER_ALLOWED and self.permission in NEVER_ALLOWED

    def describe(self) -> str:
        """`write`, or `release-manager (based on write)` for a custom role."""
        if self.role_name in BUILT_IN_ROLES or self.role_name in (self.permission, ""):
            return self.role_name or self.permission
        return f"{self.role_name} (based on {self.permission})"


@dataclass(frozen=True)
class AccessPolicy:
    """`security.allowed_roles` and `security.outsider_reaction`, as values (the defaults are
    the schema's, through the typed config)."""

    allowed_roles: frozenset[str]
    # The one reaction an outsider's `/somas` comment gets; None: no answer at all.
    outsider_reaction: str | None

    @classmethod
    def from_settings(cls, allowed_roles: Iterable[str], outsider_reaction: str) -> AccessPolicy:
        """From the config section's values (`"none"` turns the outsider reaction off)."""
        # The schema refuses read and none already; this holds for a policy built by hand too.
        roles = frozenset(allowed_roles) - NEVER_ALLOWED
        reaction = None if outsider_reaction == "none" else outsider_reaction
        return cls(roles, reaction)

    def allows(self, access: Access) -> bool:
        """Whether the role (or its base permission) is one of the allowed roles."""
        if access.trusted:
            return True
        return bool({access.role_name, access.permission} & self.allowed_roles)

    def wanted(self) -> str:
        """The allowed roles, for a refusal message."""
        names = sorted(self.allowed_roles)
        if not names:
            return "an allowed role (security.allowed_roles allows none)"
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


@dataclass(frozen=True)
class Decision:
    """Whether a trigger may run; if not, why (one line) and whether to answer in public."""

    allowed: bool
    reason: str
    access: Access

    @property
    def answer_in_public(self) -> bool:
        """Refusals get a reply only for collaborators; outsiders get one reaction at most."""
        return not self.allowed and not self.access.outsider


def decide(access: Access, policy: AccessPolicy, what: str) -> Decision:
    """May `access` do `what` (e.g. "`/somas approve`")? The reason names role and need."""
    if policy.allows(access):
        return Decision(True, f"{access.login} has {access.describe()}", access)
    reason = (
        f"{what} needs the {policy.wanted()} role on the repository; "
        f"{untrusted.code_span(access.login, 60)} has {untrusted.code_span(access.describe(), 80)}"
    )
    return Decision(False, reason, access)


def trusted_dispatcher(login: str) -> Access | None:
    """The Actions bot's dispatches need no API call (see ACTIONS_BOT); None for anyone else."""
    return Access(login, "workflow token", "write", trusted=True) if login == ACTIONS_BOT else None
