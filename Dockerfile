# The API and the projector (`orders api`, `orders project`). With registry access the base is
# the official Python image; `make docker-images` passes its local Debian build instead.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}
ENV VIRTUAL_ENV=/opt/orders \
    PATH=/opt/orders/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /srv
RUN python3 -m venv /opt/orders
# Dependencies first, in a layer of their own: a code change rebuilds only the steps below.
COPY pyproject.toml ./
RUN mkdir -p app projectors infra orders_cli \
 && touch README.md app/__init__.py projectors/__init__.py infra/__init__.py \
    orders_cli/__init__.py \
 && pip install --no-cache-dir . \
 && pip uninstall -y -q orders-cqrs \
 && rm -rf app projectors infra orders_cli README.md build ./*.egg-info
COPY README.md ./
COPY app ./app
COPY projectors ./projectors
COPY infra ./infra
COPY orders_cli ./orders_cli
RUN pip install --no-cache-dir --no-deps . && rm -rf build ./*.egg-info
USER nobody
EXPOSE 8000
CMD ["orders", "api", "--host", "0.0.0.0", "--port", "8000"]
