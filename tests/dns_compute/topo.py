"""Test topology: re-exports ``labs.dns_sample`` (shared with the bench)."""

from __future__ import annotations

from labs.dns_sample import DNS, ZONE, dns_section, entities, overloaded

__all__ = ["DNS", "ZONE", "dns_section", "entities", "overloaded"]
