"""Rating (GBA-6.7): exact Decimal bills from usage records, checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.billing.models import Order, PricePlan, Product, UsageRecord
from scheduler.billing.rating import MonthError, bill, month_bounds

T0 = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
ORDER = Order(id="o1", tenant="acme", plan="p", start=datetime(2026, 1, 1, tzinfo=UTC))


def rec(rid: str, product: Product, rate: str, start: datetime, secs: float,
        site: str | None = "GZ", site_price: str | None = None,
        tenant: str = "acme") -> UsageRecord:
    r = Decimal(rate)
    return UsageRecord(id=rid, tenant=tenant, product=product, site=site,
                       quantity=r * Decimal(str(secs)), rate=r, start=start,
                       end=start + timedelta(seconds=secs), source="job", ref=rid,
                       site_price=Decimal(site_price) if site_price else None)


def test_pay_as_you_go_by_hand() -> None:
    plan = PricePlan(name="p", rates={"cpu": "0.35", "gpu": "12.5", "slice": "0.002"},
                     site_rates={"SZ": {"cpu": "0.20"}})
    recs = [rec("a", Product.CPU, "2", T0, 5400),            # 3 core·h at GZ
            rec("b", Product.CPU, "4", T0, 1800, site="SZ"),  # 2 core·h at SZ
            rec("c", Product.GPU, "1", T0, 600),              # 1/6 gpu·h
            rec("d", Product.SLICE, "50", T0, 7200, site=None),  # 100 Mbit/s·h
            rec("x", Product.CPU, "8", T0, 3600, tenant="other")]
    b = bill("acme", "2026-11", plan, ORDER, recs)
    amounts = {(ln["product"], ln["site"]): Decimal(ln["amount"]) for ln in b["lines"]}
    # by hand: 3 × 0.35 = 1.05; 2 × 0.20 = 0.40; 12.5 / 6 = 2.0833… → 2.08; 100 × 0.002
    assert amounts == {("cpu", "GZ"): Decimal("1.05"), ("cpu", "SZ"): Decimal("0.40"),
                       ("gpu", "GZ"): Decimal("2.08"), ("slice", None): Decimal("0.20")}
    assert b["total"] == "3.73" and b["currency"] == "CNY" and b["records"] == 4


def test_site_reported_price_and_monthly_plan_with_included_hours() -> None:
    plan = PricePlan(name="p", kind="monthly", monthly_fee="99.90", site_price=True,
                     rates={"cpu": "0.50"}, included={"cpu": "2"})
    recs = [rec("a", Product.CPU, "1", T0, 3600, site_price="0.40"),  # 1 core·h @0.40
            rec("b", Product.CPU, "3", T0, 3600)]                     # 3 core·h @0.50
    b = bill("acme", "2026-11", plan, ORDER, recs)
    fee, *usage = b["lines"]
    assert fee["amount"] == "99.90"
    # included 2 core·h spent in line order: all of the 0.40 line, 1 of the 0.50 line
    assert [(ln["unit_price"], ln["included"], ln["amount"]) for ln in usage] == [
        ("0.40", "1.000000", "0.00"), ("0.50", "1.000000", "1.00")]
    assert b["total"] == "100.90"


def test_a_record_across_the_month_boundary_counts_its_share() -> None:
    plan = PricePlan(name="p", rates={"cpu": "1"})
    start = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # 1 h in October, 2 h in November
    b = bill("acme", "2026-11", plan, ORDER, [rec("a", Product.CPU, "1", start, 3 * 3600)])
    assert b["lines"][0]["quantity"] == "2.000000" and b["total"] == "2.00"


def test_month_must_be_yyyy_mm() -> None:
    with pytest.raises(MonthError, match="YYYY-MM"):
        month_bounds("2026-13")
    assert month_bounds("2026-12")[1] == datetime(2027, 1, 1, tzinfo=UTC)


def test_negative_or_non_finite_price_is_refused() -> None:
    for bad in ("-0.01", "NaN", "Infinity"):
        with pytest.raises(ValueError, match="rates.cpu"):
            PricePlan(name="p", rates={"cpu": bad})
    with pytest.raises(ValueError, match="pay-as-you-go plan has no monthly_fee"):
        PricePlan(name="p", monthly_fee="10")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Product)), st.integers(1, 64),
                          st.integers(1, 40 * 86400)), min_size=0, max_size=12),
       st.decimals(min_value=0, max_value=100, places=4))
def test_total_is_the_sum_of_lines_and_never_negative(
        usage: list[tuple[Product, int, int]], price: Decimal) -> None:
    plan = PricePlan(name="p", rates={p: price for p in Product})
    recs = [rec(f"r{i}", p, str(units), T0 - timedelta(days=20), secs)
            for i, (p, units, secs) in enumerate(usage)]
    b = bill("acme", "2026-11", plan, ORDER, recs)
    assert Decimal(b["total"]) == sum((Decimal(ln["amount"]) for ln in b["lines"]), Decimal(0))
    assert Decimal(b["total"]) >= 0
