# One image for every HealthBridge component; docker-compose.yml picks the command.
FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libgl/libglib are what OpenCV's headless wheel still links against; the camera
# device itself is mapped into the verifier container by docker-compose.yml.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libglib2.0-0 libgl1 curl \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 healthbridge
WORKDIR /app

COPY pyproject.toml constraints.txt README.md ./
COPY common ./common
COPY credential ./credential
COPY ledger ./ledger
COPY issuer ./issuer
COPY verifier ./verifier
COPY mobile_stub ./mobile_stub
COPY healthbridge ./healthbridge
RUN pip install -c constraints.txt .

# Mount points for the named volumes, owned by the image user so that a fresh volume
# starts writable; the issuer's key folder is private (0700) like on a host install.
RUN install -d -o healthbridge -g healthbridge \
        /var/lib/healthbridge/wallet /var/lib/healthbridge/station /etc/healthbridge \
 && install -d -m 0700 -o healthbridge -g healthbridge /var/lib/healthbridge/issuer/keys/signing

USER healthbridge
ENTRYPOINT ["healthbridge"]
CMD ["--help"]
