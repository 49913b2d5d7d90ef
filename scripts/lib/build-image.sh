# Sourced by scripts/build.sh: builds the hypervisor image (target/images/granite.bin).
echo "[build] the EL2 image is not part of the tree yet"
