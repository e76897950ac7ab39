# syntax=docker/dockerfile:1

# The portal's container image: one static binary on distroless, run as a
# non-root user. Build with
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t credential-portal .

# Build on the builder's own platform and cross-compile (no cgo), so
# `docker buildx build --platform linux/amd64,linux/arm64` needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src

# Modules first: this layer is reused until go.mod or go.sum changes.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/portal ./cmd/portal

# static-debian12 has CA certificates, tzdata and a "nonroot" user (65532),
# and no shell or package manager.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="credential-portal" \
      org.opencontainers.image.description="2i2c credential portal" \
      org.opencontainers.image.source="https://github.com/2i2c-org/credential-portal" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/portal /portal
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/portal"]
CMD ["serve"]
