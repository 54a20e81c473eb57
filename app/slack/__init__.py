"""The Slack side: Bolt app and listeners (thin), Block Kit views (pure), notices (after commit)."""
