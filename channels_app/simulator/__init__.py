"""A provider simulator: a real HTTP server speaking each provider's send API on the real
paths, posting correctly signed receipts back, with the sandbox's recipient fates
(design.md) and injectable faults. See :mod:`channels_app.simulator.server`."""
