"""neondoctor: a doctor for PostgreSQL connections, Neon first."""

from __future__ import annotations

__version__ = "0.1.0"
