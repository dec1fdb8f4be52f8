#!/usr/bin/env bash
# Refresh the browser assets that the app serves itself (no CDN at run time).
# They come from the npm registry and are committed under gridmap/web/static/vendor,
# so neither `make demo` nor `make test` needs the network for them.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=gridmap/web/static/vendor
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent leaflet@1.9.4 jquery@3.7.1 leaflet.vectorgrid@1.3.0 leaflet.markercluster@1.5.3 \
    @geoman-io/leaflet-geoman-free@2.20.2 >/dev/null)
unpack() { rm -rf "$tmp/package"; tar -xzf "$tmp/$1" -C "$tmp"; }
rm -rf "$dest"; mkdir -p "$dest/leaflet" "$dest/jquery" "$dest/vectorgrid" "$dest/markercluster" "$dest/geoman"
unpack leaflet-1.9.4.tgz
cp -r "$tmp"/package/dist/leaflet.js "$tmp"/package/dist/leaflet.css "$tmp"/package/dist/images "$tmp"/package/LICENSE "$dest/leaflet/"
unpack jquery-3.7.1.tgz
cp "$tmp"/package/dist/jquery.min.js "$tmp"/package/LICENSE.txt "$dest/jquery/"
# Leaflet.VectorGrid draws the Mapbox vector tiles; the bundled build includes its pbf decoder.
unpack leaflet.vectorgrid-1.3.0.tgz
cp "$tmp"/package/dist/Leaflet.VectorGrid.bundled.min.js "$dest/vectorgrid/"
cp "$tmp"/package/LICENSE* "$dest/vectorgrid/" 2>/dev/null || true
unpack leaflet.markercluster-1.5.3.tgz
cp "$tmp"/package/dist/leaflet.markercluster.js "$tmp"/package/dist/MarkerCluster.css \
   "$tmp"/package/dist/MarkerCluster.Default.css "$tmp"/package/MIT-LICENCE.txt "$dest/markercluster/"
# Leaflet-Geoman draws and edits grids on the map page (planners' edit tools).
unpack geoman-io-leaflet-geoman-free-2.20.2.tgz
cp "$tmp"/package/dist/leaflet-geoman.min.js "$tmp"/package/dist/leaflet-geoman.css "$tmp"/package/LICENSE "$dest/geoman/"
echo "vendored into $dest:"; find "$dest" -type f | sort
