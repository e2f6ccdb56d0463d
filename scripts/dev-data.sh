# Sourced by scripts/run.sh and scripts/admin.sh: where the development
# set-up keeps its PostgreSQL and Redis ($CHATP_DATA_DIR; default
# ~/.local/share/chatp-dev, or /var/lib/chatp-dev when run as root, since
# PostgreSQL runs as the postgres user and cannot enter /root).
# shellcheck shell=bash
if [ "$(id -u)" = 0 ]; then
    default_data=/var/lib/chatp-dev
else
    default_data=${XDG_DATA_HOME:-$HOME/.local/share}/chatp-dev
fi
data=${CHATP_DATA_DIR:-$default_data}
