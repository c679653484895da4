#!/usr/bin/env bash
# Makes a local certificate authority and certificates for a ResBM cluster (openssl):
#
#   tools/make_certs.sh DIR [NAME ...]
#
# DIR/ca.pem, DIR/ca.key: the CA (keep ca.key offline once the certificates exist);
# DIR/NAME.pem, DIR/NAME.key for each NAME (default: coordinator worker), each signed by
# the CA and valid for 825 days, for the DNS names NAME, localhost and $RESBM_CERT_DNS (space
# separated) and the addresses 127.0.0.1, ::1 and $RESBM_CERT_IPS. Services take them as
# --tls-cert DIR/NAME.pem --tls-key DIR/NAME.key --tls-ca DIR/ca.pem; every worker can share
# one certificate (peers check the CA, not the name of the worker). Existing files are kept.
set -euo pipefail
dir=${1:?usage: tools/make_certs.sh DIR [NAME ...]}
shift
names=("$@")
# Every certificate from this CA is a member of the cluster (workers accept any of them), so
# it certifies services only: users of the job API get bearer tokens, not certificates.
[ ${#names[@]} -gt 0 ] || names=(coordinator worker)
mkdir -p "$dir"
umask 077
if [ ! -f "$dir/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
    -subj "/CN=resbm-cluster-ca" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
fi
for name in "${names[@]}"; do
  [ -f "$dir/$name.pem" ] && continue
  san="DNS:$name,DNS:localhost,IP:127.0.0.1,IP:::1"
  for d in ${RESBM_CERT_DNS:-}; do san="$san,DNS:$d"; done
  for ip in ${RESBM_CERT_IPS:-}; do san="$san,IP:$ip"; done
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$name" \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 825 -out "$dir/$name.pem" \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$san") \
    2>/dev/null
  rm -f "$dir/$name.csr"
done
chmod 644 "$dir"/*.pem
echo "make_certs: CA and ${names[*]} in $dir"
