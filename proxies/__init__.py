"""IMS network functions on the ``ims`` stack: P-CSCF, S-CSCF, registrar, media anchor.

``proxies`` exposes hook points (message and packet observers/filters) and never imports ``li``.
"""
