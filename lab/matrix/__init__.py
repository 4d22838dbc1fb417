"""``imslab matrix``: every key-management method of the study, across scenarios, by real calls."""
