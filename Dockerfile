# apiwatch image: the same CLI as on a laptop (`apiwatch worker`, `apiwatch simulate`, ...).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY config ./config
COPY apiwatch ./apiwatch
RUN pip install --no-cache-dir -c constraints.txt . \
 && useradd --create-home apiwatch
USER apiwatch
ENV APIWATCH_APP__HTTP_HOST=0.0.0.0 \
    APIWATCH_APP__STATE_DIR=/home/apiwatch/state
EXPOSE 8099 8098
ENTRYPOINT ["apiwatch"]
CMD ["worker"]
