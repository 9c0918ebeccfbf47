#!/usr/bin/env bash
# Release a version of BoSar Chat to ECS Fargate:
#   1. build the image for linux/amd64 and push it to ECR (unless already there)
#   2. register a task definition revision from deploy/task-definition.json
#   3. run `bosar-chat migrate` as a one-off task and require exit code 0
#   4. point the service at the new revision (create the service on the first release)
#   5. wait until the service is stable and its targets are healthy
set -euo pipefail
# shellcheck source=deploy/scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME [options]

Builds, migrates and rolls out one image tag (default: the current git commit).
Running it again for the same tag rebuilds nothing (ECR tags are immutable),
re-runs the migrations (a no-op when none are pending) and rolls out a fresh
revision of the same image.

Options:
  --image-tag TAG      tag to deploy (default: short commit id of HEAD; the
                       working tree must be clean)
  --skip-build         do not build or push: TAG must already be in ECR (pushed
                       by CI, or an earlier release). Same as SKIP_IMAGE_BUILD=1
  --skip-migrations    do not run the one-off migration task
  --rollback-to REV    put the service back on task definition revision REV
                       (a number or a full ARN): no build, no migrations
  --no-wait            return once the service is updated
  --no-target-wait     wait for the ECS deployment only, not for the load
                       balancer's health checks
  --timeout SECONDS    per wait (default: \$DEPLOY_TIMEOUT=$DEPLOY_TIMEOUT)
$COMMON_OPTIONS_HELP
EOF
}

IMAGE_TAG=${IMAGE_TAG:-}
SKIP_IMAGE_BUILD=${SKIP_IMAGE_BUILD:-0}
SKIP_MIGRATIONS=${SKIP_MIGRATIONS:-0}
WAIT_FOR_TARGETS=${WAIT_FOR_TARGETS:-1}
ROLLBACK_TO=""
WAIT=1
while [[ $# -gt 0 ]]; do
  if parse_common_option "$@"; then
    shift "$COMMON_SHIFT"
    continue
  fi
  case $1 in
    --image-tag) IMAGE_TAG=$(opt_value "$@"); shift 2 ;;
    --skip-build) SKIP_IMAGE_BUILD=1; shift ;;
    --skip-migrations) SKIP_MIGRATIONS=1; shift ;;
    --rollback-to) ROLLBACK_TO=$(opt_value "$@"); shift 2 ;;
    --no-wait) WAIT=0; shift ;;
    --no-target-wait) WAIT_FOR_TARGETS=0; shift ;;
    --timeout) DEPLOY_TIMEOUT=$(opt_value "$@"); shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

require_cmd aws

# --- Steps ---------------------------------------------------------------------------

resolve_image_tag() {
  if [[ -n $IMAGE_TAG ]]; then
    return 0
  fi
  if IMAGE_TAG=$(git -C "$REPO_ROOT" rev-parse --short=12 HEAD 2>/dev/null); then
    if [[ -n $(git -C "$REPO_ROOT" status --porcelain 2>/dev/null) ]]; then
      is_dry_run || die "the working tree has uncommitted changes; commit them or pass --image-tag"
      warn "uncommitted changes: a real run would refuse to build $IMAGE_TAG from them"
    fi
  elif is_dry_run; then
    IMAGE_TAG='<git-commit>'
  else
    die "no git commit to name the image after; pass --image-tag"
  fi
}

image_in_ecr() {
  local digest
  digest=$(aws_lookup 'ImageNotFoundException' ecr describe-images --repository-name "$ECR_REPOSITORY" \
    --image-ids "imageTag=$IMAGE_TAG" --query 'imageDetails[0].imageDigest')
  [[ -n $digest ]]
}

run_docker() {
  if is_dry_run; then
    print_dry_run docker "$@"
    return 0
  fi
  docker "$@"
}

build_and_push() {
  step "Image $IMAGE_URI"
  if [[ $SKIP_IMAGE_BUILD == 1 ]]; then
    log "build and push skipped (--skip-build): the tag must already be in ECR"
    if ! is_dry_run && ! image_in_ecr; then
      die "image $IMAGE_URI is not in ECR; build it (drop --skip-build) or pick a pushed tag"
    fi
    return 0
  fi
  if ! is_dry_run && image_in_ecr; then
    log "already in ECR (tags are immutable): not rebuilding"
    return 0
  fi
  is_dry_run || require_cmd docker
  local registry=${IMAGE_URI%%/*}
  if is_dry_run; then
    aws_run ecr get-login-password
    print_dry_run docker login --username AWS --password-stdin "$registry"
  else
    aws_run ecr get-login-password | docker login --username AWS --password-stdin "$registry"
  fi
  run_docker buildx build --platform linux/amd64 --provenance=false \
    --tag "$IMAGE_URI" --push "$REPO_ROOT"
}

# Subnets and security group for tasks: the service's own when it exists,
# else the private subnets and service group that setup created.
NETWORK_JSON=""
resolve_network() {
  local subnets="" groups="" vpc
  if [[ $SERVICE_EXISTS == 1 ]]; then
    subnets=$(aws_value '' ecs describe-services --cluster "$CLUSTER_NAME" --services "$SERVICE_NAME" \
      --query 'services[0].networkConfiguration.awsvpcConfiguration.subnets')
    groups=$(aws_value '' ecs describe-services --cluster "$CLUSTER_NAME" --services "$SERVICE_NAME" \
      --query 'services[0].networkConfiguration.awsvpcConfiguration.securityGroups')
  fi
  if [[ -z $subnets ]]; then
    if [[ -n $PRIVATE_SUBNET_IDS ]]; then
      subnets=$(split_commas "$PRIVATE_SUBNET_IDS")
    else
      subnets=$(aws_value '' ec2 describe-subnets \
        --filters "Name=tag:Name,Values=$APP_NAME-private-a,$APP_NAME-private-b" \
        --query 'Subnets[].SubnetId')
    fi
  fi
  if [[ -z $groups ]]; then
    vpc=$VPC_ID
    if [[ -z $vpc ]]; then
      vpc=$(aws_value '' ec2 describe-vpcs --filters "Name=tag:Name,Values=$APP_NAME-vpc" --query 'Vpcs[0].VpcId')
    fi
    groups=$(aws_value '' ec2 describe-security-groups \
      --filters "Name=group-name,Values=$APP_NAME-service" "Name=vpc-id,Values=${vpc:-none}" \
      --query 'SecurityGroups[0].GroupId')
  fi
  if is_dry_run; then
    subnets=${subnets:-<private-subnet-a> <private-subnet-b>}
    groups=${groups:-<service-security-group>}
  fi
  [[ -n $subnets ]] || die "no private subnets found (run setup-complete-infrastructure.sh or set PRIVATE_SUBNET_IDS)"
  [[ -n $groups ]] || die "security group $APP_NAME-service not found (run setup-complete-infrastructure.sh)"
  local s list="" g glist=""
  for s in $subnets; do list+="${list:+,}\"$s\""; done
  for g in $groups; do glist+="${glist:+,}\"$g\""; done
  NETWORK_JSON="{\"awsvpcConfiguration\":{\"subnets\":[$list],\"securityGroups\":[$glist],\"assignPublicIp\":\"DISABLED\"}}"
}

register_task_definition() {
  step "Task definition $TASK_FAMILY"
  local EXECUTION_ROLE_ARN TASK_ROLE_ARN DATABASE_URL_SECRET_ARN JWT_SECRET_ARN REDIS_URL REDIS_SHARDED file
  EXECUTION_ROLE_ARN=$(role_arn "$EXECUTION_ROLE_NAME")
  TASK_ROLE_ARN=$(role_arn "$TASK_ROLE_NAME")
  DATABASE_URL_SECRET_ARN=$(secret_arn "$DATABASE_URL_SECRET_NAME")
  JWT_SECRET_ARN=$(secret_arn "$JWT_SECRET_NAME")
  if is_dry_run; then
    EXECUTION_ROLE_ARN=${EXECUTION_ROLE_ARN:-<execution-role-arn>}
    TASK_ROLE_ARN=${TASK_ROLE_ARN:-<task-role-arn>}
    DATABASE_URL_SECRET_ARN=${DATABASE_URL_SECRET_ARN:-<database-url-secret-arn>}
    JWT_SECRET_ARN=${JWT_SECRET_ARN:-<jwt-secret-arn>}
  fi
  [[ -n $EXECUTION_ROLE_ARN ]] || die "role $EXECUTION_ROLE_NAME not found (run setup-complete-infrastructure.sh)"
  [[ -n $TASK_ROLE_ARN ]] || die "role $TASK_ROLE_NAME not found (run setup-complete-infrastructure.sh)"
  [[ -n $DATABASE_URL_SECRET_ARN ]] || die "secret $DATABASE_URL_SECRET_NAME not found"
  [[ -n $JWT_SECRET_ARN ]] || die "secret $JWT_SECRET_NAME not found"
  resolve_redis
  # Both are read by render_template through their names.
  # shellcheck disable=SC2034
  REDIS_URL=$REDIS_URL_VALUE
  # shellcheck disable=SC2034
  REDIS_SHARDED=$REDIS_SHARDED_VALUE
  file=$(private_tmp)
  render_template "$DEPLOY_DIR/task-definition.json" IMAGE_URI EXECUTION_ROLE_ARN TASK_ROLE_ARN \
    DATABASE_URL_SECRET_ARN JWT_SECRET_ARN REDIS_URL REDIS_SHARDED AWS_REGION >"$file"
  NEW_TASK_DEFINITION=$(aws_value "arn:aws:ecs:$AWS_REGION:<account-id>:task-definition/$TASK_FAMILY:<next>" \
    ecs register-task-definition --cli-input-json "file://$file" \
    --tags "key=app,value=$APP_NAME" "key=image-tag,value=$IMAGE_TAG" \
    --query 'taskDefinition.taskDefinitionArn')
  [[ -n $NEW_TASK_DEFINITION ]] || die "register-task-definition returned no ARN"
  log "registered $NEW_TASK_DEFINITION"
}

MIGRATION_TASK=""
migration_finished() {
  local row status code reason
  row=$(aws_value '' ecs describe-tasks --cluster "$CLUSTER_NAME" --tasks "$MIGRATION_TASK" \
    --query "tasks[0].[lastStatus, containers[?name=='$CONTAINER_NAME'].exitCode | [0], stoppedReason]")
  read -r status code reason <<<"$row"
  WAIT_STATE="task $status"
  [[ $status == STOPPED ]] || return 1
  WAIT_STATE+=", exit code $code${reason:+, $reason}"
  [[ $code == 0 ]] && return 0
  return 2
}

run_migrations() {
  step "Migrations (one-off task: bosar-chat migrate)"
  if [[ $SKIP_MIGRATIONS == 1 ]]; then
    log "skipped (--skip-migrations)"
    return 0
  fi
  MIGRATION_TASK=$(aws_value '<migration-task-arn>' ecs run-task --cluster "$CLUSTER_NAME" \
    --task-definition "$NEW_TASK_DEFINITION" --launch-type FARGATE --platform-version LATEST \
    --count 1 --started-by deploy-migrate \
    --network-configuration "$NETWORK_JSON" \
    --overrides "{\"containerOverrides\":[{\"name\":\"$CONTAINER_NAME\",\"command\":[\"migrate\"]}]}" \
    --query 'tasks[0].taskArn')
  [[ -n $MIGRATION_TASK ]] || die "run-task started no migration task (see the failures in its answer)"
  log "started $MIGRATION_TASK"
  if ! wait_for "migration task" "$MIGRATION_TIMEOUT" migration_finished; then
    die "migrations did not finish with exit code 0; logs: $LOG_GROUP, stream ecs/$CONTAINER_NAME/${MIGRATION_TASK##*/}. The service was not changed."
  fi
}

update_service() {
  step "Service $SERVICE_NAME -> ${NEW_TASK_DEFINITION##*/}"
  if [[ $SERVICE_EXISTS == 1 ]]; then
    local desired args=()
    desired=$(aws_value '2' ecs describe-services --cluster "$CLUSTER_NAME" --services "$SERVICE_NAME" \
      --query 'services[0].desiredCount')
    if [[ $desired == 0 ]]; then
      args+=(--desired-count "$DESIRED_COUNT")
      log "service is scaled to 0: setting desired count $DESIRED_COUNT"
    fi
    aws_run ecs update-service --cluster "$CLUSTER_NAME" --service "$SERVICE_NAME" \
      --task-definition "$NEW_TASK_DEFINITION" "${args[@]}" \
      --output text --query 'service.serviceArn' >/dev/null
    log "updated"
  else
    local tg
    tg=$(target_group_arn)
    if is_dry_run; then tg=${tg:-<target-group-arn>}; fi
    [[ -n $tg ]] || die "target group $TARGET_GROUP_NAME not found (run setup-complete-infrastructure.sh)"
    aws_run ecs create-service --cluster "$CLUSTER_NAME" --service-name "$SERVICE_NAME" \
      --task-definition "$NEW_TASK_DEFINITION" --desired-count "$DESIRED_COUNT" \
      --launch-type FARGATE --platform-version LATEST \
      --network-configuration "$NETWORK_JSON" \
      --load-balancers "targetGroupArn=$tg,containerName=$CONTAINER_NAME,containerPort=$CONTAINER_PORT" \
      --health-check-grace-period-seconds "$HEALTH_CHECK_GRACE_SECONDS" \
      --deployment-configuration '{"maximumPercent":200,"minimumHealthyPercent":100,"deploymentCircuitBreaker":{"enable":true,"rollback":true}}' \
      --enable-ecs-managed-tags --propagate-tags SERVICE \
      --tags "key=app,value=$APP_NAME" \
      --output text --query 'service.serviceArn' >/dev/null
    log "created (first release)"
  fi
}

service_settled() {
  local row td running desired deployments rollout
  row=$(aws_value '' ecs describe-services --cluster "$CLUSTER_NAME" --services "$SERVICE_NAME" \
    --query "services[0].[taskDefinition, runningCount, desiredCount, length(deployments), deployments[?status=='PRIMARY'].rolloutState | [0]]")
  read -r td running desired deployments rollout <<<"$row"
  WAIT_STATE="running $running/$desired, $deployments deployment(s), rollout $rollout"
  if [[ $rollout == FAILED ]]; then
    return 2
  fi
  if [[ $td != "$NEW_TASK_DEFINITION" ]]; then
    WAIT_STATE+=", but the service is on ${td##*/} (rolled back by the circuit breaker?)"
    return 2
  fi
  [[ $deployments == 1 && $running == "$desired" ]]
}

targets_healthy() {
  local tg=$1 row healthy total desired
  # The backquotes are JMESPath literals, not shell.
  # shellcheck disable=SC2016
  row=$(aws_value '' elbv2 describe-target-health --target-group-arn "$tg" \
    --query 'length(TargetHealthDescriptions[?TargetHealth.State==`healthy`])')
  healthy=${row:-0}
  total=$(aws_value '0' elbv2 describe-target-health --target-group-arn "$tg" \
    --query 'length(TargetHealthDescriptions)')
  desired=$(aws_value '0' ecs describe-services --cluster "$CLUSTER_NAME" --services "$SERVICE_NAME" \
    --query 'services[0].desiredCount')
  WAIT_STATE="$healthy healthy of $total registered, $desired wanted"
  [[ $healthy -ge $desired && $healthy -eq $total ]]
}

wait_for_rollout() {
  if [[ $WAIT == 0 ]]; then
    log "not waiting (--no-wait)"
    return 0
  fi
  step "Waiting for the rollout"
  wait_for "service $SERVICE_NAME" "$DEPLOY_TIMEOUT" service_settled ||
    die "the service did not settle on ${NEW_TASK_DEFINITION##*/}; see 'aws ecs describe-services' events and $LOG_GROUP"
  if [[ $WAIT_FOR_TARGETS == 0 ]]; then
    log "target health not checked (--no-target-wait)"
    return 0
  fi
  local tg
  tg=$(target_group_arn)
  if is_dry_run; then tg=${tg:-<target-group-arn>}; fi
  [[ -n $tg ]] || die "target group $TARGET_GROUP_NAME not found"
  wait_for "healthy targets in $TARGET_GROUP_NAME" "$DEPLOY_TIMEOUT" targets_healthy "$tg" ||
    die "the load balancer does not see every task healthy on /api; see 'aws elbv2 describe-target-health'"
}

# --- Main ----------------------------------------------------------------------------------

resolve_account_id
SERVICE_EXISTS=0
if [[ $(service_status) == ACTIVE ]]; then
  SERVICE_EXISTS=1
fi

NEW_TASK_DEFINITION=""
if [[ -n $ROLLBACK_TO ]]; then
  if [[ $ROLLBACK_TO =~ ^[0-9]+$ ]]; then
    ROLLBACK_TO="$TASK_FAMILY:$ROLLBACK_TO"
  fi
  [[ $SERVICE_EXISTS == 1 ]] || is_dry_run || die "service $SERVICE_NAME does not exist; nothing to roll back"
  NEW_TASK_DEFINITION=$(aws_value "arn:aws:ecs:$AWS_REGION:<account-id>:task-definition/$ROLLBACK_TO" \
    ecs describe-task-definition --task-definition "$ROLLBACK_TO" --query 'taskDefinition.taskDefinitionArn')
  [[ -n $NEW_TASK_DEFINITION ]] || die "task definition $ROLLBACK_TO not found"
  log "rolling back to $NEW_TASK_DEFINITION (no build, no migrations)"
  SERVICE_EXISTS=1
  update_service
  wait_for_rollout
  printf 'task_definition=%s\n' "$NEW_TASK_DEFINITION"
  exit 0
fi

resolve_image_tag
REPOSITORY_URI=$(ecr_repository_uri)
if is_dry_run; then
  REPOSITORY_URI=${REPOSITORY_URI:-<account-id>.dkr.ecr.$AWS_REGION.amazonaws.com/$ECR_REPOSITORY}
fi
[[ -n $REPOSITORY_URI ]] || die "ECR repository $ECR_REPOSITORY not found (run setup-complete-infrastructure.sh)"
IMAGE_URI="$REPOSITORY_URI:$IMAGE_TAG"
export IMAGE_URI

build_and_push
resolve_network
register_task_definition
run_migrations
update_service
wait_for_rollout
printf 'task_definition=%s\n' "$NEW_TASK_DEFINITION"
