#!/usr/bin/env bash
# Request (or find) the ACM certificate of the service's domain, publish its
# DNS validation records in Route 53 and wait until ACM has issued it.
# Prints the certificate ARN on the last line of stdout.
set -euo pipefail
# shellcheck source=deploy/scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME [options]

Finds an ACM certificate for DOMAIN_NAME that is issued or pending validation,
or requests one with DNS validation; then UPSERTs its validation CNAME records
into the domain's Route 53 public hosted zone and waits for status ISSUED.
Safe to run again: nothing is requested twice and the records are upserted.
Prints the certificate ARN on the last line of stdout.

Options:
  --domain NAME          domain of the certificate (default: \$DOMAIN_NAME)
  --hosted-zone-id ID    Route 53 zone for the records (default: \$HOSTED_ZONE_ID,
                         else the closest public zone above the domain)
  --timeout SECONDS      how long to wait for ISSUED (default: \$CERTIFICATE_TIMEOUT=$CERTIFICATE_TIMEOUT)
  --no-wait              publish the records and return without waiting
$COMMON_OPTIONS_HELP
EOF
}

WAIT=1
while [[ $# -gt 0 ]]; do
  if parse_common_option "$@"; then
    shift "$COMMON_SHIFT"
    continue
  fi
  case $1 in
    --domain) DOMAIN_NAME=$(opt_value "$@"); shift 2 ;;
    --hosted-zone-id) HOSTED_ZONE_ID=$(opt_value "$@"); shift 2 ;;
    --timeout) CERTIFICATE_TIMEOUT=$(opt_value "$@"); shift 2 ;;
    --no-wait) WAIT=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

require_cmd aws
require_value DOMAIN_NAME "the service's host name, e.g. chat.example.com"
DOMAIN_NAME=${DOMAIN_NAME%.}

step "Certificate for $DOMAIN_NAME"
cert_arn=$(aws_value '' acm list-certificates --certificate-statuses ISSUED PENDING_VALIDATION \
  --query "CertificateSummaryList[?DomainName=='$DOMAIN_NAME'].CertificateArn | [0]")
if [[ -n $cert_arn ]]; then
  log "found $cert_arn"
else
  # The token makes a retried request return the same certificate (for an hour).
  token=$(printf '%s' "$APP_NAME-$DOMAIN_NAME" | cksum | cut -d' ' -f1)
  cert_arn=$(aws_value '<certificate-arn>' acm request-certificate \
    --domain-name "$DOMAIN_NAME" \
    --validation-method DNS \
    --idempotency-token "bosar$token" \
    --tags "Key=app,Value=$APP_NAME" \
    --query CertificateArn)
  [[ -n $cert_arn ]] || die "ACM returned no certificate ARN"
  log "requested $cert_arn"
fi

if [[ -z $HOSTED_ZONE_ID ]]; then
  HOSTED_ZONE_ID=$(find_hosted_zone "$DOMAIN_NAME")
  if is_dry_run && [[ -z $HOSTED_ZONE_ID ]]; then
    HOSTED_ZONE_ID='<hosted-zone-id>'
  fi
  [[ -n $HOSTED_ZONE_ID ]] || die "no public Route 53 hosted zone found for $DOMAIN_NAME (set HOSTED_ZONE_ID)"
fi
HOSTED_ZONE_ID=${HOSTED_ZONE_ID#/hostedzone/}
log "hosted zone $HOSTED_ZONE_ID"

# ACM fills in the validation records a few seconds after the request.
RECORDS=""
validation_records_ready() {
  RECORDS=$(aws_value '' acm describe-certificate --certificate-arn "$cert_arn" \
    --query 'Certificate.DomainValidationOptions[?ResourceRecord].[ResourceRecord.Name, ResourceRecord.Type, ResourceRecord.Value]')
  [[ -n $RECORDS ]]
}

step "DNS validation records"
if is_dry_run; then
  RECORDS="<validation-name> CNAME <validation-value>"
  aws_run acm describe-certificate --certificate-arn "$cert_arn" --output text \
    --query 'Certificate.DomainValidationOptions[?ResourceRecord].[ResourceRecord.Name, ResourceRecord.Type, ResourceRecord.Value]'
else
  wait_for "validation records of $cert_arn" 300 validation_records_ready || die "ACM published no validation records"
fi

changes=""
declare -A seen=()
while read -r rr_name rr_type rr_value; do
  [[ -n $rr_name ]] || continue
  [[ -z ${seen[$rr_name]:-} ]] || continue
  seen[$rr_name]=1
  log "UPSERT $rr_name $rr_type $rr_value"
  changes+="${changes:+,}{\"Action\":\"UPSERT\",\"ResourceRecordSet\":{\"Name\":\"$rr_name\",\"Type\":\"$rr_type\",\"TTL\":300,\"ResourceRecords\":[{\"Value\":\"$rr_value\"}]}}"
done <<<"$RECORDS"
batch=$(private_tmp)
printf '{"Comment":"ACM validation for %s","Changes":[%s]}\n' "$DOMAIN_NAME" "$changes" >"$batch"
aws_run route53 change-resource-record-sets --hosted-zone-id "$HOSTED_ZONE_ID" \
  --change-batch "file://$batch" --output text --query 'ChangeInfo.Id' >/dev/null

if [[ $WAIT == 1 ]]; then
  step "Waiting for ACM to issue the certificate"
  certificate_issued() {
    local status
    status=$(aws_value '' acm describe-certificate --certificate-arn "$cert_arn" --query Certificate.Status)
    WAIT_STATE=$status
    case $status in
      ISSUED) return 0 ;;
      FAILED | VALIDATION_TIMED_OUT | REVOKED | EXPIRED | INACTIVE) return 2 ;;
      *) return 1 ;;
    esac
  }
  wait_for "certificate $cert_arn" "$CERTIFICATE_TIMEOUT" certificate_issued ||
    die "certificate not issued; check that $DOMAIN_NAME's zone $HOSTED_ZONE_ID is the one the domain is delegated to"
else
  log "not waiting (--no-wait); ACM issues the certificate once the records resolve"
fi

printf '%s\n' "$cert_arn"
