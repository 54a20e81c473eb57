"""The Slack side: Bolt app and listeners (thin), blocks/ (what people see, pure), the notifier
(sends what blocks/ composes, after commit) and the directory (people and groups)."""
