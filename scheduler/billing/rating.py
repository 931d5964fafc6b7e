"""Rating (GBA-6.7): usage records × price plan → a bill with line items. Pure.

Rules:
- A bill covers one tenant and one calendar month (UTC). Records are clipped to the
  month: a record that straddles the boundary counts its share, pro rata by time.
- The plan is the one of the tenant's order in force at the month's start (else the
  first order starting within the month); a tenant without an order is refused with
  the fix (create an order).
- Lines group records by (product, site, unit price); amount = quantity (unit·s) ×
  price / 3600, rounded half-up to the cent per line. A monthly plan adds its fee as a
  line and first spends its included unit·hours (in line order) before charging.
- ``total`` = sum of the line amounts. Every number is a Decimal, shown as a string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from scheduler.billing.meter import seconds
from scheduler.billing.models import UNITS, Order, PlanKind, PricePlan, Product, UsageRecord

CENT = Decimal("0.01")
HOUR = Decimal(3600)
MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class MonthError(ValueError):
    pass


def month_bounds(month: str) -> tuple[datetime, datetime]:
    m = MONTH_RE.match(month)
    if m is None:
        raise MonthError(f"month {month!r} is not YYYY-MM (e.g. 2026-12)")
    y, mo = int(m.group(1)), int(m.group(2))
    start = datetime(y, mo, 1, tzinfo=UTC)
    end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=UTC)
    return start, end


def clip(r: UsageRecord, start: datetime, end: datetime) -> Decimal:
    """The part of ``r``'s quantity inside [start, end)."""
    a, b = max(r.start, start), min(r.end, end)
    if b <= a:
        return Decimal(0)
    if a == r.start and b == r.end:
        return r.quantity
    return r.rate * seconds(a, b)


@dataclass
class BillLine:
    product: Product
    site: str | None
    unit_price: Decimal
    quantity_s: Decimal = Decimal(0)
    included_s: Decimal = Decimal(0)
    records: list[str] = field(default_factory=list)
    running: bool = False

    @property
    def amount(self) -> Decimal:
        return ((self.quantity_s - self.included_s) * self.unit_price / HOUR).quantize(
            CENT, rounding=ROUND_HALF_UP)

    def to_json(self) -> dict[str, Any]:
        hours = (self.quantity_s / HOUR).quantize(Decimal("0.000001"), ROUND_HALF_UP)
        incl = (self.included_s / HOUR).quantize(Decimal("0.000001"), ROUND_HALF_UP)
        where = f" at {self.site}" if self.site else ""
        return {"product": self.product.value, "kind": "usage", "site": self.site,
                "quantity": str(hours), "included": str(incl),
                "unit": UNITS[self.product], "unit_price": str(self.unit_price),
                "amount": str(self.amount), "records": self.records,
                "description": f"{self.product.value}{where}: {hours} {UNITS[self.product]}"
                               + (f" ({incl} included)" if self.included_s else "")
                               + (" (still running)" if self.running else "")}


def plan_for(orders: Sequence[Order], tenant: str, start: datetime, end: datetime
             ) -> Order | None:
    mine = sorted((o for o in orders if o.tenant == tenant and o.state.value == "active"),
                  key=lambda o: o.start)
    at_start = [o for o in mine if o.covers(start)]
    if at_start:
        return at_start[-1]
    return next((o for o in mine if start <= o.start < end), None)


def bill(tenant: str, month: str, plan: PricePlan, order: Order,
         records: Sequence[UsageRecord]) -> dict[str, Any]:
    start, end = month_bounds(month)
    lines: dict[tuple[Product, str | None, Decimal], BillLine] = {}
    for r in sorted(records, key=lambda r: (r.start, r.id)):
        if r.tenant != tenant:
            continue
        q = clip(r, start, end)
        if not q:
            continue
        price = plan.rate(r.product, r.site, r.site_price)
        line = lines.setdefault((r.product, r.site, price), BillLine(r.product, r.site, price))
        line.quantity_s += q
        line.records.append(r.id)
        line.running = line.running or bool(r.detail.get("running"))
    ordered = sorted(lines.values(), key=lambda ln: (ln.product.value, ln.site or "",
                                                     ln.unit_price))
    out_lines: list[dict[str, Any]] = []
    total = Decimal(0)
    if plan.kind is PlanKind.MONTHLY:
        left = {p: q * HOUR for p, q in plan.included.items()}
        for ln in ordered:
            use = min(left.get(ln.product, Decimal(0)), ln.quantity_s)
            ln.included_s = use
            left[ln.product] = left.get(ln.product, Decimal(0)) - use
        fee = plan.monthly_fee.quantize(CENT, ROUND_HALF_UP)
        out_lines.append({"product": "monthly-fee", "kind": "fee", "site": None,
                          "quantity": "1", "included": "0", "unit": "month",
                          "unit_price": str(plan.monthly_fee), "amount": str(fee),
                          "records": [], "description": f"plan {plan.name}, {month}"})
        total += fee
    for ln in ordered:
        out_lines.append(ln.to_json())
        total += ln.amount
    return {"tenant": tenant, "month": month, "plan": plan.name, "plan_kind": plan.kind.value,
            "order": order.id, "currency": plan.currency, "period": {
                "start": start.isoformat(), "end": end.isoformat()},
            "lines": out_lines, "total": str(total.quantize(CENT)),
            "records": sum(len(ln.records) for ln in ordered)}
