"""Audit streaming: every audit event, exactly as recorded, to each sink in AUDIT_SINKS (Splunk
HEC, a generic HTTPS endpoint, S3, a file), at least once and in order (see deliver.py)."""
