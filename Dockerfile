# imslab: one image for every network element; docker-compose.yml picks the role per service.
# BASE: any Debian 12 image with python3 (3.11) and pip. Without Docker Hub, deploy/engine.sh
# builds one from the apt mirror (debootstrap + docker import) and passes it here.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/imslab
COPY pyproject.toml README.md ./
COPY ims ./ims
COPY proxies ./proxies
COPY ue ./ue
COPY li ./li
COPY lab ./lab
RUN pip install --no-cache-dir .
# SIP (UDP/TCP 5060, TLS 5061), anchor control 2223, RTP relay range; LI: X1 8443 (HTTPS),
# LI_T3 2224 (P-CSCF -> anchor), X2/X3 to the LEMF 50100; LI state (PKIs, LEMF output)
EXPOSE 5060/udp 5060/tcp 5061/tcp 2223/udp 30000-39999/udp 8443/tcp 2224/udp 50100/tcp
VOLUME /var/lib/imslab
ENTRYPOINT []
CMD ["imslab", "--help"]
