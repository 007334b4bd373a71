# syntax=docker/dockerfile:1
# One image for web, worker and beat (CPU torch), and, built with TORCH_VARIANT=cu128 (or the CUDA
# variant that matches the host's driver), for the GPU worker. torch is installed first from the
# PyTorch index, pinned to 2.13.0; requirements.txt then finds it already satisfied.
FROM python:3.11-slim-bookworm

ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    ARBITER_VAR_DIR=/data/var \
    ARTIFACTS_ROOT=/data/artifacts

RUN useradd --create-home --uid 1000 arbiter
WORKDIR /app

COPY requirements.txt ./
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0 \
 && pip install -r requirements.txt \
 && python -c "import torch; v = torch.__version__; assert v.split('+')[0] == '2.13.0', v; print('torch', v)"

COPY . .
# Collected at build time; whitenoise serves them from gunicorn (compressed, cacheable).
RUN DJANGO_DEBUG=1 python manage.py collectstatic --noinput \
 && mkdir -p /data/var /data/artifacts \
 && chown -R arbiter:arbiter /data

USER arbiter
EXPOSE 8000
CMD ["gunicorn", "arbiter.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
