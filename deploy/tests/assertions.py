"""Assertions of scripts/deploy-check.

    python assertions.py static              files agree with each other
    python assertions.py snapshot FILE       write a count of every resource the scripts make
    python assertions.py state ARGS...       what the scripts did against the AWS endpoint
    python assertions.py stacks REGION       CloudFormation stacks that the check created

Prints one `ok - ...` or `not ok - ...` line per assertion (and `skip - ...`
for what the endpoint cannot show) and exits 0; scripts/deploy-check counts
the lines. Talks only to AWS_ENDPOINT_URL.
"""

import json
import os
import re
import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent
ROOT = DEPLOY.parent
CFN = DEPLOY / "cloudformation"

SHUTDOWN_GRACE_SECS = 25  # the service's default (contract), drained before SIGKILL
HEARTBEAT_SECS = 25


def ok(cond, text, detail=""):
    if cond:
        print(f"ok - {text}")
    else:
        print(f"not ok - {text}" + (f"  [{detail}]" if detail else ""))
    return bool(cond)


def skip(text):
    print(f"skip - {text}")


def load_template(name):
    from cfnlint.decode import cfn_yaml

    return cfn_yaml.load(str(CFN / name))


def props(template, logical_id):
    return template["Resources"][logical_id]["Properties"]


def kv(items, key="Key", value="Value"):
    return {i[key]: i[value] for i in items}


# --- static --------------------------------------------------------------------------


def static():
    svc = load_template("service.yaml")
    td_t = props(svc, "TaskDefinition")
    c_t = td_t["ContainerDefinitions"][0]
    td_j = json.loads((DEPLOY / "task-definition.json").read_text())
    c_j = td_j["containerDefinitions"][0]

    same = {
        "family": (td_t["Family"], td_j["family"]),
        "cpu": (str(td_t["Cpu"]), td_j["cpu"]),
        "memory": (str(td_t["Memory"]), td_j["memory"]),
        "network mode": (td_t["NetworkMode"], td_j["networkMode"]),
        "compatibilities": (list(td_t["RequiresCompatibilities"]), td_j["requiresCompatibilities"]),
        "container name": (c_t["Name"], c_j["name"]),
        "container memory": (c_t["Memory"], c_j["memory"]),
        "port": (c_t["PortMappings"][0]["ContainerPort"], c_j["portMappings"][0]["containerPort"]),
        "health check": (
            [list(c_t["HealthCheck"]["Command"]), c_t["HealthCheck"]["Interval"], c_t["HealthCheck"]["Timeout"],
             c_t["HealthCheck"]["Retries"], c_t["HealthCheck"]["StartPeriod"]],
            [c_j["healthCheck"]["command"], c_j["healthCheck"]["interval"], c_j["healthCheck"]["timeout"],
             c_j["healthCheck"]["retries"], c_j["healthCheck"]["startPeriod"]],
        ),
        "stop timeout": (c_t["StopTimeout"], c_j["stopTimeout"]),
        "log group and prefix": (
            [c_t["LogConfiguration"]["LogDriver"], props(svc, "LogGroup")["LogGroupName"],
             c_t["LogConfiguration"]["Options"]["awslogs-stream-prefix"]],
            [c_j["logConfiguration"]["logDriver"], c_j["logConfiguration"]["options"]["awslogs-group"],
             c_j["logConfiguration"]["options"]["awslogs-stream-prefix"]],
        ),
        "environment names": (sorted(e["Name"] for e in c_t["Environment"]), sorted(e["name"] for e in c_j["environment"])),
        "secret names": (sorted(s["Name"] for s in c_t["Secrets"]), sorted(s["name"] for s in c_j["secrets"])),
    }
    for what, (a, b) in same.items():
        ok(a == b, f"task-definition.json matches service.yaml: {what}", f"{a!r} != {b!r}")

    literal_env_t = {e["Name"]: e["Value"] for e in c_t["Environment"] if isinstance(e["Value"], str)}
    literal_env_j = {e["name"]: e["value"] for e in c_j["environment"] if "${" not in e["value"]}
    ok(all(literal_env_t.get(k) == v for k, v in literal_env_j.items()),
       "task-definition.json matches service.yaml: literal environment values")
    ok((td_j["cpu"], td_j["memory"]) == ("512", "1024"), "task size is 0.5 vCPU and 1 GB")
    ok(c_j["logConfiguration"]["options"]["awslogs-group"] == "/ecs/bosar-task"
       and c_j["logConfiguration"]["options"]["awslogs-stream-prefix"] == "ecs",
       "logs go to /ecs/bosar-task with prefix ecs")
    grace = int(next(e["value"] for e in c_j["environment"] if e["name"] == "SHUTDOWN_GRACE_SECS"))
    ok(c_j["stopTimeout"] > grace, f"stopTimeout {c_j['stopTimeout']} s exceeds SHUTDOWN_GRACE_SECS {grace} s")
    ok(not ({"DATABASE_URL", "JWT_SECRET"} & {e["name"] for e in c_j["environment"]}),
       "DATABASE_URL and JWT_SECRET are secrets, never plain environment values")

    reg = load_template("registry.yaml")
    policy_t = json.loads(props(reg, "Repository")["LifecyclePolicy"]["LifecyclePolicyText"])
    policy_f = json.loads((DEPLOY / "ecr-lifecycle-policy.json").read_text())
    ok(policy_t == policy_f, "registry.yaml lifecycle policy equals deploy/ecr-lifecycle-policy.json")

    lb_attrs = kv(props(svc, "LoadBalancer")["LoadBalancerAttributes"])
    ok(int(lb_attrs["idle_timeout.timeout_seconds"]) > HEARTBEAT_SECS,
       f"load balancer idle timeout {lb_attrs['idle_timeout.timeout_seconds']} s exceeds the {HEARTBEAT_SECS} s heartbeat")

    config = (DEPLOY / "config.env").read_text()
    for name, expected in [("TASK_FAMILY", td_j["family"]), ("CONTAINER_NAME", c_j["name"]),
                           ("CONTAINER_PORT", str(c_j["portMappings"][0]["containerPort"])),
                           ("LOG_GROUP", c_j["logConfiguration"]["options"]["awslogs-group"])]:
        m = re.search(rf"^{name}=(\S+)$", config, re.M)
        ok(m and m.group(1) == expected, f"config.env {name} matches task-definition.json", m and m.group(1))

    dockerfile = (ROOT / "Dockerfile").read_text()
    final = dockerfile[dockerfile.rindex("\nFROM "):]
    ok(re.search(r"^EXPOSE 3001$", final, re.M), "Dockerfile exposes 3001")
    ok(re.search(r"^STOPSIGNAL SIGTERM$", final, re.M), "Dockerfile stops with SIGTERM")
    ok(re.search(r"^HEALTHCHECK .*\n?.*bosar-chat\", \"healthcheck\"", final, re.M),
       "Dockerfile HEALTHCHECK runs bosar-chat healthcheck")
    user = re.findall(r"^USER (\S+)$", final, re.M)
    ok(user and user[-1].split(":")[0] not in ("root", "0"), "Dockerfile runs as a non-root user", user)
    ok("cargo chef cook" in dockerfile and "cargo chef prepare" in dockerfile,
       "Dockerfile caches dependency builds with cargo-chef")


# --- AWS state ---------------------------------------------------------------------------


def clients():
    import boto3

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    region = os.environ["AWS_REGION"]

    def client(name, region_name=region):
        return boto3.client(name, endpoint_url=endpoint, region_name=region_name)

    return client


def snapshot(path):
    c = clients()
    ec2, elb, ecs = c("ec2"), c("elbv2"), c("ecs")
    counts = {
        "vpcs": len(ec2.describe_vpcs(Filters=[{"Name": "tag:app", "Values": ["bosar"]}])["Vpcs"]),
        "subnets": len(ec2.describe_subnets(Filters=[{"Name": "tag:app", "Values": ["bosar"]}])["Subnets"]),
        "route tables": len(ec2.describe_route_tables(Filters=[{"Name": "tag:app", "Values": ["bosar"]}])["RouteTables"]),
        "internet gateways": len(ec2.describe_internet_gateways()["InternetGateways"]),
        "nat gateways": len(ec2.describe_nat_gateways()["NatGateways"]),
        "elastic ips": len(ec2.describe_addresses()["Addresses"]),
        "security groups": len(ec2.describe_security_groups(Filters=[{"Name": "tag:app", "Values": ["bosar"]}])["SecurityGroups"]),
        "security group rules": len(ec2.describe_security_group_rules()["SecurityGroupRules"]),
        "repositories": len(c("ecr").describe_repositories()["repositories"]),
        "log groups": len(c("logs").describe_log_groups()["logGroups"]),
        "secrets": len(c("secretsmanager").list_secrets()["SecretList"]),
        "db instances": len(c("rds").describe_db_instances()["DBInstances"]),
        "replication groups": len(c("elasticache").describe_replication_groups()["ReplicationGroups"]),
        "roles": len(c("iam").list_roles()["Roles"]),
        "certificates": len(c("acm").list_certificates()["CertificateSummaryList"]),
        "load balancers": len(elb.describe_load_balancers()["LoadBalancers"]),
        "target groups": len(elb.describe_target_groups()["TargetGroups"]),
        "listeners": sum(len(elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"])
                         for lb in elb.describe_load_balancers()["LoadBalancers"]),
        "dns records": sum(len(c("route53").list_resource_record_sets(HostedZoneId=z["Id"])["ResourceRecordSets"])
                           for z in c("route53").list_hosted_zones()["HostedZones"]),
        "clusters": len(ecs.list_clusters()["clusterArns"]),
        "task definition revisions": len(ecs.list_task_definitions()["taskDefinitionArns"]),
        # (target tracking policies add alarms of their own; count only ours)
        "alarms": len(c("cloudwatch").describe_alarms(AlarmNamePrefix="bosar-")["MetricAlarms"]),
        "topics": len(c("sns").list_topics()["Topics"]),
    }
    Path(path).write_text(json.dumps(counts, indent=1, sort_keys=True))


def compare_snapshots(before, after):
    a = json.loads(Path(before).read_text())
    b = json.loads(Path(after).read_text())
    changed = {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    ok(not changed, f"second setup-complete-infrastructure.sh run created nothing new ({len(a)} kinds of resource counted)",
       changed)


def state(domain, v1_rev, v2_rev, final_rev):
    c = clients()
    ec2, elb, ecs, ecr = c("ec2"), c("elbv2"), c("ecs"), c("ecr")
    svc_t = load_template("service.yaml")
    tg_t = props(svc_t, "TargetGroup")

    # Network
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["bosar-vpc"]}])["Vpcs"][0]
    subnets = {kv(s["Tags"])["Name"]: s for s in
               ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]}
    public = [subnets.get("bosar-public-a"), subnets.get("bosar-public-b")]
    private = [subnets.get("bosar-private-a"), subnets.get("bosar-private-b")]
    ok(all(public + private), "VPC has two public and two private subnets")
    ok(len({s["AvailabilityZone"] for s in public}) == 2 and len({s["AvailabilityZone"] for s in private}) == 2,
       "public and private subnets each span two Availability Zones")
    ok(not any(s["MapPublicIpOnLaunch"] for s in private), "private subnets assign no public addresses")
    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["RouteTables"]

    def default_target(subnet_id):
        for t in tables:
            if any(a.get("SubnetId") == subnet_id for a in t.get("Associations", [])):
                for r in t["Routes"]:
                    if r.get("DestinationCidrBlock") == "0.0.0.0/0":
                        return r.get("GatewayId") or r.get("NatGatewayId")
        return None

    ok(all((default_target(s["SubnetId"]) or "").startswith("igw-") for s in public),
       "public subnets route to the internet gateway")
    ok(all((default_target(s["SubnetId"]) or "").startswith("nat-") for s in private),
       "private subnets route through NAT gateways")

    groups = {g["GroupName"]: g for g in ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["SecurityGroups"]}
    alb_sg, svc_sg = groups["bosar-alb"]["GroupId"], groups["bosar-service"]["GroupId"]

    def ingress(name):
        out = set()
        for p in groups[name]["IpPermissions"]:
            for r in p.get("IpRanges", []):
                out.add((p.get("FromPort"), r["CidrIp"]))
            for r in p.get("UserIdGroupPairs", []):
                out.add((p.get("FromPort"), r["GroupId"]))
        return out

    ok(ingress("bosar-alb") == {(80, "0.0.0.0/0"), (443, "0.0.0.0/0")}, "load balancer group: 80 and 443 from anywhere",
       ingress("bosar-alb"))
    ok(ingress("bosar-service") == {(3001, alb_sg)}, "task group: 3001 from the load balancer only", ingress("bosar-service"))
    ok(ingress("bosar-database") == {(5432, svc_sg)}, "database group: 5432 from the tasks only", ingress("bosar-database"))
    ok(ingress("bosar-redis") == {(6379, svc_sg)}, "redis group: 6379 from the tasks only", ingress("bosar-redis"))
    ok(not groups["bosar-database"]["IpPermissionsEgress"] and not groups["bosar-redis"]["IpPermissionsEgress"],
       "database and redis groups allow no outbound connections")

    # Registry and logs
    repo = ecr.describe_repositories(repositoryNames=["bosar-chat"])["repositories"][0]
    ok(repo["imageScanningConfiguration"]["scanOnPush"] is True, "ECR repository bosar-chat exists with scan on push")
    ok(repo["imageTagMutability"] == "IMMUTABLE", "ECR tags are immutable")
    policy = json.loads(ecr.get_lifecycle_policy(repositoryName="bosar-chat")["lifecyclePolicyText"])
    ok(policy == json.loads((DEPLOY / "ecr-lifecycle-policy.json").read_text()), "ECR lifecycle policy applied")
    groups_l = c("logs").describe_log_groups(logGroupNamePrefix="/ecs/bosar-task")["logGroups"]
    ok(groups_l and groups_l[0].get("retentionInDays") == 30, "log group /ecs/bosar-task with 30-day retention")

    # Secrets, database, redis
    sm = c("secretsmanager")
    db = c("rds").describe_db_instances(DBInstanceIdentifier="bosar-postgres")["DBInstances"][0]
    ok(db["Engine"] == "postgres" and db["EngineVersion"].split(".")[0] in ("16", "17"),
       f"RDS PostgreSQL {db['EngineVersion']} (pgvector-capable)")
    ok(db["MultiAZ"] and db["StorageEncrypted"] and db["BackupRetentionPeriod"] == 7 and db["DeletionProtection"]
       and not db["PubliclyAccessible"], "RDS is Multi-AZ, encrypted, private, 7-day backups, deletion protection")
    ok([g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]] == [groups["bosar-database"]["GroupId"]],
       "RDS sits in the database security group")
    url = sm.get_secret_value(SecretId="bosar/database-url")["SecretString"]
    ok(url.startswith("postgres://bosar:") and db["Endpoint"]["Address"] in url and url.endswith("sslmode=require"),
       "secret bosar/database-url holds the RDS URL with TLS")
    ok(len(sm.get_secret_value(SecretId="bosar/jwt-secret")["SecretString"]) >= 32, "secret bosar/jwt-secret is 32+ bytes")
    rg = c("elasticache").describe_replication_groups(ReplicationGroupId="bosar-redis")["ReplicationGroups"][0]
    ok(rg["TransitEncryptionEnabled"] and rg["AtRestEncryptionEnabled"], "ElastiCache Redis encrypts in transit and at rest")

    # IAM
    iam = c("iam")
    exec_role = iam.get_role(RoleName="bosar-ecs-execution-role")["Role"]
    trust = exec_role["AssumeRolePolicyDocument"]
    if isinstance(trust, str):
        trust = json.loads(trust)
    ok(trust["Statement"][0]["Principal"]["Service"] == "ecs-tasks.amazonaws.com", "execution role trusts ECS tasks only")
    pol = iam.get_role_policy(RoleName="bosar-ecs-execution-role", PolicyName="pull-log-secrets")["PolicyDocument"]
    if isinstance(pol, str):
        pol = json.loads(pol)
    secret_arns = sorted(sm.describe_secret(SecretId=n)["ARN"] for n in ("bosar/database-url", "bosar/jwt-secret"))
    sec_stmt = [s for s in pol["Statement"] if s["Action"] == "secretsmanager:GetSecretValue"]
    ok(sec_stmt and sorted(sec_stmt[0]["Resource"]) == secret_arns,
       "execution role reads exactly the two secrets")
    ok(all(s["Resource"] != "*" for s in pol["Statement"] if s["Sid"] != "EcrToken"),
       "execution role grants nothing on '*' but the ECR token")
    ok(not iam.list_role_policies(RoleName="bosar-ecs-task-role")["PolicyNames"]
       and not iam.list_attached_role_policies(RoleName="bosar-ecs-task-role")["AttachedPolicies"],
       "task role carries no permissions")

    # Certificate and DNS
    acm = c("acm")
    certs = [s for s in acm.list_certificates()["CertificateSummaryList"] if s["DomainName"] == domain]
    ok(len(certs) == 1, f"one ACM certificate requested for {domain}", certs)
    cert = acm.describe_certificate(CertificateArn=certs[0]["CertificateArn"])["Certificate"] if certs else {}
    ok(cert.get("Status") == "ISSUED" and cert["DomainValidationOptions"][0]["ValidationMethod"] == "DNS",
       "certificate validated by DNS and issued")
    r53 = c("route53")
    zone = next(z for z in r53.list_hosted_zones()["HostedZones"] if domain.endswith(z["Name"].rstrip(".")))
    records = r53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    rr = cert["DomainValidationOptions"][0]["ResourceRecord"] if cert else {}
    ok(any(r["Name"] == rr.get("Name") and r["Type"] == "CNAME" for r in records),
       "ACM validation CNAME published in Route 53")

    # Load balancer
    lb = elb.describe_load_balancers(Names=["bosar-alb"])["LoadBalancers"][0]
    ok(lb["Scheme"] == "internet-facing" and sorted(a["SubnetId"] for a in lb["AvailabilityZones"])
       == sorted(s["SubnetId"] for s in public), "load balancer is internet-facing in the public subnets")
    lb_attrs = kv(elb.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"])
    want_idle = kv(props(svc_t, "LoadBalancer")["LoadBalancerAttributes"])["idle_timeout.timeout_seconds"]
    ok(lb_attrs.get("idle_timeout.timeout_seconds") == want_idle, f"idle timeout {want_idle} s, as in service.yaml")
    alias = [r for r in records if r["Name"] == domain + "." and r["Type"] == "A"]
    ok(alias and alias[0]["AliasTarget"]["DNSName"].rstrip(".") == lb["DNSName"].rstrip("."),
       f"Route 53 alias {domain} -> load balancer")
    tg = elb.describe_target_groups(Names=["bosar-tg"])["TargetGroups"][0]
    want_hc = (tg_t["TargetType"], tg_t["Port"], tg_t["HealthCheckPath"], tg_t["HealthCheckIntervalSeconds"],
               tg_t["HealthCheckTimeoutSeconds"], tg_t["HealthyThresholdCount"], tg_t["UnhealthyThresholdCount"],
               tg_t["Matcher"]["HttpCode"])
    got_hc = (tg["TargetType"], tg["Port"], tg["HealthCheckPath"], tg["HealthCheckIntervalSeconds"],
              tg["HealthCheckTimeoutSeconds"], tg["HealthyThresholdCount"], tg["UnhealthyThresholdCount"],
              tg["Matcher"]["HttpCode"])
    ok(got_hc == want_hc and want_hc[2:] == ("/api", 30, 5, 2, 3, "200"),
       "target group health check /api every 30 s, timeout 5 s, healthy 2, unhealthy 3 (as in service.yaml)",
       f"{got_hc} vs {want_hc}")
    tg_attrs = kv(elb.describe_target_group_attributes(TargetGroupArn=tg["TargetGroupArn"])["Attributes"])
    want_attrs = kv(tg_t["TargetGroupAttributes"])
    ok(all(tg_attrs.get(k) == v for k, v in want_attrs.items()) and want_attrs["stickiness.type"] == "lb_cookie"
       and want_attrs["stickiness.lb_cookie.duration_seconds"] == "86400"
       and want_attrs["load_balancing.algorithm.type"] == "least_outstanding_requests"
       and want_attrs["deregistration_delay.timeout_seconds"] == "30",
       "target group: lb_cookie stickiness 86400 s, least outstanding requests, deregistration 30 s (as in service.yaml)",
       {k: tg_attrs.get(k) for k in want_attrs})
    listeners = {l["Port"]: l for l in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]}
    http = listeners.get(80, {})
    redirect = (http.get("DefaultActions") or [{}])[0].get("RedirectConfig", {})
    ok(http.get("Protocol") == "HTTP" and redirect.get("Protocol") == "HTTPS" and str(redirect.get("Port")) == "443"
       and redirect.get("StatusCode") == "HTTP_301", "listener :80 redirects to HTTPS :443 (301)", redirect)
    https = listeners.get(443, {})
    ok(https.get("Protocol") == "HTTPS" and https.get("Certificates", [{}])[0].get("CertificateArn") == cert.get("CertificateArn")
       and https["DefaultActions"][0]["Type"] == "forward"
       and https["DefaultActions"][0]["TargetGroupArn"] == tg["TargetGroupArn"],
       "listener :443 is HTTPS with the ACM certificate and forwards to the target group")
    ok(len(listeners) == 2, "exactly two listeners", sorted(listeners))

    # ECS
    cluster = ecs.describe_clusters(clusters=["bosar-cluster"])["clusters"][0]
    ok(cluster["status"] == "ACTIVE", "ECS cluster bosar-cluster is active")
    td = ecs.describe_task_definition(taskDefinition=f"bosar-task:{final_rev}")["taskDefinition"]
    cd = td["containerDefinitions"][0]
    ok(td["cpu"] == "512" and td["memory"] == "1024" and td["networkMode"] == "awsvpc"
       and td.get("requiresCompatibilities") == ["FARGATE"], f"task definition bosar-task:{final_rev}: Fargate, 512 CPU, 1024 MB")
    lo = cd["logConfiguration"]
    ok(lo["logDriver"] == "awslogs" and lo["options"] == {"awslogs-group": "/ecs/bosar-task",
       "awslogs-region": os.environ["AWS_REGION"], "awslogs-stream-prefix": "ecs"},
       "task definition logs: awslogs, /ecs/bosar-task, prefix ecs", lo)
    ok(td["executionRoleArn"] == exec_role["Arn"] and td["taskRoleArn"].endswith("role/bosar-ecs-task-role"),
       "task definition uses the execution and task roles")
    ok(sorted(s["valueFrom"] for s in cd["secrets"]) == secret_arns, "task definition reads DATABASE_URL and JWT_SECRET from Secrets Manager")
    env = {e["name"]: e["value"] for e in cd["environment"]}
    ok(env.get("REDIS_URL", "").startswith("rediss://") and rg["NodeGroups"][0]["PrimaryEndpoint"]["Address"] in env["REDIS_URL"]
       and env.get("REDIS_SHARDED") == "false", "task definition: REDIS_URL is the rediss:// primary endpoint, REDIS_SHARDED=false")
    ok(cd["healthCheck"]["command"] == ["CMD", "/usr/local/bin/bosar-chat", "healthcheck"] and cd["stopTimeout"] > SHUTDOWN_GRACE_SECS,
       "container health check runs bosar-chat healthcheck; stop timeout above the drain time")
    image_v1 = ecs.describe_task_definition(taskDefinition=f"bosar-task:{v1_rev}")["taskDefinition"]["containerDefinitions"][0]["image"]
    image_v2 = ecs.describe_task_definition(taskDefinition=f"bosar-task:{v2_rev}")["taskDefinition"]["containerDefinitions"][0]["image"]
    ok(image_v1 == f"{repo['repositoryUri']}:v1" and image_v2 == f"{repo['repositoryUri']}:v2",
       "each release registered a revision with its own image tag", f"{image_v1} {image_v2}")

    service = ecs.describe_services(cluster="bosar-cluster", services=["bosar-service"])["services"][0]
    ok(service["taskDefinition"].endswith(f"task-definition/bosar-task:{final_rev}"),
       f"service runs bosar-task:{final_rev}", service["taskDefinition"])
    lbs = service["loadBalancers"][0]
    ok(lbs["targetGroupArn"] == tg["TargetGroupArn"] and lbs["containerName"] == "bosar-chat" and lbs["containerPort"] == 3001,
       "service registers bosar-chat:3001 in the target group")
    net = service["networkConfiguration"]["awsvpcConfiguration"]
    ok(sorted(net["subnets"]) == sorted(s["SubnetId"] for s in private) and net["securityGroups"] == [svc_sg]
       and net["assignPublicIp"] == "DISABLED", "service tasks run in the private subnets, task group, no public IP")
    ok(service["launchType"] == "FARGATE", "service launch type is FARGATE")
    if "deploymentConfiguration" in service:
        breaker = service["deploymentConfiguration"].get("deploymentCircuitBreaker", {})
        ok(breaker.get("enable") and breaker.get("rollback"), "deployment circuit breaker with rollback")
    else:
        skip("deployment circuit breaker: moto does not keep a service's deploymentConfiguration "
             "(the dry run above shows it in the create-service call)")

    tasks = ecs.list_tasks(cluster="bosar-cluster", startedBy="deploy-migrate")["taskArns"]
    described = ecs.describe_tasks(cluster="bosar-cluster", tasks=tasks)["tasks"] if tasks else []
    migrate = [t for t in described
               if t["overrides"]["containerOverrides"][0].get("command") == ["migrate"]
               and t["lastStatus"] == "STOPPED" and t["containers"][0].get("exitCode") == 0]
    ok(len(tasks) == 2 and len(migrate) == 2,
       "one `bosar-chat migrate` task per release, each STOPPED with exit code 0 (rollback ran none)",
       f"{len(tasks)} tasks, {len(migrate)} ok")
    revs = sorted(int(t["taskDefinitionArn"].rsplit(":", 1)[1]) for t in described)
    ok(revs == sorted([v1_rev, v2_rev]), "each migration ran with the revision it released", revs)

    # Scaling and alarms
    aas = c("application-autoscaling")
    targets = aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=["service/bosar-cluster/bosar-service"])["ScalableTargets"]
    ok(targets and (targets[0]["MinCapacity"], targets[0]["MaxCapacity"]) == (2, 10), "service scales between 2 and 10 tasks")
    policies = {p["PolicyName"]: p for p in aas.describe_scaling_policies(
        ServiceNamespace="ecs", ResourceId="service/bosar-cluster/bosar-service")["ScalingPolicies"]}
    cpu = policies.get("bosar-cpu", {}).get("TargetTrackingScalingPolicyConfiguration", {})
    req = policies.get("bosar-requests", {}).get("TargetTrackingScalingPolicyConfiguration", {})
    ok(cpu.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType") == "ECSServiceAverageCPUUtilization",
       "target tracking on CPU")
    label = req.get("PredefinedMetricSpecification", {}).get("ResourceLabel", "")
    ok(req.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType") == "ALBRequestCountPerTarget"
       and label == lb["LoadBalancerArn"].split(":loadbalancer/")[1] + "/" + tg["TargetGroupArn"].split(":")[-1],
       "target tracking on ALB requests per target", label)
    alarms = {a["AlarmName"]: a for a in c("cloudwatch").describe_alarms(AlarmNamePrefix="bosar-")["MetricAlarms"]}
    metrics = {a["MetricName"] for a in alarms.values()}
    ok({"HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count", "UnHealthyHostCount", "CPUUtilization"} <= metrics,
       "alarms on 5xx (targets and load balancer), unhealthy hosts and CPU", sorted(metrics))
    topic = [t["TopicArn"] for t in c("sns").list_topics()["Topics"] if t["TopicArn"].endswith(":bosar-alarms")]
    ok(topic and all(a["AlarmActions"] == topic for a in alarms.values()), "every alarm notifies the bosar-alarms topic")


def stacks(region):
    c = clients()
    cf = c("cloudformation", region)
    ec2 = c("ec2", region)
    status = {s["StackName"]: s["StackStatus"] for s in cf.describe_stacks()["Stacks"]}
    ok(status.get("bosar-network") == "CREATE_COMPLETE", "network.yaml stack created", status.get("bosar-network"))
    ok(status.get("bosar-registry") == "CREATE_COMPLETE", "registry.yaml stack created", status.get("bosar-registry"))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in
               next((s.get("Outputs", []) for s in cf.describe_stacks(StackName="bosar-network")["Stacks"]), [])}
    private = outputs.get("PrivateSubnetIds", "").split(",")
    public = outputs.get("PublicSubnetIds", "").split(",")
    subnets = ec2.describe_subnets(SubnetIds=private + public)["Subnets"] if len(private + public) == 4 else []
    ok(len({s["AvailabilityZone"] for s in subnets}) == 2 and len(subnets) == 4,
       "network stack: two public and two private subnets in two zones")
    sg = ec2.describe_security_groups(GroupIds=[outputs["ServiceSecurityGroupId"]])["SecurityGroups"][0]
    srcs = {(p.get("FromPort"), g["GroupId"]) for p in sg["IpPermissions"] for g in p.get("UserIdGroupPairs", [])}
    ok(srcs == {(3001, outputs["AlbSecurityGroupId"])}, "network stack: tasks take 3001 from the load balancer group only", srcs)
    nats = ec2.describe_nat_gateways(Filters=[{"Name": "vpc-id", "Values": [outputs["VpcId"]]}])["NatGateways"]
    ok(len(nats) == 2, "network stack: a NAT gateway per zone", len(nats))


def main():
    cmd = sys.argv[1]
    if cmd == "static":
        static()
    elif cmd == "snapshot":
        snapshot(sys.argv[2])
    elif cmd == "compare":
        compare_snapshots(sys.argv[2], sys.argv[3])
    elif cmd == "state":
        state(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "stacks":
        stacks(sys.argv[2])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # an assertion that cannot even be evaluated is a failure
        print(f"not ok - {sys.argv[1]} assertions stopped: {type(exc).__name__}: {exc}")
        raise SystemExit(0)
