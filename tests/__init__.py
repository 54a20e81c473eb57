"""Tests for prod-access; a package so that `tests.fakes` imports the same way everywhere."""
