"""HI2: IRI records in the standard handover format (ETSI TS 101 671 HI2Operations, with the
IMS event and SIP message of 3GPP TS 33.108), BER-encoded with asn1tools from the standards'
ASN.1 (``li/hi2/asn1/``). See :mod:`li.hi2.records`, :mod:`li.hi2.codec`, :mod:`li.hi2.writer`.
"""
