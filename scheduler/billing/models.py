"""Product catalogue, orders and usage records (GBA-6.7 metering, billing, orders;
compute trading monthly and pay-as-you-go).

Rules:
- Money is ``decimal.Decimal`` everywhere, never a float: prices are given as strings
  or integers ("0.35"), stored as strings, and must be finite and ≥ 0.
- A usage quantity is in *unit·seconds* of its product (core·s, GiB·s, Mbit/s·s …),
  exact to the microsecond; prices are per unit·hour. A bill line's amount is
  ``quantity × price / 3600`` rounded half-up to the cent; a bill's total is the sum of
  its lines (plus a monthly fee).
- ``PricePlan.kind``: ``pay-as-you-go`` bills every unit at ``rates``; ``monthly`` adds
  ``monthly_fee`` and bills only what exceeds ``included`` (unit·hours per product).
  ``site_price: true`` rates CPU at the price per core·hour the site's agent reports
  (captured in each usage record when it is metered), else the plan's ``site_rates`` /
  ``rates``.
- An ``Order`` binds a tenant to a plan from ``start`` (until ``end``) and lists the
  network products it buys (``items``: slices, services whose steered flows it pays
  for, accelerator instances); jobs are always their own tenant's.
- ``UsageRecord`` ids are deterministic (source, object, start), so metering twice
  writes nothing new.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import Field, PlainSerializer, model_validator

from controller.models.base import Entity, Model, Name, register
from controller.models.job import utcnow

#: a non-negative finite amount of money, serialised as a string (exact)
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False, max_digits=20, decimal_places=6),
                  PlainSerializer(lambda d: str(d), return_type=str, when_used="json")]
#: an exact non-negative quantity (unit·seconds), serialised as a string
Quantity = Annotated[Decimal, Field(ge=0, allow_inf_nan=False),
                     PlainSerializer(lambda d: str(d), return_type=str, when_used="json")]


class Product(StrEnum):
    """What is metered, and its unit (rates are per unit·hour)."""

    CPU = "cpu"                  # cores
    GPU = "gpu"                  # cards
    NPU = "npu"                  # cards
    MEMORY = "memory"            # GiB
    INSTANCE = "instance"        # accelerator instances (GB/T 45401)
    FLOW = "flow-bandwidth"      # Mbit/s steered for a service
    SLICE = "slice"              # Mbit/s guaranteed by a slice


UNITS: dict[Product, str] = {
    Product.CPU: "core·h", Product.GPU: "gpu·h", Product.NPU: "npu·h",
    Product.MEMORY: "GiB·h", Product.INSTANCE: "instance·h",
    Product.FLOW: "Mbit/s·h", Product.SLICE: "Mbit/s·h",
}


class PlanKind(StrEnum):
    PAY_AS_YOU_GO = "pay-as-you-go"
    MONTHLY = "monthly"


@register
class PricePlan(Entity):
    """A price plan of the product catalogue. Fields: ``name``, ``kind``,
    ``currency`` (ISO 4217), ``rates`` (product → price per unit·hour),
    ``site_rates`` (site → product → price, overriding ``rates``), ``site_price``
    (CPU at the price the site agent reports), ``monthly_fee``, ``included``
    (product → unit·hours included in the fee), ``description``."""

    KIND = "price-plan"
    name: Name
    kind: PlanKind = PlanKind.PAY_AS_YOU_GO
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    rates: dict[Product, Money] = Field(default_factory=dict)
    site_rates: dict[Name, dict[Product, Money]] = Field(default_factory=dict)
    site_price: bool = False
    monthly_fee: Money = Decimal(0)
    included: dict[Product, Quantity] = Field(default_factory=dict)
    description: str = ""

    @property
    def key(self) -> str:
        return self.name

    @model_validator(mode="after")
    def _monthly(self) -> Self:
        if self.kind is PlanKind.PAY_AS_YOU_GO and (self.monthly_fee or self.included):
            raise ValueError("a pay-as-you-go plan has no monthly_fee or included "
                             "quantities; set kind: monthly")
        return self

    def rate(self, product: Product, site: str | None,
             site_price: Decimal | None) -> Decimal:
        if product is Product.CPU and self.site_price and site_price is not None:
            return site_price
        if site is not None and product in self.site_rates.get(site, {}):
            return self.site_rates[site][product]
        return self.rates.get(product, Decimal(0))


class OrderItem(Model):
    """A network product an order buys: ``kind`` (``slice``, ``service`` — its steered
    flows — or ``instance``) and ``key``."""

    kind: str = Field(pattern="^(slice|service|instance)$")
    key: str = Field(min_length=1, max_length=256)


class OrderState(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"


@register
class Order(Entity):
    """An order (GBA-6.7): ``id``, ``tenant``, ``plan``, ``items``, ``start``, ``end``
    (None = open-ended), ``state``, ``created_by``, ``created_at``."""

    KIND = "order"
    id: Name
    tenant: Name
    plan: Name
    items: list[OrderItem] = Field(default_factory=list, max_length=1000)
    start: datetime = Field(default_factory=utcnow)
    end: datetime | None = None
    state: OrderState = OrderState.ACTIVE
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def key(self) -> str:
        return self.id

    @model_validator(mode="after")
    def _period(self) -> Self:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def covers(self, at: datetime) -> bool:
        return self.state is OrderState.ACTIVE and self.start <= at and \
            (self.end is None or at < self.end)


@register
class UsageRecord(Entity):
    """Metered consumption. Fields: ``id`` (deterministic), ``tenant`` (empty =
    nobody ordered it), ``product``, ``site``, ``quantity`` (unit·seconds),
    ``rate`` (units held, e.g. cores), ``start``, ``end`` (UTC), ``source`` (``job``,
    ``instance``, ``flow``, ``slice``), ``ref`` (job id, instance id …),
    ``site_price`` (price per core·hour the site reported when metered), ``detail``."""

    KIND = "usage-record"
    id: str = Field(min_length=1, max_length=300)
    tenant: str = ""
    product: Product
    site: str | None = None
    quantity: Quantity
    rate: Quantity
    start: datetime
    end: datetime
    source: str
    ref: str
    site_price: Money | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.id
