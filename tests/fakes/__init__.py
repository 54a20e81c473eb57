"""Fakes for tests: local stand-ins for Slack, webhook targets and a throwaway PostgreSQL."""
