"""Timed jobs (APScheduler 3) that call operations. Timers live in the database: every job is a
sweep over rows whose due time has passed, so work that fell due while the bot was down is done
at the next start."""
