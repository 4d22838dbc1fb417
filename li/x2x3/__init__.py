"""ETSI TS 103 221-2 X2/X3: the PDU codec, stream framing and the asyncio exporter (POI side)."""
