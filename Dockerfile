# The taxi image: one image for web, worker, beat and release (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --create-home --home-dir /home/taxi --shell /usr/sbin/nologin taxi

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The code stays owned by root: the app user can read it, not change it.
COPY . .

# Settings refuse to start without SECRET_KEY when DEBUG is off; collectstatic
# needs none, so this placeholder lives in this one step and not in the image.
RUN SECRET_KEY=collectstatic-build-step-only python manage.py collectstatic --noinput \
    && mkdir -p var && chown taxi:taxi var

USER taxi
EXPOSE 8000
CMD ["sh", "-c", "exec python -m taxi.server -b 0.0.0.0 -p ${PORT:-8000} --proxy-headers --websocket-max-message-size 65536 --access-log /dev/null taxi.asgi:application"]
