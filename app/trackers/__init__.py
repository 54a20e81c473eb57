"""Ticket and incident trackers: what a request's ticket really is (found? open? whose?), and
where the access is told about in return (a comment on the ticket). One small adapter per
service behind one Protocol (base.py), found by name in the entry-point group
`prod_access.trackers`, as providers are."""
