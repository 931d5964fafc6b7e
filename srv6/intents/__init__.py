"""SR policy intents, closed-loop: plan (pure), reconcile through ``PolicyProgrammer``s,
write status back (GBA-6.4.3c; DESIGN §1). See ``docs/srv6-intents.md``."""
