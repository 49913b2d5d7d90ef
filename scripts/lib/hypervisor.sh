# Sourced by the scripts that boot a guest on either hypervisor (xen-conformance.sh, fuzz.sh).
#
#   pick_hypervisor TAG
#
# HV unset: Debian's Xen 4.17 (fetched by scripts/fetch-payloads.sh), hv_name=xen; else the
# image HV names, hv_name = its file name without extensions. HV_CMDLINE defaults to the Xen
# command line every comparison run uses, with HV_APPEND appended. Exits 2 if Xen cannot be
# fetched (the run could not be made, which is not a test failure of the guest).
pick_hypervisor() {
    if [ -z "${HV:-}" ]; then
        bash scripts/fetch-payloads.sh xen || { echo "[$1] cannot fetch Xen" >&2; exit 2; }
        HV=target/payloads/xen/boot/xen-4.17-arm64
        hv_name=xen
    else
        hv_name=$(basename "$HV")
        hv_name=${hv_name%%.*}
    fi
    HV_CMDLINE=${HV_CMDLINE:-dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all}
    if [ -n "${HV_APPEND:-}" ]; then
        HV_CMDLINE="$HV_CMDLINE $HV_APPEND"
    fi
}
