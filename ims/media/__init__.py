"""The media plane: RTP/RTCP (RFC 3550), G.711, audio sources/sinks, tone detection,
SRTP/SRTCP (pylibsrtp fast path + explicit-ROC ``cryptography`` path, RFC 3711/7714),
the asyncio media session and the RTP relay. API: docs/media-api.md."""
