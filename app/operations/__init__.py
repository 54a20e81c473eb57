"""Operations: one module per state change. Each loads its row with a lock, checks the state it
starts from, writes the new state and its audit event, commits, and only then calls a provider
or tells people. Listeners (Slack), jobs (timers) and the CLI only call these.
"""
