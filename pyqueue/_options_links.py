"""The job options that tie a job to others, in BullMQ's encoding: a flow
child's failure policy (``fpof``/``cpof``/``idof``/``rdof``) and the trace
context it carries (``tm``/``omc``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import InvalidJobOptionsError

#: A flow child's failure policies: option -> BullMQ's short name in ``opts``.
FAILURE_POLICIES = {"fail_parent_on_failure": "fpof", "continue_parent_on_failure": "cpof",
                    "ignore_dependency_on_failure": "idof",
                    "remove_dependency_on_failure": "rdof"}


def failure_policy(opts: Mapping[str, Any]) -> str | None:
    """The short name of the one failure policy set in ``opts`` (``None``: none)."""
    chosen = []
    for option, short in FAILURE_POLICIES.items():
        flag = opts.get(option)
        if flag is None:
            continue
        if not isinstance(flag, bool):
            raise InvalidJobOptionsError(f"{option} must be a bool, got {flag!r}")
        if flag:
            chosen.append((option, short))
    if len(chosen) > 1:
        raise InvalidJobOptionsError(
            f"choose one failure policy, not several: {[o for o, _ in chosen]}")
    return chosen[0][1] if chosen else None


def encode_telemetry(value: Any) -> dict[str, Any]:
    """``telemetry={"metadata": str, "omit_context": bool}`` as BullMQ's ``tm``/``omc``."""
    if not isinstance(value, Mapping) or set(value) - {"metadata", "omit_context"}:
        raise InvalidJobOptionsError(
            f"telemetry must be {{'metadata': str, 'omit_context': bool}}, got {value!r}")
    out: dict[str, Any] = {}
    if value.get("metadata") is not None:
        if not isinstance(value["metadata"], str):
            raise InvalidJobOptionsError(
                f"telemetry.metadata must be a str, got {value['metadata']!r}")
        out["tm"] = value["metadata"]
    if value.get("omit_context") is not None:
        if not isinstance(value["omit_context"], bool):
            raise InvalidJobOptionsError(
                f"telemetry.omit_context must be a bool, got {value['omit_context']!r}")
        out["omc"] = value["omit_context"]
    return out


#: BullMQ's short name -> the option ``add`` takes.
POLICY_OPTIONS = {short: option for option, short in FAILURE_POLICIES.items()}
