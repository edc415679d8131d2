# portal: a static binary on distroless, run as a non-root user, data in
# /data. Build and run (public_url must be set: the portal refuses to listen
# beyond loopback without it):
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) -t portal .
#   docker run -d --name portal -p 8080:8080 -v portal-data:/data \
#     -e PORTAL_PUBLIC_URL=https://downloads.example.com portal
#
# scripts/deploy-test.sh builds the binary with the same command and checks
# it without a container engine.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# Static (no cgo, so no libc to match on distroless/static), no local
# paths in the binary, stamped for `portal version`.
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/portal ./cmd/portal \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/portal /usr/local/bin/portal
# The volume starts owned by the image's user (nonroot, 65532), so a named
# volume is writable without a chown.
COPY --from=build --chown=65532:65532 /out/data /data
ENV PORTAL_DATA_DIR=/data \
    PORTAL_LISTEN=:8080
VOLUME ["/data"]
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/portal"]
CMD ["serve"]
