"""imslab protocol stack: SIP, SDP, SDES, MIKEY and RTP/SRTP.

Layering (STYLE.md §2): ``ims`` imports nothing from ``proxies``, ``ue``, ``li`` or ``lab``;
``sdp``, ``sdes``, ``mikey`` and ``media`` never import ``sip``.
"""
