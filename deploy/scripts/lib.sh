# shellcheck shell=bash
# Variables set here are read by the scripts that source this file:
# shellcheck disable=SC2034
# Shared code of the deployment scripts: paths, settings, option parsing,
# logging, the AWS CLI wrapper (region, endpoint, dry run) and polling.
#
# Sourced, never run. The sourcing script has `set -euo pipefail` already;
# command substitutions inherit it too, so a failing call inside $(...) stops
# the script instead of yielding an empty value.

shopt -s inherit_errexit

DEPLOY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_ROOT=$(cd "$DEPLOY_DIR/.." && pwd)
SCRIPTS_DIR="$DEPLOY_DIR/scripts"
export DEPLOY_DIR REPO_ROOT SCRIPTS_DIR

# shellcheck source=deploy/config.env
. "$DEPLOY_DIR/config.env"

: "${DRY_RUN:=0}"
export AWS_REGION DRY_RUN

# Dry-run lines go to descriptor 3: the first script's original stdout, so they
# are shown even from inside $(...) substitutions and from scripts it runs.
# Logs go to stderr.
if [[ -z ${BOSAR_DEPLOY_FD3:-} ]] || ! { true >&3; } 2>/dev/null; then
  exec 3>&1
  export BOSAR_DEPLOY_FD3=1
fi

SCRIPT_NAME=$(basename "$0")

log() { printf '[%s] %s\n' "$SCRIPT_NAME" "$*" >&2; }
step() { printf '\n[%s] == %s\n' "$SCRIPT_NAME" "$*" >&2; }
warn() { printf '[%s] warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
  printf '[%s] error: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}

is_dry_run() { [[ $DRY_RUN == 1 ]]; }

# Options every script accepts. Call as: if parse_common_option "$@"; then shift "$COMMON_SHIFT"; ...
# Sets COMMON_SHIFT to the number of words consumed (0 = not a common option).
COMMON_SHIFT=0
parse_common_option() {
  COMMON_SHIFT=0
  case ${1:-} in
    --dry-run) DRY_RUN=1 COMMON_SHIFT=1 ;;
    --region)
      [[ $# -ge 2 ]] || die "--region needs a value"
      AWS_REGION=$2 COMMON_SHIFT=2
      ;;
    --region=*) AWS_REGION=${1#*=} COMMON_SHIFT=1 ;;
    --endpoint-url)
      [[ $# -ge 2 ]] || die "--endpoint-url needs a value"
      AWS_ENDPOINT_URL=$2 COMMON_SHIFT=2
      export AWS_ENDPOINT_URL
      ;;
    --endpoint-url=*)
      AWS_ENDPOINT_URL=${1#*=} COMMON_SHIFT=1
      export AWS_ENDPOINT_URL
      ;;
    *) return 1 ;;
  esac
  export AWS_REGION DRY_RUN
  return 0
}

COMMON_OPTIONS_HELP="Common options:
  --dry-run            print every AWS call (reads included) instead of making it
  --region REGION      AWS region (default: \$AWS_REGION, else \$AWS_DEFAULT_REGION, else us-east-1)
  --endpoint-url URL   send AWS calls to this endpoint (default: \$AWS_ENDPOINT_URL)
  -h, --help           show this help

Settings come from deploy/config.env; any of them can be overridden from the environment."

# Value of an option that takes an argument, e.g. `opt_value "$@"` in a case arm.
opt_value() {
  [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"
  printf '%s' "$2"
}

require_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' is required but not on PATH"
  done
}

require_value() {
  local name=$1 hint=${2:-}
  [[ -n ${!name:-} ]] || die "$name is not set${hint:+ ($hint)}"
}

# --- AWS CLI -------------------------------------------------------------------

# The command line of one AWS CLI call. The endpoint is passed explicitly:
# version 1 of the CLI does not read AWS_ENDPOINT_URL by itself.
AWS_CMD=()
aws_command_line() {
  AWS_CMD=(aws --region "$AWS_REGION")
  if [[ -n ${AWS_ENDPOINT_URL:-} ]]; then
    AWS_CMD+=(--endpoint-url "$AWS_ENDPOINT_URL")
  fi
  AWS_CMD+=("$@")
}

print_dry_run() {
  local quoted
  printf -v quoted '%q ' "$@"
  printf '[dry-run] %s\n' "${quoted% }" >&3
}

# Run one AWS CLI call. In a dry run, print it and succeed with no output.
aws_run() {
  aws_command_line "$@"
  if is_dry_run; then
    print_dry_run "${AWS_CMD[@]}"
    return 0
  fi
  "${AWS_CMD[@]}"
}

# Print one value of a call made with --output text; "None" becomes empty.
# In a dry run the call is printed and the placeholder $1 is the value.
aws_value() {
  local placeholder=$1 out
  shift
  if is_dry_run; then
    aws_run "$@" --output text
    printf '%s\n' "$placeholder"
    return 0
  fi
  out=$(aws_run "$@" --output text)
  [[ $out == None ]] && out=""
  printf '%s\n' "$out"
}

# Run a call whose failure is expected when the thing is absent (or already
# there): succeed silently when its error output matches the extended regular
# expression $1, fail with that output otherwise.
aws_tolerate() {
  local pattern=$1 err rc=0
  shift
  if is_dry_run; then
    aws_run "$@"
    return 0
  fi
  err=$(aws_run "$@" 2>&1 >/dev/null) || rc=$?
  if [[ $rc -ne 0 ]]; then
    if [[ $err =~ $pattern ]]; then
      return 0
    fi
    printf '%s\n' "$err" >&2
    return "$rc"
  fi
}

# Print the output of a lookup; print nothing when the error output matches
# $1 (a "not found" error). Other errors fail the script.
aws_lookup() {
  local pattern=$1 out err rc=0 errfile
  shift
  if is_dry_run; then
    aws_run "$@" --output text
    return 0
  fi
  errfile=$(mktemp)
  out=$(aws_run "$@" --output text 2>"$errfile") || rc=$?
  err=$(<"$errfile")
  rm -f "$errfile"
  if [[ $rc -ne 0 ]]; then
    if [[ $err =~ $pattern ]]; then
      return 0
    fi
    printf '%s\n' "$err" >&2
    return "$rc"
  fi
  [[ $out == None ]] && out=""
  printf '%s\n' "$out"
}

# Private temporary files for request bodies and secret values (never put on
# a command line, where other users could read them). All are removed on exit,
# also those made inside $(...) subshells.
BOSAR_TMP_DIR=$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/bosar-deploy.XXXXXX")
trap 'rm -rf "$BOSAR_TMP_DIR"' EXIT
private_tmp() {
  (umask 077 && mktemp "$BOSAR_TMP_DIR/tmp.XXXXXX")
}

# --- Accounts and resources ---------------------------------------------------------

# Inherited from a parent script when it has looked it up already.
AWS_ACCOUNT_ID=${AWS_ACCOUNT_ID:-}
resolve_account_id() {
  if [[ -z $AWS_ACCOUNT_ID ]]; then
    AWS_ACCOUNT_ID=$(aws_value '<account-id>' sts get-caller-identity --query Account)
    [[ -n $AWS_ACCOUNT_ID ]] || die "could not read the AWS account id (credentials?)"
  fi
  export AWS_ACCOUNT_ID
}

# URI of the ECR repository, empty when it does not exist.
ecr_repository_uri() {
  aws_lookup 'RepositoryNotFoundException' ecr describe-repositories \
    --repository-names "$ECR_REPOSITORY" --query 'repositories[0].repositoryUri'
}

role_arn() {
  aws_lookup 'NoSuchEntity' iam get-role --role-name "$1" --query 'Role.Arn'
}

secret_arn() {
  aws_lookup 'ResourceNotFoundException' secretsmanager describe-secret --secret-id "$1" --query 'ARN'
}

load_balancer_arn() {
  aws_lookup 'LoadBalancerNotFound' elbv2 describe-load-balancers --names "$ALB_NAME" \
    --query 'LoadBalancers[0].LoadBalancerArn'
}

target_group_arn() {
  aws_lookup 'TargetGroupNotFound' elbv2 describe-target-groups --names "$TARGET_GROUP_NAME" \
    --query 'TargetGroups[0].TargetGroupArn'
}

# Status of the ECS service ("ACTIVE", "DRAINING", "INACTIVE"), empty if none.
service_status() {
  aws_value '' ecs describe-services --cluster "$CLUSTER_NAME" --services "$SERVICE_NAME" \
    --query 'services[0].status'
}

# REDIS_URL and REDIS_SHARDED of the ElastiCache replication group.
REDIS_URL_VALUE=""
REDIS_SHARDED_VALUE=""
resolve_redis() {
  local row enabled cfg_host cfg_port host port
  row=$(aws_lookup 'ReplicationGroupNotFound' elasticache describe-replication-groups \
    --replication-group-id "$REDIS_GROUP_ID" \
    --query 'ReplicationGroups[0].[ClusterEnabled, ConfigurationEndpoint.Address, ConfigurationEndpoint.Port, NodeGroups[0].PrimaryEndpoint.Address, NodeGroups[0].PrimaryEndpoint.Port]')
  if is_dry_run; then
    REDIS_URL_VALUE="rediss://<redis-endpoint>:6379"
    REDIS_SHARDED_VALUE=$REDIS_CLUSTER_MODE
    return 0
  fi
  [[ -n $row ]] || die "Redis replication group $REDIS_GROUP_ID not found (run setup-complete-infrastructure.sh)"
  read -r enabled cfg_host cfg_port host port <<<"$row"
  if [[ $enabled == True ]]; then
    REDIS_SHARDED_VALUE=true
    host=$cfg_host port=$cfg_port
  else
    REDIS_SHARDED_VALUE=false
  fi
  [[ -n $host && $host != None ]] || die "Redis replication group $REDIS_GROUP_ID has no endpoint yet"
  [[ $port =~ ^[0-9]+$ ]] || port=6379
  REDIS_URL_VALUE="rediss://$host:$port"
}

# The closest public Route 53 hosted zone whose name ends the domain $1.
find_hosted_zone() {
  local name=${1%.} zone
  while [[ $name == *.* ]]; do
    zone=$(aws_value '' route53 list-hosted-zones-by-name --dns-name "$name." --max-items 1 \
      --query "HostedZones[?Name=='$name.' && Config.PrivateZone==\`false\`].Id | [0]")
    if [[ -n $zone ]]; then
      printf '%s\n' "${zone#/hostedzone/}"
      return 0
    fi
    name=${name#*.}
  done
  return 0
}

# --- Templates ------------------------------------------------------------------------

# Render a JSON template: replace ${NAME} for each NAME given with that
# variable's value; fail if a placeholder is left or a value could break JSON.
render_template() {
  local file=$1 content name value
  shift
  content=$(<"$file")
  for name in "$@"; do
    value=${!name-}
    [[ -n $value ]] || die "render $file: $name is empty"
    [[ $value != *'"'* && $value != *\\* ]] || die "render $file: $name contains a quote or backslash"
    content=${content//"\${$name}"/$value}
  done
  if [[ $content =~ \$\{[A-Z_]+\} ]]; then
    die "render $file: placeholder ${BASH_REMATCH[0]} has no value"
  fi
  printf '%s\n' "$content"
}

# --- Waiting -----------------------------------------------------------------------------

# wait_for DESCRIPTION TIMEOUT_SECONDS FUNCTION [ARGS...]
# Calls FUNCTION until it succeeds (0), fails for good (2) or time runs out.
# FUNCTION may set WAIT_STATE to say what it saw; it is logged at each poll.
WAIT_STATE=""
wait_for() {
  local what=$1 timeout=$2 rc deadline
  shift 2
  if is_dry_run; then
    log "dry run: would wait up to ${timeout}s for $what"
    return 0
  fi
  deadline=$((SECONDS + timeout))
  while true; do
    WAIT_STATE=""
    rc=0
    "$@" || rc=$?
    case $rc in
      0) log "$what: done${WAIT_STATE:+ ($WAIT_STATE)}"; return 0 ;;
      2) log "$what: failed${WAIT_STATE:+ ($WAIT_STATE)}"; return 1 ;;
    esac
    if ((SECONDS >= deadline)); then
      log "$what: timed out after ${timeout}s${WAIT_STATE:+ ($WAIT_STATE)}"
      return 1
    fi
    log "$what: waiting${WAIT_STATE:+ ($WAIT_STATE)}"
    sleep "$POLL_SECONDS"
  done
}

# Comma list -> space-separated words.
split_commas() { printf '%s\n' "${1//,/ }"; }
