#!/usr/bin/env bash
# Refresh the browser assets that the app serves itself (no CDN at run time).
# They come from the npm registry and are committed under gridmap/web/static/vendor,
# so neither `make demo` nor `make test` needs the network for them.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=gridmap/web/static/vendor
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent leaflet@1.9.4 jquery@3.7.1 >/dev/null)
rm -rf "$dest"; mkdir -p "$dest/leaflet" "$dest/jquery"
tar -xzf "$tmp"/leaflet-1.9.4.tgz -C "$tmp" && cp -r "$tmp"/package/dist/leaflet.js "$tmp"/package/dist/leaflet.css "$tmp"/package/dist/images "$tmp"/package/LICENSE "$dest/leaflet/"
rm -rf "$tmp"/package
tar -xzf "$tmp"/jquery-3.7.1.tgz -C "$tmp" && cp "$tmp"/package/dist/jquery.min.js "$tmp"/package/LICENSE.txt "$dest/jquery/"
echo "vendored into $dest:"; find "$dest" -type f | sort
