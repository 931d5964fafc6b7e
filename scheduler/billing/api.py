"""REST routes of metering and billing (GBA-6.7): ``/api/v1/price-plans`` (the product
catalogue), ``/api/v1/orders``, ``/api/v1/usage``, ``/api/v1/bills/{tenant}``.

Rules:
- Price plans: read by any token, written by operators; a negative or non-finite price
  is a 422 naming the field (``body.rates.cpu``).
- A tenant-role caller sees and orders only for its own tenant; another tenant's
  usage, orders or bill are a 404, exactly as if they did not exist.
- A bill for an unknown tenant is a 404 naming how to list tenants; a month that is
  not ``YYYY-MM`` or lies in the future is a 422; a tenant without an order is a 409
  naming the fix. Asking for a bill first brings metering up to date.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from controller.api.deps import RT, Caller, Paging
from controller.api.resources import crud_router
from controller.auth import Principal
from controller.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from controller.models import Model, Role, Tenant
from controller.runtime import Runtime
from scheduler.billing.meter import Meter
from scheduler.billing.models import Order, OrderItem, OrderState, PricePlan, UsageRecord
from scheduler.billing.rating import MonthError, bill, clip, month_bounds, plan_for


class NewOrder(Model):
    """Body of POST /orders: ``tenant`` (operators; a tenant orders for itself),
    ``plan``, ``items``, ``start`` (default now), ``end``."""

    tenant: str | None = None
    plan: str
    items: list[OrderItem] = []
    start: datetime | None = None
    end: datetime | None = None


def meter(rt: Runtime) -> Meter:
    comp = rt.settings.extra.get("meter")
    m = getattr(comp, "meter", None)
    if isinstance(m, Meter):
        return m
    cached = rt.settings.extra.get("_meter")
    if not isinstance(cached, Meter):
        cached = rt.settings.extra["_meter"] = Meter(rt.store)
    return cached


def _scope(who: Principal, tenant: str | None) -> str | None:
    if who.role is Role.TENANT:
        if tenant not in (None, who.tenant):
            raise NotFoundError("tenant", str(tenant))
        return who.tenant
    return tenant


def known_tenants(rt: Runtime) -> set[str]:
    return {t.name for t in rt.store.list(Tenant)} | {o.tenant for o in rt.store.list(Order)}


def _month(month: str) -> tuple[datetime, datetime]:
    try:
        start, end = month_bounds(month)
    except MonthError as exc:
        raise ValidationError.single("query.month", str(exc), "give the month as YYYY-MM") \
            from exc
    if start > datetime.now(UTC):
        raise ValidationError.single("query.month", f"month {month} has not begun",
                                     "ask for this month or an earlier one")
    return start, end


def router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", tags=["billing"])

    @r.post("/orders", status_code=201, summary="Order a price plan (and network products)")
    def create_order(rt: RT, who: Caller, body: NewOrder) -> dict[str, Any]:
        if who.role is Role.VIEWER:
            raise ForbiddenError("role viewer may not order (needs role tenant or operator)")
        tenant = _scope(who, body.tenant) or body.tenant
        if not tenant:
            raise ValidationError.single("body.tenant", "tenant is required",
                                         "name the tenant the order is for")
        if rt.store.get(Tenant, tenant) is None:
            raise ValidationError.single("body.tenant", f"unknown tenant {tenant!r}",
                                         "create it first: POST /api/v1/tenants")
        if rt.store.get(PricePlan, body.plan) is None:
            names = ", ".join(p.name for p in rt.store.list(PricePlan)) or "none yet"
            raise ValidationError.single("body.plan", f"unknown price plan {body.plan!r}",
                                         f"use one of: {names} (GET /api/v1/price-plans)")
        try:
            order = Order(id=f"ord-{secrets.token_hex(4)}", tenant=tenant, plan=body.plan,
                          items=body.items, start=body.start or datetime.now(UTC),
                          end=body.end, created_by=who.name)
        except ValueError as exc:
            raise ValidationError.single("body.end", str(exc).splitlines()[-1],
                                         "end must be after start") from exc
        rt.writer.put(order, f"api:{who.name}", f"order plan {body.plan}", create_only=True)
        return order.to_json_dict()

    @r.get("/orders", summary="Orders (a tenant sees its own)")
    def list_orders(rt: RT, who: Caller, page: Paging,
                    tenant: str | None = None) -> dict[str, Any]:
        t = _scope(who, tenant)
        items = [o.to_json_dict() for o in sorted(rt.store.list(Order), key=lambda o: o.start)
                 if t is None or o.tenant == t]
        return page.apply(items)

    @r.post("/orders/{oid}/cancel", summary="Cancel an order (ends it now)")
    def cancel_order(oid: str, rt: RT, who: Caller) -> dict[str, Any]:
        o = rt.store.get(Order, oid)
        if o is None or (who.role is Role.TENANT and o.tenant != who.tenant):
            raise NotFoundError("order", oid)
        who.require_tenant_access(o.tenant)
        if o.state is OrderState.CANCELLED:
            raise ConflictError(f"order {oid} is already cancelled")
        now = datetime.now(UTC)
        new = o.model_copy(update={"state": OrderState.CANCELLED,
                                   "end": max(now, o.start) if o.end is None else o.end})
        rt.writer.put(new, f"api:{who.name}", "cancel order")
        return new.to_json_dict()

    @r.get("/usage", summary="Usage records of a month (a tenant sees its own)")
    def usage(rt: RT, who: Caller, page: Paging,
              month: Annotated[str, Query(description="YYYY-MM")],
              tenant: str | None = None) -> dict[str, Any]:
        t = _scope(who, tenant)
        start, end = _month(month)
        m = meter(rt)
        m.run_pass()
        recs = [*rt.store.list(UsageRecord), *m.open_usage(datetime.now(UTC))]
        items = [{**x.to_json_dict(), "in_month": str(clip(x, start, end))}
                 for x in sorted(recs, key=lambda x: (x.start, x.id))
                 if (t is None or x.tenant == t) and clip(x, start, end)]
        return page.apply(items)

    @r.get("/bills/{tenant}", summary="A tenant's bill for a month, with line items")
    def get_bill(tenant: str, rt: RT, who: Caller,
                 month: Annotated[str, Query(description="YYYY-MM")]) -> dict[str, Any]:
        if who.role is Role.TENANT and tenant != who.tenant:
            raise NotFoundError("tenant", tenant)
        if tenant not in known_tenants(rt):
            exc = NotFoundError("tenant", tenant)
            exc.args = (f"tenant {tenant!r} not found: list tenants with GET "
                        "/api/v1/tenants",)
            raise exc
        start, end = _month(month)
        order = plan_for(rt.store.list(Order), tenant, start, end)
        if order is None:
            raise ConflictError(f"tenant {tenant!r} has no order in force in {month}: "
                                "create one with POST /api/v1/orders {tenant, plan}")
        plan = rt.store.get(PricePlan, order.plan)
        if plan is None:
            raise ConflictError(f"order {order.id} names price plan {order.plan!r}, which "
                                "no longer exists; restore the plan or re-order")
        m = meter(rt)
        m.run_pass()
        recs = [*rt.store.list(UsageRecord), *m.open_usage(min(datetime.now(UTC), end))]
        return bill(tenant, month, plan, order, recs)

    return r


def routers() -> list[APIRouter]:
    return [crud_router(PricePlan, "price-plans", tags=["billing"]), router()]
