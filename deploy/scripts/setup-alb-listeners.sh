#!/usr/bin/env bash
# Make the load balancer's two listeners what the service needs:
#   HTTP  :80  -> 301 redirect to HTTPS :443 (same host, path and query)
#   HTTPS :443 -> forward to the target group, with the ACM certificate
# Creates a missing listener and corrects one that differs.
set -euo pipefail
# shellcheck source=deploy/scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME [options]

Creates or updates the listeners of load balancer \$ALB_NAME ($ALB_NAME):
  HTTP  :80   redirect (301) to HTTPS :443, keeping host, path and query
  HTTPS :443  forward to target group \$TARGET_GROUP_NAME ($TARGET_GROUP_NAME),
              certificate from ACM, TLS policy \$SSL_POLICY ($SSL_POLICY)
Run it again after replacing the certificate; it changes only what differs.

Options:
  --certificate-arn ARN  certificate for HTTPS (default: the ISSUED ACM
                         certificate of \$DOMAIN_NAME)
$COMMON_OPTIONS_HELP
EOF
}

CERTIFICATE_ARN=${CERTIFICATE_ARN:-}
while [[ $# -gt 0 ]]; do
  if parse_common_option "$@"; then
    shift "$COMMON_SHIFT"
    continue
  fi
  case $1 in
    --certificate-arn) CERTIFICATE_ARN=$(opt_value "$@"); shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

require_cmd aws

step "Load balancer $ALB_NAME"
alb_arn=$(load_balancer_arn)
tg_arn=$(target_group_arn)
if is_dry_run; then
  alb_arn=${alb_arn:-<load-balancer-arn>}
  tg_arn=${tg_arn:-<target-group-arn>}
fi
[[ -n $alb_arn ]] || die "load balancer $ALB_NAME not found (run setup-complete-infrastructure.sh)"
[[ -n $tg_arn ]] || die "target group $TARGET_GROUP_NAME not found (run setup-complete-infrastructure.sh)"

if [[ -z $CERTIFICATE_ARN ]]; then
  require_value DOMAIN_NAME "or pass --certificate-arn"
  CERTIFICATE_ARN=$(aws_value '<certificate-arn>' acm list-certificates --certificate-statuses ISSUED \
    --query "CertificateSummaryList[?DomainName=='${DOMAIN_NAME%.}'].CertificateArn | [0]")
  [[ -n $CERTIFICATE_ARN ]] || die "no ISSUED certificate for $DOMAIN_NAME (run validate-certificate.sh)"
fi
log "certificate $CERTIFICATE_ARN"

redirect_action='[{"Type":"redirect","RedirectConfig":{"Protocol":"HTTPS","Port":"443","Host":"#{host}","Path":"/#{path}","Query":"#{query}","StatusCode":"HTTP_301"}}]'
forward_action="[{\"Type\":\"forward\",\"TargetGroupArn\":\"$tg_arn\"}]"

listener_on_port() {
  aws_value '' elbv2 describe-listeners --load-balancer-arn "$alb_arn" \
    --query "Listeners[?Port==\`$1\`].ListenerArn | [0]"
}

step "HTTP :80 -> HTTPS redirect"
http_arn=$(listener_on_port 80)
if [[ -n $http_arn ]]; then
  aws_run elbv2 modify-listener --listener-arn "$http_arn" --protocol HTTP --port 80 \
    --default-actions "$redirect_action" --output text --query 'Listeners[0].ListenerArn' >/dev/null
  log "updated $http_arn"
else
  http_arn=$(aws_value '<http-listener-arn>' elbv2 create-listener --load-balancer-arn "$alb_arn" \
    --protocol HTTP --port 80 --default-actions "$redirect_action" \
    --tags "Key=app,Value=$APP_NAME" --query 'Listeners[0].ListenerArn')
  log "created $http_arn"
fi

step "HTTPS :443 -> $TARGET_GROUP_NAME"
https_arn=$(listener_on_port 443)
if [[ -n $https_arn ]]; then
  aws_run elbv2 modify-listener --listener-arn "$https_arn" --protocol HTTPS --port 443 \
    --ssl-policy "$SSL_POLICY" --certificates "CertificateArn=$CERTIFICATE_ARN" \
    --default-actions "$forward_action" --output text --query 'Listeners[0].ListenerArn' >/dev/null
  log "updated $https_arn"
else
  https_arn=$(aws_value '<https-listener-arn>' elbv2 create-listener --load-balancer-arn "$alb_arn" \
    --protocol HTTPS --port 443 --ssl-policy "$SSL_POLICY" \
    --certificates "CertificateArn=$CERTIFICATE_ARN" --default-actions "$forward_action" \
    --tags "Key=app,Value=$APP_NAME" --query 'Listeners[0].ListenerArn')
  log "created $https_arn"
fi

printf 'http_listener=%s\nhttps_listener=%s\n' "$http_arn" "$https_arn"
