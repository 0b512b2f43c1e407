"""Fault injection: ``make chaos`` (``python -m tests.chaos``) breaks real processes and servers
while traffic flows, then checks that nothing was lost or sent twice. See docs/reliability.md."""
