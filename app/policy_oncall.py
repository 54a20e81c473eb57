"""A role's `auto_approve_oncall`: who on call may be approved with no approver (the policy's
model; app/operations/oncall_approval.py asks PagerDuty and the tracker).

Two forms, both valid in policy.yml:

    auto_approve_oncall: P0ABC12              # on call now in that schedule (as before)
    auto_approve_oncall:
      schedules: [P0ABC12, P0DEF34]           # on call now in one of these
      escalation_level_max: 1                 # at escalation level 1 (PagerDuty's levels)
      incident_assigned: true                 # and the request's ticket is an incident the
                                              # tracker says is assigned to the requester

Every condition given must hold; anything that cannot be told means the approvers decide.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ScheduleId = Annotated[str, StringConstraints(min_length=1, max_length=40, strip_whitespace=True)]


class OnCallRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schedules: list[ScheduleId] = Field(min_length=1)
    escalation_level_max: int | None = Field(default=None, ge=1, le=20)
    incident_assigned: bool = False

    def describe(self) -> str:
        """In words, for cards and decision notes: "P0ABC12, P0DEF34, level ≤ 1, assigned"."""
        parts = [", ".join(self.schedules)]
        if self.escalation_level_max is not None:
            parts.append(f"escalation level ≤ {self.escalation_level_max}")
        if self.incident_assigned:
            parts.append("assigned to the incident")
        return "; ".join(parts)


#: What `auto_approve_oncall` may hold: a schedule id, or the rule.
OnCallSetting = Annotated[str, StringConstraints(min_length=1)] | OnCallRule


def oncall_rule(setting: OnCallSetting) -> OnCallRule:
    """The rule for either form (a schedule id alone: on call there, nothing more)."""
    return setting if isinstance(setting, OnCallRule) else OnCallRule(schedules=[setting])


def describe_oncall(setting: OnCallSetting) -> str:
    """The setting in words; a schedule id alone is shown as it is written."""
    return setting if isinstance(setting, str) else setting.describe()
