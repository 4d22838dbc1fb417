"""ETSI TS 103 221-1 X1: task and destination provisioning of network elements (ADMF -> NE)."""
