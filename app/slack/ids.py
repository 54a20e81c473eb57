"""action_id / callback_id / block_id names shared by blocks/ (which puts them in) and listeners/
(which route on them)."""

from enum import StrEnum


class Action(StrEnum):
    approve = "approve_request"
    deny = "deny_request"
    end_session = "end_session"
    retry_grant = "retry_grant"
    open_closeout = "open_closeout"
    system_select = "system_select"
    role_select = "role_select"
    duration_select = "duration_select"
    ticket_input = "ticket_input"
    reason_input = "reason_input"
    changes_input = "changes_input"
    followups_input = "followups_input"
    cancel_request = "cancel_request"
    extend_session = "extend_session"
    breakglass_toggle = "breakglass_toggle"
    breakglass_ack = "breakglass_ack"
    breakglass_flag = "breakglass_flag"
    deny_reason_input = "deny_reason_input"
    step_up_open = "step_up_open"  # a link button: Slack still tells us of the click
    delegate_open = "delegate_open"  # Home tab: hand my approvals to someone (the modal)
    delegation_end = "delegation_end"
    delegate_to_input = "delegate_to_input"
    delegate_until_input = "delegate_until_input"


class Callback(StrEnum):
    request_modal = "request_access"
    closeout_modal = "closeout"
    deny_modal = "deny"
    extend_modal = "extend"
    delegate_modal = "delegate"


class Block(StrEnum):
    system = "system"
    role = "role"  # suffixed with the system id, so a new system resets the choice
    duration = "duration"  # suffixed with system and role, for the same reason
    ticket = "ticket"
    reason = "reason"
    changes = "changes"
    followups = "followups"
    breakglass = "breakglass"  # suffixed with the system id (only some systems offer it)
    deny_reason = "deny_reason"
    delegate_to = "delegate_to"
    delegate_until = "delegate_until"
