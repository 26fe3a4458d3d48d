FROM python:3.11-slim
WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY projectors ./projectors
COPY infra ./infra
RUN pip install --no-cache-dir .
USER nobody
EXPOSE 8000
CMD ["orders", "api", "--host", "0.0.0.0", "--port", "8000"]
