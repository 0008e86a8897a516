# One image for every Plumbline process; the compose file picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir shared services \
    && touch shared/__init__.py services/__init__.py \
    && pip install . \
    && pip uninstall -y plumbline \
    && rm -rf shared services build ./*.egg-info

COPY shared ./shared
COPY services ./services
# Migrations are not part of the installed package: `plumbline migrate` finds them in the
# working directory (see shared/migrate.py).
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --no-deps . && rm -rf build ./*.egg-info

RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin plumbline \
    && mkdir -p /app/data \
    && chown plumbline:plumbline /app/data
USER plumbline

ENV PLUMBLINE_DATA_DIR=/app/data \
    PLUMBLINE_API_HOST=0.0.0.0 \
    PLUMBLINE_API_PORT=8000
EXPOSE 8000

ENTRYPOINT ["plumbline"]
CMD ["api"]
