"""The security-video handover lab (GBA-App.B): camera → R1 (SRv6 headend) → R2 → MEC-1,
R1 → R3 → MEC-2, a controller in its own namespace, real processes, a measured report.

Rules:
- Everything runs for real: kernel SRv6 routes in namespaces, UDP frames, CPU work per
  frame, the controller (``cpn run``) steering through a node agent at R1.
- Every namespace and process belongs to one ``labs.netns.Lab`` and is torn down on
  every exit path (errors, Ctrl-C, SIGTERM).
- Times that are compared across processes are ``CLOCK_MONOTONIC`` nanoseconds (one
  kernel clock shared by all namespaces).
"""
