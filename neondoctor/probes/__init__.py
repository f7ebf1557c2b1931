"""The checklist, in order: each layer needs the one before it."""

from __future__ import annotations

from neondoctor.probes import auth, dns, slots, tables, tcp, tls, url

PROBES = (url, dns, tcp, tls, auth, slots, tables)

__all__ = ["PROBES"]
