"""Operations (GBA-6.7, GBT-8): alarms, Prometheus gauges, the web console's data."""
