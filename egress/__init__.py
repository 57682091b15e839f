"""Egress: delivers routed mail to outbound gateways and reports each outcome as an event."""
