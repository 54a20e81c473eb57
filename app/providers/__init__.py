"""Provider adapters: how a grant reaches the real system (see base.py for the Protocol)."""
