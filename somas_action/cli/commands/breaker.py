"""`somas breaker status|reset|trip [SERVICE]`: the runbook's circuit breaker management."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from somas_action.cli.commands import Subparsers
from somas_action.config.actor import default_actor
from somas_action.core.errors import CommandRefused
from somas_action.core.names import AI_API

if TYPE_CHECKING:
    from somas_action.core.settings import BreakerSettings


def register(sub: Subparsers) -> None:
    """`somas breaker`."""
    p = sub.add_parser("breaker", help="show, reset or trip the circuit breakers")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="every breaker (or one) and its state")
    status.add_argument("service", nargs="?")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=lambda a: show(a.repo, a.service, as_json=a.json))
    for name, verb in (("reset", "force closed (the service is healthy)"), ("trip", "force open")):
        q = actions.add_parser(name, help=f"{verb}; recorded in every active project")
        q.add_argument("service", nargs="?", default=AI_API, help=f"default: {AI_API}")
        q.add_argument("--actor", help="who is acting (default: $SOMAS_ACTOR or local:<user>)")
        q.add_argument("--json", action="store_true", help="print JSON")
        q.set_defaults(func=lambda a, name=name: change(a.repo, name, a.service, a.actor, a.json))


def _checked(repo: Path, service: str) -> tuple[list[str], BreakerSettings]:
    from somas_action.config.loader import load_config
    from somas_action.state.breakers import known_services

    config = load_config(repo)
    services = known_services(config, repo)
    if service not in services:
        raise CommandRefused(f"unknown service {service!r}; known: {', '.join(services)}")
    return services, config.error_handling.circuit_breaker


def _rows(repo: Path, services: list[str], settings: BreakerSettings) -> list[dict[str, Any]]:
    from somas_action.core.breaker import new_record
    from somas_action.state.breakers import BreakerStore, CircuitBreaker

    records = BreakerStore(repo).read()
    rows = []
    for service in services:
        breaker = CircuitBreaker(service, repo=repo, settings=settings, actor="-")
        record = records.get(service) or new_record()
        rows.append(
            {
                "service": service,
                "state": breaker.current_state(),
                "failures": record["failures"],
                "threshold": settings.failure_threshold,
                "since": record["since"],
                "retry_at": record["retry_at"],
                "reason": record["reason"],
                "changed_by": record["changed_by"],
            }
        )
    return rows


def show(repo: Path, service: str | None, as_json: bool) -> int:
    """Print the breakers (the live failure counts, which state.json does not mirror)."""
    from somas_action.config.loader import load_config
    from somas_action.state.breakers import known_services

    config = load_config(repo)
    services = known_services(config, repo)
    if service is not None:
        _checked(repo, service)
        services = [service]
    rows = _rows(repo, services, config.error_handling.circuit_breaker)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            detail = ""
            if row["state"] != "closed":
                until = row["retry_at"] or "reset by an operator"
                detail = f"  since {row['since']}, probes from {until}: {row['reason']}"
            print(
                f"{row['service']:<14} {row['state']:<10} "
                f"failures {row['failures']}/{row['threshold']}{detail}"
            )
    return 0


def change(repo: Path, action: str, service: str, actor: str | None, as_json: bool = False) -> int:
    """Reset or trip one breaker and say which projects recorded it."""
    from somas_action.core.clock import SystemClock
    from somas_action.pipeline.breaker_mirror import mirror_into_projects
    from somas_action.state.breakers import CircuitBreaker

    _, settings = _checked(repo, service)
    breaker = CircuitBreaker(
        service,
        repo=repo,
        clock=SystemClock(),
        settings=settings,
        actor=actor or default_actor(),
    )
    transition = breaker.reset() if action == "reset" else breaker.trip()
    recorded_in = mirror_into_projects(repo, transition, breaker.clock, breaker.policy.actor)
    if as_json:
        print(
            json.dumps(
                {
                    "service": service,
                    "from": transition.from_state,
                    "to": transition.to_state,
                    "reason": transition.reason,
                    "recorded_in": recorded_in,
                },
                indent=2,
            )
        )
        return 0
    print(f"{service}: {transition.from_state} -> {transition.to_state} ({transition.reason})")
    where = ", ".join(recorded_in) or "no active project"
    print(f"recorded in: {where}")
    return 0
