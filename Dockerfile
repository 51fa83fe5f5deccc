# One image for every aTES service: build once, run each binary as its own container.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
        --bin ates-auth --bin ates-task-tracker --bin ates-accounting --bin ates-analytics --bin ates \
    && mkdir /out \
    && cp target/release/ates-auth target/release/ates-task-tracker target/release/ates-accounting \
          target/release/ates-analytics target/release/ates /out/

FROM debian:bookworm-slim AS run
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 ates
COPY --from=build /out/ /usr/local/bin/
USER ates
ENV RUST_LOG=info
EXPOSE 8080
