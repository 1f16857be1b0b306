# One image for every livedesk process; docker-compose.yml picks the command.
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services
RUN pip install --no-cache-dir . && useradd --create-home livedesk
USER livedesk
ENV LIVEDESK_LOG_FORMAT=json
ENTRYPOINT ["livedesk"]
