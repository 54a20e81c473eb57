"""Durable notices: what the lifecycle tells people, as typed rows (a NoticeKind, the ids of the
rows it is about, its other arguments), delivered at least once and in order per request.
Nothing here knows Slack: the Slack layer hands the outbox a function that delivers a notice."""
