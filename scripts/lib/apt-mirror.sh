# Sourced by the scripts that add an apt source (install-deps.sh, fetch-payloads.sh):
#   debian_mirror   prints the URI of the machine's own Debian archive, as its apt sources
#                   name it (deb822 `URIs:` of /etc/apt/sources.list.d/debian.sources, or the
#                   first `deb` line of /etc/apt/sources.list), never a security archive.
debian_mirror() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' \
            /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\// && $i !~ /security/) { print $i; exit } }' \
            /etc/apt/sources.list)
    fi
    if [ -z "$uri" ]; then
        echo "apt-mirror: no Debian archive in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list" >&2
        return 1
    fi
    echo "$uri"
}
