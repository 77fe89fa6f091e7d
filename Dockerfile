# The image for the in-cluster controller and webhook (charts/c8s-controller).
# c8s publishes no images; build and push your own:
#   docker build -t registry.example.com/c8s:0.1.0 .
#   helm install c8s charts/c8s-controller --set image.repository=registry.example.com/c8s
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p c8s-cli --bin c8s

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/c8s /usr/local/bin/c8s
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/c8s"]
