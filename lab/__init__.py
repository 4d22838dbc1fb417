"""Orchestration and the ``imslab`` command line (lab -> ue/proxies/li -> ims)."""
