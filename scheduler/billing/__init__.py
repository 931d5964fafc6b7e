"""Metering and billing (GBA-6.7): usage records, price plans, orders, bills."""
