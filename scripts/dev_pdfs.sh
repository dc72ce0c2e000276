#!/usr/bin/env bash
# Fetch a small set of real PDFs from Debian documentation packages for local development.
# Reproducible and kept out of git: writes into ${1:-.regionops/devdocs}.
set -euo pipefail
out="${1:-.regionops/devdocs}"
mkdir -p "$out/pkgs" "$out/pdfs"
cd "$out/pkgs"
for pkg in debian-faq libmpfr-doc gprolog-doc; do
  ls ${pkg}_*.deb >/dev/null 2>&1 || apt-get download "$pkg"
  dpkg -x ${pkg}_*.deb "extract-$pkg"
done
find . -name '*.pdf' -size -3M -exec cp {} ../pdfs/ \;
# some packages ship PDFs gzipped
find . -name '*.pdf.gz' -size -3M -exec sh -c 'gunzip -c "$1" > ../pdfs/$(basename "$1" .gz)' _ {} \;
ls -la ../pdfs
