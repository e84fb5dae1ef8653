#!/usr/bin/env bash
# Make a base image for deploy/Dockerfile from the Debian archive this host already uses, for machines
# that cannot pull one from a registry: debootstrap --variant=minbase with python3 and its venv module,
# imported as a local image. The host's extra CA certificates (a TLS-inspecting proxy) are trusted in
# it too, so pip inside the build works where the host's does.
#   deploy/container/base.sh podman localhost/gazeflow-base:bookworm
set -euo pipefail
engine=${1:?usage: base.sh ENGINE TAG}
tag=${2:?usage: base.sh ENGINE TAG}
command -v debootstrap >/dev/null || { echo "base.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 2; }
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:?}")
# the archive the host's apt uses (deb822 or one-line sources), else Debian's own
archive=$(grep -hoE '^URIs: *http[^ ]+' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | sed 's/^URIs: *//' || true)
if [ -z "$archive" ]; then
  archive=$(grep -hoE '^deb +http[^ ]+' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}' || true)
fi
archive=${archive:-http://deb.debian.org/debian}
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$suite" "$rootfs" "$archive" >/dev/null
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null
fi
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | "$engine" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  - "$tag" >/dev/null
echo "base.sh: $tag from $archive $suite"
