#!/usr/bin/env bash
# Install the Debian packages gridmap needs when they are missing.
# Usage: scripts/install_system.sh [postgis] [chromium] [wrk]
# Only acts when run as root; otherwise it says what to install and fails.
set -euo pipefail
need=()
for what in "$@"; do
  case "$what" in
    postgis)
      [ -f /usr/share/postgresql/15/extension/postgis.control ] || need+=(postgresql-15-postgis-3) ;;
    chromium)
      command -v chromium >/dev/null 2>&1 || need+=(chromium)
      command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
      # a CJK font, so Chinese labels render in headless screenshots
      [ -d /usr/share/fonts/truetype/wqy ] || need+=(fonts-wqy-microhei) ;;
    wrk)
      command -v wrk >/dev/null 2>&1 || need+=(wrk) ;;
    *) echo "install_system.sh: unknown component '$what' (choose postgis, chromium, wrk)" >&2; exit 2 ;;
  esac
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install_system.sh: missing Debian packages: ${need[*]}; run as root: apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
