# Sourced by scripts/build.sh: builds the test guests (target/images/<guest>.img).
echo "[build] no test guest yet"
