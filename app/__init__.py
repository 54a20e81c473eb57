"""prod-access: temporary, task-bound production access through Slack."""

__version__ = "0.1.0"
