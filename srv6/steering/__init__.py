"""Steering (CATS C-TC): classify traffic into SR policies — Linux ``ip rule`` backend
(``linux``) and the OpenFlow access-switch backend (``openflow``)."""
