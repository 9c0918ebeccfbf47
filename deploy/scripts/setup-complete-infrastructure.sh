#!/usr/bin/env bash
# Create (or bring up to date) everything BoSar Chat runs on, with direct AWS
# API calls, then make the first release. Every step looks before it creates,
# so the script can be run again at any time; settings that can change in place
# (attributes, policies, scaling limits, alarms) are re-applied on every run.
#
# The same architecture is described as CloudFormation in deploy/cloudformation;
# docs/deploy.md says when to use which.
set -euo pipefail
# shellcheck source=deploy/scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME [options]

In order: network (VPC, two public and two private subnets in two zones, NAT)
unless VPC_ID is given; security groups; ECR repository; log group; secrets;
PostgreSQL (RDS) and Redis (ElastiCache, TLS); IAM roles; ACM certificate
(validate-certificate.sh); load balancer, target group, listeners
(setup-alb-listeners.sh) and DNS alias; ECS cluster; the first release
(deploy-to-ecs.sh) when the service does not exist yet; auto scaling; alarms.

Options:
  --domain NAME          public host name (default: \$DOMAIN_NAME)
  --hosted-zone-id ID    its Route 53 public hosted zone (default: looked up)
  --image-tag TAG        image tag of the first release (see deploy-to-ecs.sh)
  --skip-build           first release: use a tag already in ECR, build nothing
  --no-deploy            stop before the first release (and before auto
                         scaling, which needs the service)
  --no-target-wait       first release: do not wait for load balancer health
$COMMON_OPTIONS_HELP
EOF
}

DEPLOY_ARGS=()
NO_DEPLOY=0
: "${IAM_PROPAGATION_SECONDS:=10}"
while [[ $# -gt 0 ]]; do
  if parse_common_option "$@"; then
    shift "$COMMON_SHIFT"
    continue
  fi
  case $1 in
    --domain) DOMAIN_NAME=$(opt_value "$@"); shift 2 ;;
    --hosted-zone-id) HOSTED_ZONE_ID=$(opt_value "$@"); shift 2 ;;
    --image-tag) DEPLOY_ARGS+=(--image-tag "$(opt_value "$@")"); shift 2 ;;
    --skip-build) DEPLOY_ARGS+=(--skip-build); shift ;;
    --no-target-wait) DEPLOY_ARGS+=(--no-target-wait); shift ;;
    --no-deploy) NO_DEPLOY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option: $1 (see --help)" ;;
  esac
done

require_cmd aws
require_value DOMAIN_NAME "the service's host name, e.g. chat.example.com"
DOMAIN_NAME=${DOMAIN_NAME%.}
export DOMAIN_NAME HOSTED_ZONE_ID

# "ResourceType=vpc,Tags=[{Key=Name,Value=...},{Key=app,Value=...}]"
tag_spec() {
  printf 'ResourceType=%s,Tags=[{Key=Name,Value=%s},{Key=app,Value=%s}]' "$1" "$2" "$APP_NAME"
}

# --- Network ------------------------------------------------------------------------------

AZS=()
ensure_vpc() {
  VPC_ID=$(aws_value '' ec2 describe-vpcs --filters "Name=tag:Name,Values=$APP_NAME-vpc" --query 'Vpcs[0].VpcId')
  if [[ -z $VPC_ID ]]; then
    VPC_ID=$(aws_value '<vpc-id>' ec2 create-vpc --cidr-block "$VPC_CIDR" \
      --tag-specifications "$(tag_spec vpc "$APP_NAME-vpc")" --query 'Vpc.VpcId')
    aws_run ec2 modify-vpc-attribute --vpc-id "$VPC_ID" --enable-dns-hostnames '{"Value":true}'
    log "created VPC $VPC_ID"
  else
    log "VPC $VPC_ID exists"
  fi
}

ensure_internet_gateway() {
  IGW_ID=$(aws_value '' ec2 describe-internet-gateways \
    --filters "Name=attachment.vpc-id,Values=$VPC_ID" --query 'InternetGateways[0].InternetGatewayId')
  if [[ -z $IGW_ID ]]; then
    IGW_ID=$(aws_value '<igw-id>' ec2 create-internet-gateway \
      --tag-specifications "$(tag_spec internet-gateway "$APP_NAME-igw")" \
      --query 'InternetGateway.InternetGatewayId')
    aws_run ec2 attach-internet-gateway --internet-gateway-id "$IGW_ID" --vpc-id "$VPC_ID"
    log "created and attached internet gateway $IGW_ID"
  fi
}

# ensure_subnet NAME CIDR AZ -> prints the subnet id (EXISTING_SUBNETS holds
# "name id" lines of the VPC's subnets, read once).
EXISTING_SUBNETS=""
ensure_subnet() {
  local name=$1 cidr=$2 az=$3 id="" n i
  while read -r n i; do
    if [[ $n == "$name" ]]; then id=$i; fi
  done <<<"$EXISTING_SUBNETS"
  if [[ -z $id ]]; then
    id=$(aws_value "<$name>" ec2 create-subnet --vpc-id "$VPC_ID" --cidr-block "$cidr" \
      --availability-zone "$az" --tag-specifications "$(tag_spec subnet "$name")" \
      --query 'Subnet.SubnetId')
    log "created subnet $name $id ($cidr, $az)"
  fi
  printf '%s\n' "$id"
}

# Route tables of the VPC, read once: "name id", "id default-route-target"
# and "id associated-subnet" lines.
RT_NAMES=""
RT_DEFAULTS=""
RT_ASSOCIATIONS=""
load_route_tables() {
  local vpc_filter="Name=vpc-id,Values=$VPC_ID"
  RT_NAMES=$(aws_value '' ec2 describe-route-tables --filters "$vpc_filter" \
    --query "RouteTables[].[Tags[?Key=='Name'].Value | [0], RouteTableId]")
  RT_DEFAULTS=$(aws_value '' ec2 describe-route-tables --filters "$vpc_filter" \
    --query "RouteTables[].[RouteTableId, Routes[?DestinationCidrBlock=='0.0.0.0/0'].[GatewayId || NatGatewayId][] | [0]]")
  RT_ASSOCIATIONS=$(aws_value '' ec2 describe-route-tables --filters "$vpc_filter" \
    --query 'RouteTables[].Associations[?SubnetId].[RouteTableId, SubnetId][]')
}

# field_for KEY LINES [reverse]: the second word of the line whose first word is KEY
# (or, with "reverse", the first word of the line whose second word is KEY).
field_for() {
  local key=$1 lines=$2 mode=${3:-} a b
  while read -r a b; do
    if [[ $mode == reverse ]]; then
      if [[ $b == "$key" ]]; then printf '%s\n' "$a"; return 0; fi
    elif [[ $a == "$key" ]]; then
      printf '%s\n' "$b"
      return 0
    fi
  done <<<"$lines"
  return 0
}

# ensure_route_table NAME -> prints the route table id
ensure_route_table() {
  local name=$1 id
  id=$(field_for "$name" "$RT_NAMES")
  if [[ -z $id ]]; then
    id=$(aws_value "<rtb-$name>" ec2 create-route-table --vpc-id "$VPC_ID" \
      --tag-specifications "$(tag_spec route-table "$name")" --query 'RouteTable.RouteTableId')
    log "created route table $name $id"
  fi
  printf '%s\n' "$id"
}

# ensure_default_route TABLE --gateway-id X | --nat-gateway-id X
ensure_default_route() {
  local table=$1 target
  shift
  target=$(field_for "$table" "$RT_DEFAULTS")
  [[ $target == None ]] && target=""
  if [[ -z $target ]]; then
    aws_run ec2 create-route --route-table-id "$table" --destination-cidr-block 0.0.0.0/0 "$@" \
      --output text >/dev/null
    log "route 0.0.0.0/0 in $table -> $2"
  elif [[ $target != "$2" ]]; then
    aws_run ec2 replace-route --route-table-id "$table" --destination-cidr-block 0.0.0.0/0 "$@"
    log "route 0.0.0.0/0 in $table: $target -> $2"
  fi
}

ensure_association() {
  local table=$1 subnet=$2 current
  current=$(field_for "$subnet" "$RT_ASSOCIATIONS" reverse)
  if [[ -z $current ]]; then
    aws_run ec2 associate-route-table --route-table-id "$table" --subnet-id "$subnet" --output text >/dev/null
    log "associated $subnet with $table"
  elif [[ $current != "$table" ]]; then
    die "subnet $subnet is associated with route table $current, not $table"
  fi
}

# ensure_nat NAME PUBLIC_SUBNET -> prints the NAT gateway id
ensure_nat() {
  local name=$1 subnet=$2 id eip
  id=$(aws_value '' ec2 describe-nat-gateways \
    --filter "Name=tag:Name,Values=$name" "Name=vpc-id,Values=$VPC_ID" "Name=state,Values=pending,available" \
    --query 'NatGateways[0].NatGatewayId')
  if [[ -z $id ]]; then
    eip=$(aws_value '' ec2 describe-addresses --filters "Name=tag:Name,Values=$name" \
      --query 'Addresses[0].AllocationId')
    if [[ -z $eip ]]; then
      eip=$(aws_value "<eip-$name>" ec2 allocate-address --domain vpc \
        --tag-specifications "$(tag_spec elastic-ip "$name")" --query AllocationId)
    fi
    id=$(aws_value "<nat-$name>" ec2 create-nat-gateway --subnet-id "$subnet" --allocation-id "$eip" \
      --tag-specifications "$(tag_spec natgateway "$name")" --query 'NatGateway.NatGatewayId')
    log "created NAT gateway $name $id"
  fi
  printf '%s\n' "$id"
}

nat_available() {
  local state
  state=$(aws_value '' ec2 describe-nat-gateways --nat-gateway-ids "$1" --query 'NatGateways[0].State')
  WAIT_STATE=$state
  case $state in
    available) return 0 ;;
    failed | deleted | deleting) return 2 ;;
    *) return 1 ;;
  esac
}

setup_network() {
  step "Network"
  if [[ -n $VPC_ID ]]; then
    require_value PUBLIC_SUBNET_IDS "comma-separated, with VPC_ID"
    require_value PRIVATE_SUBNET_IDS "comma-separated, with VPC_ID"
    log "using the existing VPC $VPC_ID"
    read -r -a PUBLIC_SUBNETS <<<"$(split_commas "$PUBLIC_SUBNET_IDS")"
    read -r -a PRIVATE_SUBNETS <<<"$(split_commas "$PRIVATE_SUBNET_IDS")"
    return 0
  fi
  local public_cidrs private_cidrs
  read -r -a public_cidrs <<<"$(split_commas "$PUBLIC_SUBNET_CIDRS")"
  read -r -a private_cidrs <<<"$(split_commas "$PRIVATE_SUBNET_CIDRS")"
  read -r -a AZS <<<"$(aws_value '<az-a> <az-b>' ec2 describe-availability-zones \
    --filters Name=state,Values=available --query 'AvailabilityZones[0:2].ZoneName')"
  [[ ${#AZS[@]} -ge 2 ]] || die "region $AWS_REGION has fewer than two available zones"

  ensure_vpc
  ensure_internet_gateway
  EXISTING_SUBNETS=$(aws_value '' ec2 describe-subnets --filters "Name=vpc-id,Values=$VPC_ID" \
    --query "Subnets[].[Tags[?Key=='Name'].Value | [0], SubnetId]")
  PUBLIC_SUBNETS=(
    "$(ensure_subnet "$APP_NAME-public-a" "${public_cidrs[0]}" "${AZS[0]}")"
    "$(ensure_subnet "$APP_NAME-public-b" "${public_cidrs[1]}" "${AZS[1]}")"
  )
  PRIVATE_SUBNETS=(
    "$(ensure_subnet "$APP_NAME-private-a" "${private_cidrs[0]}" "${AZS[0]}")"
    "$(ensure_subnet "$APP_NAME-private-b" "${private_cidrs[1]}" "${AZS[1]}")"
  )

  local public_rt nat_a nat_b rt_a rt_b
  load_route_tables
  public_rt=$(ensure_route_table "$APP_NAME-public")
  ensure_default_route "$public_rt" --gateway-id "$IGW_ID"
  ensure_association "$public_rt" "${PUBLIC_SUBNETS[0]}"
  ensure_association "$public_rt" "${PUBLIC_SUBNETS[1]}"

  nat_a=$(ensure_nat "$APP_NAME-nat-a" "${PUBLIC_SUBNETS[0]}")
  nat_b=$nat_a
  if [[ $NAT_PER_AZ == true ]]; then
    nat_b=$(ensure_nat "$APP_NAME-nat-b" "${PUBLIC_SUBNETS[1]}")
  fi
  wait_for "NAT gateway $nat_a" 600 nat_available "$nat_a" || die "NAT gateway $nat_a is not available"
  if [[ $nat_b != "$nat_a" ]]; then
    wait_for "NAT gateway $nat_b" 600 nat_available "$nat_b" || die "NAT gateway $nat_b is not available"
  fi
  rt_a=$(ensure_route_table "$APP_NAME-private-a")
  rt_b=$(ensure_route_table "$APP_NAME-private-b")
  ensure_default_route "$rt_a" --nat-gateway-id "$nat_a"
  ensure_default_route "$rt_b" --nat-gateway-id "$nat_b"
  ensure_association "$rt_a" "${PRIVATE_SUBNETS[0]}"
  ensure_association "$rt_b" "${PRIVATE_SUBNETS[1]}"
  log "VPC $VPC_ID: public ${PUBLIC_SUBNETS[*]}, private ${PRIVATE_SUBNETS[*]}"
}

# --- Security groups ---------------------------------------------------------------------

# ensure_security_group NAME DESCRIPTION -> prints the group id
ensure_security_group() {
  local name=$1 description=$2 id
  id=$(aws_value '' ec2 describe-security-groups \
    --filters "Name=group-name,Values=$name" "Name=vpc-id,Values=$VPC_ID" --query 'SecurityGroups[0].GroupId')
  if [[ -z $id ]]; then
    id=$(aws_value "<sg-$name>" ec2 create-security-group --group-name "$name" \
      --description "$description" --vpc-id "$VPC_ID" \
      --tag-specifications "$(tag_spec security-group "$name")" --query GroupId)
    log "created security group $name $id"
    # New groups allow all outbound traffic; each group gets only what it needs.
    aws_tolerate 'InvalidPermission.NotFound' ec2 revoke-security-group-egress --group-id "$id" \
      --ip-permissions '[{"IpProtocol":"-1","IpRanges":[{"CidrIp":"0.0.0.0/0"}]}]'
  fi
  printf '%s\n' "$id"
}

# allow in|out GROUP PORT (cidr CIDR | group OTHER) DESCRIPTION
# Adds the TCP rule unless EXISTING_RULES (read once) has it already.
EXISTING_RULES=""
allow() {
  local direction=$1 group=$2 port=$3 kind=$4 peer=$5 description=$6 permission egress=False
  [[ $direction == out ]] && egress=True
  if grep -qxF "$group"$'\t'"$egress"$'\t'"tcp"$'\t'"$port"$'\t'"$peer" <<<"$EXISTING_RULES"; then
    return 0
  fi
  if [[ $kind == cidr ]]; then
    permission="[{\"IpProtocol\":\"tcp\",\"FromPort\":$port,\"ToPort\":$port,\"IpRanges\":[{\"CidrIp\":\"$peer\",\"Description\":\"$description\"}]}]"
  else
    permission="[{\"IpProtocol\":\"tcp\",\"FromPort\":$port,\"ToPort\":$port,\"UserIdGroupPairs\":[{\"GroupId\":\"$peer\",\"Description\":\"$description\"}]}]"
  fi
  if [[ $direction == in ]]; then
    aws_tolerate 'InvalidPermission.Duplicate' ec2 authorize-security-group-ingress \
      --group-id "$group" --ip-permissions "$permission"
  else
    aws_tolerate 'InvalidPermission.Duplicate' ec2 authorize-security-group-egress \
      --group-id "$group" --ip-permissions "$permission"
  fi
  log "allowed $direction $group tcp/$port $kind $peer"
}

setup_security_groups() {
  step "Security groups"
  ALB_SG=$(ensure_security_group "$APP_NAME-alb" "Load balancer - HTTP and HTTPS from anywhere")
  SERVICE_SG=$(ensure_security_group "$APP_NAME-service" "Fargate tasks - the container port from the load balancer only")
  DB_SG=$(ensure_security_group "$APP_NAME-database" "PostgreSQL - 5432 from the Fargate tasks only")
  REDIS_SG=$(ensure_security_group "$APP_NAME-redis" "Redis - 6379 from the Fargate tasks only")
  EXISTING_RULES=$(aws_value '' ec2 describe-security-group-rules \
    --filters "Name=group-id,Values=$ALB_SG,$SERVICE_SG,$DB_SG,$REDIS_SG" \
    --query 'SecurityGroupRules[].[GroupId, IsEgress, IpProtocol, FromPort, CidrIpv4 || ReferencedGroupInfo.GroupId]')

  allow in "$ALB_SG" 80 cidr 0.0.0.0/0 "HTTP (redirected to HTTPS)"
  allow in "$ALB_SG" 443 cidr 0.0.0.0/0 "HTTPS"
  allow out "$ALB_SG" "$CONTAINER_PORT" group "$SERVICE_SG" "Forward to the tasks"
  allow in "$SERVICE_SG" "$CONTAINER_PORT" group "$ALB_SG" "HTTP and WebSocket from the load balancer"
  allow out "$SERVICE_SG" 443 cidr 0.0.0.0/0 "HTTPS to AWS APIs and the embeddings provider"
  allow out "$SERVICE_SG" 5432 group "$DB_SG" "PostgreSQL"
  allow out "$SERVICE_SG" 6379 group "$REDIS_SG" "Redis"
  allow in "$DB_SG" 5432 group "$SERVICE_SG" "PostgreSQL from the tasks"
  allow in "$REDIS_SG" 6379 group "$SERVICE_SG" "Redis from the tasks"
  log "alb $ALB_SG, service $SERVICE_SG, database $DB_SG, redis $REDIS_SG"
}

# --- Registry and logs -------------------------------------------------------------------

setup_registry() {
  step "ECR repository $ECR_REPOSITORY"
  local uri
  uri=$(ecr_repository_uri)
  if [[ -z $uri ]]; then
    uri=$(aws_value "<account-id>.dkr.ecr.$AWS_REGION.amazonaws.com/$ECR_REPOSITORY" \
      ecr create-repository --repository-name "$ECR_REPOSITORY" \
      --image-tag-mutability IMMUTABLE \
      --image-scanning-configuration scanOnPush=true \
      --encryption-configuration encryptionType=AES256 \
      --tags "Key=app,Value=$APP_NAME" --query 'repository.repositoryUri')
    log "created $uri"
  else
    log "exists: $uri"
    aws_run ecr put-image-scanning-configuration --repository-name "$ECR_REPOSITORY" \
      --image-scanning-configuration scanOnPush=true --output text --query repositoryName >/dev/null
  fi
  aws_run ecr put-lifecycle-policy --repository-name "$ECR_REPOSITORY" \
    --lifecycle-policy-text "file://$DEPLOY_DIR/ecr-lifecycle-policy.json" \
    --output text --query repositoryName >/dev/null
}

setup_logs() {
  step "Log group $LOG_GROUP"
  local existing
  existing=$(aws_value '' logs describe-log-groups --log-group-name-prefix "$LOG_GROUP" \
    --query "logGroups[?logGroupName=='$LOG_GROUP'].logGroupName | [0]")
  if [[ -z $existing ]]; then
    aws_run logs create-log-group --log-group-name "$LOG_GROUP" --tags "app=$APP_NAME"
    log "created"
  fi
  aws_run logs put-retention-policy --log-group-name "$LOG_GROUP" --retention-in-days "$LOG_RETENTION_DAYS"
}

# --- Secrets, PostgreSQL, Redis ---------------------------------------------------------------

# A random URL-safe string from Secrets Manager, written to a private file
# whose path is printed (so the value never appears on a command line).
random_secret_file() {
  local length=$1 file
  file=$(private_tmp)
  if is_dry_run; then
    aws_run secretsmanager get-random-password --password-length "$length" --exclude-punctuation \
      --query RandomPassword --output text
    printf '%s' '<generated>' >"$file"
  else
    aws_run secretsmanager get-random-password --password-length "$length" --exclude-punctuation \
      --query RandomPassword --output text | tr -d '\n' >"$file"
  fi
  printf '%s\n' "$file"
}

create_secret_from_file() {
  local name=$1 description=$2 file=$3
  aws_run secretsmanager create-secret --name "$name" --description "$description" \
    --secret-string "file://$file" --tags "Key=app,Value=$APP_NAME" \
    --output text --query ARN >/dev/null
  log "created secret $name"
}

setup_jwt_secret() {
  step "Secret $JWT_SECRET_NAME"
  if [[ -n $(secret_arn "$JWT_SECRET_NAME") ]]; then
    log "exists (kept: rotating it signs every user out)"
    return 0
  fi
  create_secret_from_file "$JWT_SECRET_NAME" "JWT_SECRET of the service (HS256 key)" "$(random_secret_file 64)"
}

DB_PASSWORD_FILE=""
DB_PASSWORD_NEW=0
# Reads (or creates) the master user secret; leaves the password in
# DB_PASSWORD_FILE and sets DB_PASSWORD_NEW=1 when it was just generated.
load_db_master_secret() {
  local json password
  DB_PASSWORD_FILE=$(private_tmp)
  DB_PASSWORD_NEW=0
  if [[ -n $(secret_arn "$DATABASE_MASTER_SECRET_NAME") ]]; then
    if is_dry_run; then
      aws_run secretsmanager get-secret-value --secret-id "$DATABASE_MASTER_SECRET_NAME" --query SecretString --output text
      printf '%s' '<password>' >"$DB_PASSWORD_FILE"
      return 0
    fi
    json=$(aws_run secretsmanager get-secret-value --secret-id "$DATABASE_MASTER_SECRET_NAME" \
      --query SecretString --output text)
    [[ $json =~ \"password\":[[:space:]]*\"([A-Za-z0-9]+)\" ]] ||
      die "secret $DATABASE_MASTER_SECRET_NAME has no URL-safe \"password\" field"
    password=${BASH_REMATCH[1]}
    printf '%s' "$password" >"$DB_PASSWORD_FILE"
    return 0
  fi
  local generated body
  generated=$(random_secret_file 40)
  body=$(private_tmp)
  printf '{"username":"%s","password":"%s"}' "$DB_USERNAME" "$(<"$generated")" >"$body"
  cp "$generated" "$DB_PASSWORD_FILE"
  create_secret_from_file "$DATABASE_MASTER_SECRET_NAME" "RDS master user of $DB_INSTANCE_ID" "$body"
  DB_PASSWORD_NEW=1
}

setup_postgres_start() {
  step "PostgreSQL $DB_INSTANCE_ID"
  local major=${DB_ENGINE_VERSION%%.*} group="$APP_NAME-postgres${DB_ENGINE_VERSION%%.*}" existing
  existing=$(aws_lookup 'DBSubnetGroupNotFound' rds describe-db-subnet-groups \
    --db-subnet-group-name "$APP_NAME-db" --query 'DBSubnetGroups[0].DBSubnetGroupName')
  if [[ -z $existing ]]; then
    aws_run rds create-db-subnet-group --db-subnet-group-name "$APP_NAME-db" \
      --db-subnet-group-description "Private subnets of BoSar Chat" \
      --subnet-ids "${PRIVATE_SUBNETS[@]}" --tags "Key=app,Value=$APP_NAME" \
      --output text --query 'DBSubnetGroup.DBSubnetGroupName' >/dev/null
    log "created subnet group $APP_NAME-db"
  fi
  existing=$(aws_lookup 'DBParameterGroupNotFound' rds describe-db-parameter-groups \
    --db-parameter-group-name "$group" --query 'DBParameterGroups[0].DBParameterGroupName')
  if [[ -z $existing ]]; then
    aws_run rds create-db-parameter-group --db-parameter-group-name "$group" \
      --db-parameter-group-family "postgres$major" --description "BoSar Chat PostgreSQL settings" \
      --tags "Key=app,Value=$APP_NAME" --output text --query 'DBParameterGroup.DBParameterGroupName' >/dev/null
    log "created parameter group $group"
  fi
  aws_run rds modify-db-parameter-group --db-parameter-group-name "$group" --parameters \
    "ParameterName=rds.force_ssl,ParameterValue=1,ApplyMethod=pending-reboot" \
    "ParameterName=log_min_duration_statement,ParameterValue=500,ApplyMethod=immediate" \
    --output text --query DBParameterGroupName >/dev/null

  local status
  status=$(aws_lookup 'DBInstanceNotFound' rds describe-db-instances \
    --db-instance-identifier "$DB_INSTANCE_ID" --query 'DBInstances[0].DBInstanceStatus')
  load_db_master_secret
  if [[ -z $status ]]; then
    local multi_az=--no-multi-az
    [[ $DB_MULTI_AZ == true ]] && multi_az=--multi-az
    aws_run rds create-db-instance --db-instance-identifier "$DB_INSTANCE_ID" \
      --engine postgres --engine-version "$DB_ENGINE_VERSION" --auto-minor-version-upgrade \
      --db-instance-class "$DB_INSTANCE_CLASS" \
      --allocated-storage "$DB_ALLOCATED_STORAGE" --max-allocated-storage "$DB_MAX_ALLOCATED_STORAGE" \
      --storage-type gp3 --storage-encrypted "$multi_az" \
      --db-name "$DB_NAME" --master-username "$DB_USERNAME" \
      --master-user-password "file://$DB_PASSWORD_FILE" \
      --db-subnet-group-name "$APP_NAME-db" --db-parameter-group-name "$group" \
      --vpc-security-group-ids "$DB_SG" --no-publicly-accessible \
      --backup-retention-period "$DB_BACKUP_RETENTION_DAYS" \
      --preferred-backup-window 03:00-03:30 --preferred-maintenance-window sun:04:00-sun:04:30 \
      --copy-tags-to-snapshot --deletion-protection --enable-performance-insights \
      --enable-cloudwatch-logs-exports postgresql \
      --tags "Key=app,Value=$APP_NAME" \
      --output text --query 'DBInstance.DBInstanceIdentifier' >/dev/null
    log "creating $DB_INSTANCE_ID (Multi-AZ: $DB_MULTI_AZ); this takes a while"
  elif [[ $DB_PASSWORD_NEW == 1 ]]; then
    # The instance outlived its secret: give it the new password.
    aws_run rds modify-db-instance --db-instance-identifier "$DB_INSTANCE_ID" \
      --master-user-password "file://$DB_PASSWORD_FILE" --apply-immediately \
      --output text --query 'DBInstance.DBInstanceIdentifier' >/dev/null
    log "reset the master password of $DB_INSTANCE_ID to the new secret"
  else
    log "exists ($status)"
  fi
}

db_available() {
  local status
  status=$(aws_value '' rds describe-db-instances --db-instance-identifier "$DB_INSTANCE_ID" \
    --query 'DBInstances[0].DBInstanceStatus')
  WAIT_STATE=$status
  case $status in
    available) return 0 ;;
    failed | incompatible-* | storage-full) return 2 ;;
    *) return 1 ;;
  esac
}

setup_postgres_finish() {
  step "Secret $DATABASE_URL_SECRET_NAME"
  wait_for "PostgreSQL $DB_INSTANCE_ID" "$DATA_TIMEOUT" db_available || die "$DB_INSTANCE_ID is not available"
  local endpoint url_file current host port
  endpoint=$(aws_value '<db-host> 5432' rds describe-db-instances --db-instance-identifier "$DB_INSTANCE_ID" \
    --query 'DBInstances[0].[Endpoint.Address, Endpoint.Port]')
  read -r host port <<<"$endpoint"
  url_file=$(private_tmp)
  printf 'postgres://%s:%s@%s:%s/%s?sslmode=require' \
    "$DB_USERNAME" "$(<"$DB_PASSWORD_FILE")" "$host" "$port" "$DB_NAME" >"$url_file"
  if [[ -z $(secret_arn "$DATABASE_URL_SECRET_NAME") ]]; then
    create_secret_from_file "$DATABASE_URL_SECRET_NAME" "DATABASE_URL of the service" "$url_file"
    return 0
  fi
  if is_dry_run; then
    aws_run secretsmanager put-secret-value --secret-id "$DATABASE_URL_SECRET_NAME" --secret-string "file://$url_file"
    return 0
  fi
  current=$(aws_run secretsmanager get-secret-value --secret-id "$DATABASE_URL_SECRET_NAME" \
    --query SecretString --output text)
  if [[ $current != "$(<"$url_file")" ]]; then
    aws_run secretsmanager put-secret-value --secret-id "$DATABASE_URL_SECRET_NAME" \
      --secret-string "file://$url_file" --output text --query VersionId >/dev/null
    log "updated (endpoint or password changed; running tasks keep the old value until replaced)"
  else
    log "up to date"
  fi
}

setup_redis_start() {
  step "Redis $REDIS_GROUP_ID (TLS, cluster mode $REDIS_CLUSTER_MODE)"
  local existing
  existing=$(aws_lookup 'CacheSubnetGroupNotFound' elasticache describe-cache-subnet-groups \
    --cache-subnet-group-name "$APP_NAME-redis" --query 'CacheSubnetGroups[0].CacheSubnetGroupName')
  if [[ -z $existing ]]; then
    aws_run elasticache create-cache-subnet-group --cache-subnet-group-name "$APP_NAME-redis" \
      --cache-subnet-group-description "Private subnets of BoSar Chat" \
      --subnet-ids "${PRIVATE_SUBNETS[@]}" --output text \
      --query 'CacheSubnetGroup.CacheSubnetGroupName' >/dev/null
    log "created subnet group $APP_NAME-redis"
  fi
  existing=$(aws_lookup 'ReplicationGroupNotFound' elasticache describe-replication-groups \
    --replication-group-id "$REDIS_GROUP_ID" --query 'ReplicationGroups[0].Status')
  if [[ -n $existing ]]; then
    log "exists ($existing)"
    return 0
  fi
  local shape=()
  if [[ $REDIS_CLUSTER_MODE == true ]]; then
    shape=(--cluster-mode enabled --cache-parameter-group-name default.redis7.cluster.on
      --num-node-groups "$REDIS_SHARDS" --replicas-per-node-group "$REDIS_REPLICAS_PER_SHARD")
  else
    shape=(--cluster-mode disabled --cache-parameter-group-name default.redis7 --num-cache-clusters 2)
  fi
  aws_run elasticache create-replication-group --replication-group-id "$REDIS_GROUP_ID" \
    --replication-group-description "BoSar Chat pub/sub bus" \
    --engine redis --engine-version "$REDIS_ENGINE_VERSION" --cache-node-type "$REDIS_NODE_TYPE" \
    --port 6379 --cache-subnet-group-name "$APP_NAME-redis" --security-group-ids "$REDIS_SG" \
    --transit-encryption-enabled --at-rest-encryption-enabled \
    --automatic-failover-enabled --multi-az-enabled "${shape[@]}" \
    --snapshot-retention-limit 1 --tags "Key=app,Value=$APP_NAME" \
    --output text --query 'ReplicationGroup.ReplicationGroupId' >/dev/null
  log "creating $REDIS_GROUP_ID; this takes a while"
}

redis_available() {
  local status
  status=$(aws_value '' elasticache describe-replication-groups --replication-group-id "$REDIS_GROUP_ID" \
    --query 'ReplicationGroups[0].Status')
  WAIT_STATE=$status
  case $status in
    available) return 0 ;;
    create-failed) return 2 ;;
    *) return 1 ;;
  esac
}

setup_redis_finish() {
  wait_for "Redis $REDIS_GROUP_ID" "$DATA_TIMEOUT" redis_available || die "$REDIS_GROUP_ID is not available"
  resolve_redis
  log "REDIS_URL=$REDIS_URL_VALUE REDIS_SHARDED=$REDIS_SHARDED_VALUE"
}

# --- IAM --------------------------------------------------------------------------------------

ensure_role() {
  local name=$1 description=$2 trust arn
  arn=$(role_arn "$name")
  if [[ -n $arn ]]; then
    log "role $name exists"
    return 0
  fi
  trust=$(private_tmp)
  render_template "$DEPLOY_DIR/iam/ecs-tasks-trust-policy.json" AWS_ACCOUNT_ID >"$trust"
  aws_run iam create-role --role-name "$name" --description "$description" \
    --assume-role-policy-document "file://$trust" --tags "Key=app,Value=$APP_NAME" \
    --output text --query 'Role.Arn' >/dev/null
  log "created role $name"
  ROLE_CREATED=1
}

setup_iam() {
  step "IAM roles"
  ROLE_CREATED=0
  ensure_role "$EXECUTION_ROLE_NAME" "ECS agent for BoSar Chat: pull the image, write logs, read its two secrets"
  ensure_role "$TASK_ROLE_NAME" "BoSar Chat application (no AWS permissions needed)"
  local DATABASE_URL_SECRET_ARN JWT_SECRET_ARN policy
  DATABASE_URL_SECRET_ARN=$(secret_arn "$DATABASE_URL_SECRET_NAME")
  JWT_SECRET_ARN=$(secret_arn "$JWT_SECRET_NAME")
  if is_dry_run; then
    DATABASE_URL_SECRET_ARN=${DATABASE_URL_SECRET_ARN:-<database-url-secret-arn>}
    JWT_SECRET_ARN=${JWT_SECRET_ARN:-<jwt-secret-arn>}
  fi
  policy=$(private_tmp)
  render_template "$DEPLOY_DIR/iam/execution-role-policy.json" AWS_REGION AWS_ACCOUNT_ID \
    ECR_REPOSITORY LOG_GROUP DATABASE_URL_SECRET_ARN JWT_SECRET_ARN >"$policy"
  aws_run iam put-role-policy --role-name "$EXECUTION_ROLE_NAME" --policy-name pull-log-secrets \
    --policy-document "file://$policy"
  if [[ $ROLE_CREATED == 1 ]] && ! is_dry_run && [[ $IAM_PROPAGATION_SECONDS -gt 0 ]]; then
    log "waiting ${IAM_PROPAGATION_SECONDS}s for the new roles to propagate"
    sleep "$IAM_PROPAGATION_SECONDS"
  fi
}

# --- Certificate, load balancer, DNS ----------------------------------------------------------

resolve_hosted_zone() {
  if [[ -z $HOSTED_ZONE_ID ]]; then
    HOSTED_ZONE_ID=$(find_hosted_zone "$DOMAIN_NAME")
    if is_dry_run; then HOSTED_ZONE_ID=${HOSTED_ZONE_ID:-<hosted-zone-id>}; fi
    [[ -n $HOSTED_ZONE_ID ]] || die "no public Route 53 hosted zone found for $DOMAIN_NAME (set HOSTED_ZONE_ID)"
  fi
  HOSTED_ZONE_ID=${HOSTED_ZONE_ID#/hostedzone/}
  export HOSTED_ZONE_ID
}

setup_certificate() {
  step "Certificate"
  resolve_hosted_zone
  CERTIFICATE_ARN=$("$SCRIPTS_DIR/validate-certificate.sh" --domain "$DOMAIN_NAME" | tail -n 1)
  [[ -n $CERTIFICATE_ARN ]] || die "validate-certificate.sh returned no certificate"
  log "certificate $CERTIFICATE_ARN"
}

setup_load_balancer() {
  step "Load balancer $ALB_NAME"
  ALB_ARN=$(load_balancer_arn)
  if [[ -z $ALB_ARN ]]; then
    ALB_ARN=$(aws_value '<load-balancer-arn>' elbv2 create-load-balancer --name "$ALB_NAME" \
      --type application --scheme internet-facing --ip-address-type ipv4 \
      --subnets "${PUBLIC_SUBNETS[@]}" --security-groups "$ALB_SG" \
      --tags "Key=app,Value=$APP_NAME" --query 'LoadBalancers[0].LoadBalancerArn')
    log "created $ALB_ARN"
  fi
  aws_run elbv2 modify-load-balancer-attributes --load-balancer-arn "$ALB_ARN" --attributes \
    "Key=idle_timeout.timeout_seconds,Value=$ALB_IDLE_TIMEOUT" \
    "Key=routing.http.drop_invalid_header_fields.enabled,Value=true" \
    "Key=routing.http2.enabled,Value=true" --output text --query 'Attributes[0].Key' >/dev/null

  step "Target group $TARGET_GROUP_NAME"
  local health=(--health-check-protocol HTTP --health-check-path /api
    --health-check-interval-seconds 30 --health-check-timeout-seconds 5
    --healthy-threshold-count 2 --unhealthy-threshold-count 3 --matcher HttpCode=200)
  TG_ARN=$(target_group_arn)
  if [[ -z $TG_ARN ]]; then
    TG_ARN=$(aws_value '<target-group-arn>' elbv2 create-target-group --name "$TARGET_GROUP_NAME" \
      --protocol HTTP --port "$CONTAINER_PORT" --vpc-id "$VPC_ID" --target-type ip \
      --health-check-enabled "${health[@]}" --tags "Key=app,Value=$APP_NAME" \
      --query 'TargetGroups[0].TargetGroupArn')
    log "created $TG_ARN"
  else
    aws_run elbv2 modify-target-group --target-group-arn "$TG_ARN" "${health[@]}" \
      --output text --query 'TargetGroups[0].TargetGroupArn' >/dev/null
  fi
  aws_run elbv2 modify-target-group-attributes --target-group-arn "$TG_ARN" --attributes \
    Key=stickiness.enabled,Value=true \
    Key=stickiness.type,Value=lb_cookie \
    Key=stickiness.lb_cookie.duration_seconds,Value=86400 \
    Key=load_balancing.algorithm.type,Value=least_outstanding_requests \
    Key=deregistration_delay.timeout_seconds,Value=30 \
    --output text --query 'Attributes[0].Key' >/dev/null

  step "Listeners"
  "$SCRIPTS_DIR/setup-alb-listeners.sh" --certificate-arn "$CERTIFICATE_ARN" >/dev/null
}

setup_dns() {
  step "DNS $DOMAIN_NAME -> $ALB_NAME"
  resolve_hosted_zone
  local row dns zone batch
  row=$(aws_value '<alb-dns-name> <alb-zone-id>' elbv2 describe-load-balancers --load-balancer-arns "$ALB_ARN" \
    --query 'LoadBalancers[0].[DNSName, CanonicalHostedZoneId]')
  read -r dns zone <<<"$row"
  batch=$(private_tmp)
  printf '{"Comment":"%s","Changes":[{"Action":"UPSERT","ResourceRecordSet":{"Name":"%s.","Type":"A","AliasTarget":{"HostedZoneId":"%s","DNSName":"%s","EvaluateTargetHealth":true}}}]}\n' \
    "BoSar Chat" "$DOMAIN_NAME" "$zone" "$dns" >"$batch"
  aws_run route53 change-resource-record-sets --hosted-zone-id "$HOSTED_ZONE_ID" \
    --change-batch "file://$batch" --output text --query 'ChangeInfo.Id' >/dev/null
  log "A alias $DOMAIN_NAME -> $dns"
}

# --- ECS, scaling, alarms --------------------------------------------------------------------------

setup_cluster() {
  step "ECS cluster $CLUSTER_NAME"
  local status
  status=$(aws_value '' ecs describe-clusters --clusters "$CLUSTER_NAME" --query 'clusters[0].status')
  if [[ $status != ACTIVE ]]; then
    aws_run ecs create-cluster --cluster-name "$CLUSTER_NAME" \
      --settings name=containerInsights,value=enabled --tags "key=app,value=$APP_NAME" \
      --output text --query 'cluster.clusterArn' >/dev/null
    log "created (Container Insights on)"
  else
    log "exists"
  fi
}

first_release() {
  step "First release"
  if [[ $(service_status) == ACTIVE ]]; then
    log "service $SERVICE_NAME exists: releases go through deploy-to-ecs.sh"
    return 0
  fi
  if [[ $NO_DEPLOY == 1 ]]; then
    log "skipped (--no-deploy); run deploy-to-ecs.sh, then this script again for auto scaling"
    return 0
  fi
  "$SCRIPTS_DIR/deploy-to-ecs.sh" "${DEPLOY_ARGS[@]}"
}

setup_scaling() {
  step "Auto scaling ($MIN_CAPACITY..$MAX_CAPACITY tasks)"
  if [[ $(service_status) != ACTIVE ]] && ! is_dry_run; then
    log "skipped: the service does not exist yet"
    return 0
  fi
  local resource="service/$CLUSTER_NAME/$SERVICE_NAME" label
  aws_run application-autoscaling register-scalable-target --service-namespace ecs \
    --resource-id "$resource" --scalable-dimension ecs:service:DesiredCount \
    --min-capacity "$MIN_CAPACITY" --max-capacity "$MAX_CAPACITY"
  aws_run application-autoscaling put-scaling-policy --policy-name "$APP_NAME-cpu" \
    --service-namespace ecs --resource-id "$resource" --scalable-dimension ecs:service:DesiredCount \
    --policy-type TargetTrackingScaling --target-tracking-scaling-policy-configuration \
    "{\"TargetValue\":$CPU_TARGET_PERCENT,\"ScaleInCooldown\":300,\"ScaleOutCooldown\":60,\"PredefinedMetricSpecification\":{\"PredefinedMetricType\":\"ECSServiceAverageCPUUtilization\"}}" \
    --output text --query PolicyARN >/dev/null
  label="${ALB_ARN#*:loadbalancer/}/${TG_ARN##*:}"
  aws_run application-autoscaling put-scaling-policy --policy-name "$APP_NAME-requests" \
    --service-namespace ecs --resource-id "$resource" --scalable-dimension ecs:service:DesiredCount \
    --policy-type TargetTrackingScaling --target-tracking-scaling-policy-configuration \
    "{\"TargetValue\":$REQUESTS_PER_TARGET,\"ScaleInCooldown\":300,\"ScaleOutCooldown\":60,\"PredefinedMetricSpecification\":{\"PredefinedMetricType\":\"ALBRequestCountPerTarget\",\"ResourceLabel\":\"$label\"}}" \
    --output text --query PolicyARN >/dev/null
  log "CPU target ${CPU_TARGET_PERCENT}%, $REQUESTS_PER_TARGET requests per task per minute"
}

# alarm NAME DESCRIPTION NAMESPACE METRIC STATISTIC PERIODS THRESHOLD DIMENSION...
alarm() {
  local name=$1 description=$2 namespace=$3 metric=$4 statistic=$5 periods=$6 threshold=$7
  shift 7
  aws_run cloudwatch put-metric-alarm --alarm-name "$APP_NAME-$name" --alarm-description "$description" \
    --namespace "$namespace" --metric-name "$metric" --dimensions "$@" \
    --statistic "$statistic" --period 60 --evaluation-periods "$periods" --threshold "$threshold" \
    --comparison-operator GreaterThanThreshold --treat-missing-data notBreaching \
    --alarm-actions "$TOPIC_ARN" --ok-actions "$TOPIC_ARN"
}

setup_alarms() {
  step "Alarms"
  TOPIC_ARN=$(aws_value "arn:aws:sns:$AWS_REGION:<account-id>:$ALARM_TOPIC_NAME" sns create-topic \
    --name "$ALARM_TOPIC_NAME" --tags "Key=app,Value=$APP_NAME" --query TopicArn)
  local lb="${ALB_ARN#*:loadbalancer/}" tg="${TG_ARN##*:}"
  alarm target-5xx "The tasks answered 5xx more than 10 times a minute for 3 minutes." \
    AWS/ApplicationELB HTTPCode_Target_5XX_Count Sum 3 10 "Name=LoadBalancer,Value=$lb" "Name=TargetGroup,Value=$tg"
  alarm alb-5xx "The load balancer itself answered 5xx more than 10 times a minute for 3 minutes." \
    AWS/ApplicationELB HTTPCode_ELB_5XX_Count Sum 3 10 "Name=LoadBalancer,Value=$lb"
  alarm unhealthy-hosts "At least one task failed the /api health check for 3 minutes." \
    AWS/ApplicationELB UnHealthyHostCount Maximum 3 0 "Name=LoadBalancer,Value=$lb" "Name=TargetGroup,Value=$tg"
  alarm cpu-high "Service CPU above 85% for 5 minutes." \
    AWS/ECS CPUUtilization Average 5 85 "Name=ClusterName,Value=$CLUSTER_NAME" "Name=ServiceName,Value=$SERVICE_NAME"
  log "4 alarms -> $TOPIC_ARN (subscribe an address: aws sns subscribe --topic-arn $TOPIC_ARN --protocol email --notification-endpoint you@example.com)"
}

# --- Main ---------------------------------------------------------------------------------------

log "region $AWS_REGION${AWS_ENDPOINT_URL:+, endpoint $AWS_ENDPOINT_URL}$(is_dry_run && printf ', dry run')"
resolve_account_id
PUBLIC_SUBNETS=()
PRIVATE_SUBNETS=()
setup_network
setup_security_groups
setup_registry
setup_logs
setup_jwt_secret
setup_postgres_start
setup_redis_start
setup_postgres_finish
setup_redis_finish
setup_iam
setup_certificate
setup_load_balancer
setup_dns
setup_cluster
first_release
setup_scaling
setup_alarms
step "Done: https://$DOMAIN_NAME"
printf 'service_url=https://%s\n' "$DOMAIN_NAME"
