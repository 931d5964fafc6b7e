"""Test topology: re-exports ``dns_compute.sample`` (shared with the bench)."""

from __future__ import annotations

from dns_compute.sample import DNS, ZONE, dns_section, entities, overloaded

__all__ = ["DNS", "ZONE", "dns_section", "entities", "overloaded"]
