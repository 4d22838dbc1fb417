"""Points of interception (TS 33.127 §7.4): the IRI-POI on the CSCFs, the CC-POI on the media
anchor and the passive tap of a separate media-path provider. They attach to the hook points of
:mod:`proxies.hooks`, are tasked over X1 and emit X2/X3 through an exporter."""
