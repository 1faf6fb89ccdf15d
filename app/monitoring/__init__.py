"""Monitoring: how storage stands and whether the service is well.

``figures`` (the storage figures and their shared cache), ``snapshots`` (the hourly record),
``alerts`` (the periodic check and its webhook), and the two doors scrapers and load balancers
call: ``metrics`` (``/metrics``) and ``health`` (``/healthz``). The lifecycle core raises its own
alerts as it meets a problem (app.lifecycle.alerts); the check here opens and resolves the ones
that describe a condition, and sends both kinds to the webhook.
"""
